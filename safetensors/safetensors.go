// Package safetensors reads and writes the safetensors tensor file format
// used by Hugging Face checkpoints (model.safetensors).
//
// A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// describing each tensor (dtype, shape, data offsets relative to the end of
// the header) plus an optional "__metadata__" string map, then the raw
// little-endian, row-major tensor data. The reader validates every offset,
// size and dtype so that a truncated or corrupted file gives an error, never
// a crash.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
)

// MaxHeaderSize is the largest JSON header the reader accepts (100 MB, the
// limit of the reference implementation).
const MaxHeaderSize = 100 << 20

// metadataKey is the reserved header key holding the string metadata map.
const metadataKey = "__metadata__"

// ErrFormat is wrapped by every error that reports a malformed file.
var ErrFormat = errors.New("invalid safetensors data")

// DType is a tensor element type as spelled in the safetensors header.
type DType string

// The element types of the safetensors format.
const (
	Bool DType = "BOOL"
	U8   DType = "U8"
	I8   DType = "I8"
	I16  DType = "I16"
	U16  DType = "U16"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I32  DType = "I32"
	U32  DType = "U32"
	F32  DType = "F32"
	F64  DType = "F64"
	I64  DType = "I64"
	U64  DType = "U64"
)

// Size returns the size in bytes of one element of d, or 0 if d is not a
// known dtype.
func (d DType) Size() int {
	switch d {
	case Bool, U8, I8:
		return 1
	case I16, U16, F16, BF16:
		return 2
	case I32, U32, F32:
		return 4
	case F64, I64, U64:
		return 8
	}
	return 0
}

// Tensor is one named tensor: its dtype, shape and raw little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	// Data holds the row-major little-endian element bytes. For tensors
	// returned by Parse it aliases the parsed buffer.
	Data []byte
}

// NumElements returns the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file.
type File struct {
	// Metadata is the "__metadata__" map of the header (may be empty).
	Metadata map[string]string
	tensors  map[string]Tensor
	names    []string
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	return append([]string(nil), f.names...)
}

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.names) }

// Tensor returns the tensor called name and whether it exists.
func (f *File) Tensor(name string) (Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ReadFile reads and parses the safetensors file at path.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read safetensors %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse safetensors %s: %w", path, err)
	}
	return f, nil
}

// Parse parses a complete safetensors file held in data. The returned
// tensors alias data. It checks that the header is well-formed JSON, that
// every dtype is known, that shapes are non-negative and their sizes do not
// overflow, that end-begin equals numel × dtype size, that tensors lie
// inside the data, do not overlap and cover it without gaps.
func Parse(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: file is %d bytes, shorter than the 8-byte header length", ErrFormat, len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d exceeds limit %d", ErrFormat, n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes after it (truncated file?)", ErrFormat, n, len(data)-8)
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	if len(bytes.TrimSpace(header)) == 0 || bytes.TrimSpace(header)[0] != '{' {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrFormat)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
	}
	f := &File{Metadata: map[string]string{}, tensors: make(map[string]Tensor, len(raw))}
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(raw))
	for name, msg := range raw {
		if name == metadataKey {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%w: __metadata__ must be a map of strings: %v", ErrFormat, err)
			}
			if f.Metadata == nil {
				f.Metadata = map[string]string{}
			}
			continue
		}
		var e headerEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		size := e.DType.Size()
		if size == 0 {
			return nil, fmt.Errorf("%w: tensor %q: unknown dtype %q", ErrFormat, name, e.DType)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fmt.Errorf("%w: tensor %q: data_offsets must have 2 entries, has %d", ErrFormat, name, len(e.DataOffsets))
		}
		if e.Shape == nil {
			e.Shape = []int64{}
		}
		numel, err := checkedNumel(e.Shape, int64(size))
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin {
			return nil, fmt.Errorf("%w: tensor %q: invalid data_offsets [%d, %d]", ErrFormat, name, begin, end)
		}
		if end > int64(len(body)) {
			return nil, fmt.Errorf("%w: tensor %q: data_offsets [%d, %d] beyond the %d data bytes (truncated file?)", ErrFormat, name, begin, end, len(body))
		}
		if want := numel * int64(size); end-begin != want {
			return nil, fmt.Errorf("%w: tensor %q: %d data bytes, want %d for shape %v of %s", ErrFormat, name, end-begin, want, e.Shape, e.DType)
		}
		f.tensors[name] = Tensor{Name: name, DType: e.DType, Shape: e.Shape, Data: body[begin:end:end]}
		f.names = append(f.names, name)
		spans = append(spans, span{name, begin, end})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var pos int64
	for _, s := range spans {
		if s.begin < pos {
			return nil, fmt.Errorf("%w: tensor %q at [%d, %d] overlaps the previous tensor ending at %d", ErrFormat, s.name, s.begin, s.end, pos)
		}
		if s.begin > pos {
			return nil, fmt.Errorf("%w: gap of %d bytes before tensor %q", ErrFormat, s.begin-pos, s.name)
		}
		pos = s.end
	}
	if pos != int64(len(body)) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the last tensor", ErrFormat, int64(len(body))-pos)
	}
	sort.Strings(f.names)
	return f, nil
}

