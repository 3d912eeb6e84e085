package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustF32(t testing.TB, name string, shape []int64, v []float32) Tensor {
	t.Helper()
	x, err := FromFloat32s(name, F32, shape, v)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func encode(t testing.TB, ts []Tensor, meta map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, ts, meta); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rawFile builds a file from a literal header and a body.
func rawFile(header string, body []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(body))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, body...)
}

func TestRoundTrip(t *testing.T) {
	i64, err := FromInt64s("ids", []int64{3}, []int64{-1, 0, 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	f16, err := FromFloat32s("half", F16, []int64{2, 2}, []float32{1, -2, 0.5, 65504})
	if err != nil {
		t.Fatal(err)
	}
	bf16, err := FromFloat32s("b", BF16, []int64{2}, []float32{1.5, -3})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
	}{
		{"empty", nil, nil},
		{"one", []Tensor{mustF32(t, "w", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})}, nil},
		{"scalar and zero-size", []Tensor{mustF32(t, "s", []int64{}, []float32{7}), mustF32(t, "z", []int64{0, 4}, nil)}, map[string]string{"format": "pt", "k": "v\"q"}},
		{"mixed dtypes unsorted", []Tensor{f16, i64, bf16, mustF32(t, "a.b", []int64{1}, []float32{-1})}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(t, tc.tensors, tc.meta)
			if hl := binary.LittleEndian.Uint64(data); hl%8 != 0 {
				t.Errorf("header length %d not a multiple of 8", hl)
			}
			if again := encode(t, tc.tensors, tc.meta); !bytes.Equal(data, again) {
				t.Error("Write is not deterministic")
			}
			f, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantMeta := tc.meta
			if wantMeta == nil {
				wantMeta = map[string]string{"format": "pt"}
			}
			if !reflect.DeepEqual(f.Metadata, wantMeta) {
				t.Errorf("metadata %v, want %v", f.Metadata, wantMeta)
			}
			if f.Len() != len(tc.tensors) {
				t.Fatalf("%d tensors, want %d", f.Len(), len(tc.tensors))
			}
			for _, want := range tc.tensors {
				got, ok := f.Tensor(want.Name)
				if !ok {
					t.Fatalf("tensor %q missing", want.Name)
				}
				if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
					t.Errorf("tensor %q: got %v %v, want %v %v", want.Name, got.DType, got.Shape, want.DType, want.Shape)
				}
			}
			names := f.Names()
			for i := 1; i < len(names); i++ {
				if names[i-1] >= names[i] {
					t.Errorf("names not sorted: %v", names)
				}
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	f, err := Parse(encode(t, []Tensor{
		mustF32(t, "f", []int64{3}, []float32{1, -2.5, 3}),
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := f.Tensor("f")
	got, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []float32{1, -2.5, 3}) {
		t.Errorf("got %v", got)
	}
	if _, err := x.Int64s(); err == nil {
		t.Error("Int64s on F32 should fail")
	}
	tests := []struct {
		dtype DType
		in    []float32
		want  []float32
	}{
		{F16, []float32{1, -2, 0.1, 1e-7, 70000}, []float32{1, -2, 0.099975586, 1.1920929e-07, float32(math.Inf(1))}},
		{BF16, []float32{1, -2, 0.1, 3.14159}, []float32{1, -2, 0.10009765625, 3.140625}},
	}
	for _, tc := range tests {
		x, err := FromFloat32s("x", tc.dtype, []int64{int64(len(tc.in))}, tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.dtype, got, tc.want)
		}
	}
}

func TestF16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToFloat32(uint16(h))
		back := Float32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, f, back)
		}
	}
	// Ties round to even.
	tests := []struct {
		in   float32
		want uint16
	}{
		{1 + 1.0/2048, 0x3c00},         // halfway between 1 and next: even is 1
		{1 + 3.0/2048, 0x3c02},         // halfway between 1+1ulp and 1+2ulp: even is +2
		{65520, 0x7c00},                // rounds to Inf
		{float32(math.Pow(2, -25)), 0}, // halfway to the smallest subnormal: even is 0
		{float32(math.Pow(2, -24)), 1},
	}
	for _, tc := range tests {
		if got := Float32ToF16(tc.in); got != tc.want {
			t.Errorf("Float32ToF16(%g) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}

func TestBF16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := BF16ToFloat32(uint16(h))
		back := Float32ToBF16(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToFloat32(back))) {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("bf16 %#04x -> %g -> %#04x", h, f, back)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := encode(t, []Tensor{mustF32(t, "a", []int64{2}, []float32{1, 2}), mustF32(t, "b", []int64{1}, []float32{3})}, nil)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"short", []byte{1, 2, 3}, "shorter than"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "exceeds limit"},
		{"header beyond file", binary.LittleEndian.AppendUint64(nil, 100), "truncated"},
		{"truncated data", good[:len(good)-1], "beyond"},
		{"trailing bytes", append(append([]byte{}, good...), 0), "trailing"},
		{"not json", rawFile("nonsense", nil), "not a JSON object"},
		{"bad json", rawFile(`{"a":`, nil), "header JSON"},
		{"array header", rawFile(`[1]`, nil), "not a JSON object"},
		{"unknown dtype", rawFile(`{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "unknown dtype"},
		{"negative shape", rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "negative"},
		{"overflow shape", rawFile(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}`, make([]byte, 4)), "too large"},
		{"size mismatch", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), "want 8"},
		{"offsets reversed", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, make([]byte, 4)), "invalid data_offsets"},
		{"one offset", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, make([]byte, 4)), "2 entries"},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "overlaps"},
		{"gap", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "gap"},
		{"bad metadata", rawFile(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
		{"unknown field", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), "unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"duplicate", []Tensor{mustF32(t, "a", []int64{1}, []float32{1}), mustF32(t, "a", []int64{1}, []float32{1})}, "duplicate"},
		{"bad size", []Tensor{{Name: "a", DType: F32, Shape: []int64{2}, Data: make([]byte, 4)}}, "want 8"},
		{"bad dtype", []Tensor{{Name: "a", DType: "Q", Shape: []int64{1}, Data: make([]byte, 4)}}, "unknown dtype"},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: F32, Shape: []int64{1}, Data: make([]byte, 4)}}, "invalid tensor name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, tc.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestWriteFileReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	in := []Tensor{mustF32(t, "w", []int64{2}, []float32{1, 2})}
	if err := WriteFile(path, in, nil); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Tensor("w"); !bytes.Equal(got.Data, in[0].Data) {
		t.Error("data differs after WriteFile/ReadFile")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(encode(f, []Tensor{mustF32(f, "a", []int64{2}, []float32{1, 2})}, nil))
	f.Add(encode(f, nil, nil))
	f.Add(rawFile(`{"a":{"dtype":"F16","shape":[1,1],"data_offsets":[0,2]}}`, make([]byte, 2)))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, make([]byte, 4)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses must decode and re-encode to an equivalent file.
		var tensors []Tensor
		for _, name := range file.Names() {
			x, _ := file.Tensor(name)
			if x.DType == F32 || x.DType == F16 || x.DType == BF16 || x.DType == F64 {
				if _, err := x.Float32s(); err != nil {
					t.Fatalf("Float32s on parsed tensor: %v", err)
				}
			}
			tensors = append(tensors, x)
		}
		var b bytes.Buffer
		if err := Write(&b, tensors, file.Metadata); err != nil {
			t.Fatalf("re-encode parsed file: %v", err)
		}
		again, err := Parse(b.Bytes())
		if err != nil {
			t.Fatalf("parse re-encoded file: %v", err)
		}
		if again.Len() != file.Len() {
			t.Fatalf("%d tensors after round trip, want %d", again.Len(), file.Len())
		}
	})
}