// checkedNumel returns the number of elements of shape, failing on negative
// dimensions or when numel × size would overflow int64.
func checkedNumel(shape []int64, size int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt64/size/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// Write writes tensors and metadata to w in the safetensors format. The
// output is deterministic: tensors are laid out sorted by name, the header
// lists "__metadata__" first and then the tensors in name order, and the
// header is padded with spaces to a multiple of 8 bytes. A nil metadata map
// writes {"format":"pt"}, the value PyTorch writers use.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	if metadata == nil {
		metadata = map[string]string{"format": "pt"}
	}
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		hdr.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				hdr.WriteByte(',')
			}
			writeJSONString(&hdr, k)
			hdr.WriteByte(':')
			writeJSONString(&hdr, metadata[k])
		}
		hdr.WriteByte('}')
	}
	var offset int64
	for i, t := range sorted {
		if t.Name == "" || t.Name == metadataKey {
			return fmt.Errorf("write safetensors: invalid tensor name %q", t.Name)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return fmt.Errorf("write safetensors: duplicate tensor name %q", t.Name)
		}
		size := t.DType.Size()
		if size == 0 {
			return fmt.Errorf("write safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		numel, err := checkedNumel(t.Shape, int64(size))
		if err != nil {
			return fmt.Errorf("write safetensors: tensor %q: %w", t.Name, err)
		}
		if want := numel * int64(size); int64(len(t.Data)) != want {
			return fmt.Errorf("write safetensors: tensor %q: %d data bytes, want %d for shape %v of %s", t.Name, len(t.Data), want, t.Shape, t.DType)
		}
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		writeJSONString(&hdr, t.Name)
		hdr.WriteString(`:{"dtype":"`)
		hdr.WriteString(string(t.DType))
		hdr.WriteString(`","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.FormatInt(d, 10))
		}
		hdr.WriteString(`],"data_offsets":[`)
		hdr.WriteString(strconv.FormatInt(offset, 10))
		hdr.WriteByte(',')
		offset += int64(len(t.Data))
		hdr.WriteString(strconv.FormatInt(offset, 10))
		hdr.WriteString("]}")
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("write safetensors header length: %w", err)
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("write safetensors header: %w", err)
	}
	for _, t := range sorted {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("write safetensors tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes tensors and metadata to path atomically: it writes a
// temporary file in the same folder, syncs it and renames it into place, so
// a failed write never leaves a partial file at path.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	if err := atomicfile.Write(path, 0o644, func(w io.Writer) error { return Write(w, tensors, metadata) }); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // marshalling a string cannot fail
	b.Write(enc)
}
