package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLineBytes is the longest JSONL line a Reader accepts.
const MaxLineBytes = 1 << 20

// Reason says why a line was rejected.
type Reason string

// The reasons a line can be rejected.
const (
	ReasonInvalidUTF8   Reason = "invalid UTF-8"
	ReasonLineTooLong   Reason = "line too long"
	ReasonBadJSON       Reason = "malformed JSON"
	ReasonUnknownField  Reason = "unknown field"
	ReasonEmptyText     Reason = "empty text"
	ReasonNoMask        Reason = "no [MASK] in text"
	ReasonDuplicateID   Reason = "duplicate id"
	ReasonMissingItemID Reason = "missing item_id"
	ReasonUnknownItem   Reason = "item_id not in pool"
	ReasonAnswerCount   Reason = "answer count differs from mask count"
	ReasonEmptyAnswer   Reason = "empty answer"
	ReasonBadStatus     Reason = "bad status"
	ReasonMissingField  Reason = "missing field"
	ReasonBadValue      Reason = "bad value"
)

// A Problem is one reason with its detail.
type Problem struct {
	Reason Reason `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

func (p Problem) String() string {
	if p.Detail == "" {
		return string(p.Reason)
	}
	return string(p.Reason) + ": " + p.Detail
}

// LineError reports a rejected line: the file name, the 1-based line number
// and every reason found.
type LineError struct {
	File     string    `json:"file"`
	Line     int       `json:"line"`
	Problems []Problem `json:"problems"`
}

func (e *LineError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, strings.Join(parts, "; "))
}

// Has reports whether r is among the line's reasons.
func (e *LineError) Has(r Reason) bool {
	for _, p := range e.Problems {
		if p.Reason == r {
			return true
		}
	}
	return false
}

// Options tunes a Reader.
type Options struct {
	// SkipInvalid makes Next skip rejected lines instead of stopping; they
	// are counted by Skipped and the first MaxKeptErrors are kept in Invalid.
	SkipInvalid bool
	// MaxKeptErrors bounds Invalid (default 100).
	MaxKeptErrors int
	// NoDuplicateCheck turns off the duplicate-id check and its memory
	// (8 bytes of hash per id plus map overhead).
	NoDuplicateCheck bool
	// MaskCounts, for labels, gives the number of masks of a pool item by id
	// (see PoolIndex). When nil, the answer count is checked only for
	// being non-empty on answered labels and item ids are not checked.
	MaskCounts func(itemID string) (int, bool)
}

// Reader streams records of type T (Item, Label or EvalItem) from JSONL,
// validating each line. Only the current line and, unless
// NoDuplicateCheck, an 8-byte hash per id are held in memory.
//
//	r := dataset.NewItemReader(f, "pool.jsonl", dataset.Options{})
//	for r.Next() {
//		it := r.Record()
//	}
//	if err := r.Err(); err != nil { ... }
type Reader[T any] struct {
	br      *bufio.Reader
	name    string
	opts    Options
	check   func(rec *T, problems []Problem) []Problem
	line    int
	rec     T
	err     error
	seen    *idSet
	skipped int
	invalid []*LineError
	records int
	buf     []byte
}

func newReader[T any](r io.Reader, name string, opts Options) *Reader[T] {
	if opts.MaxKeptErrors <= 0 {
		opts.MaxKeptErrors = 100
	}
	rd := &Reader[T]{br: bufio.NewReaderSize(r, 64<<10), name: name, opts: opts}
	if !opts.NoDuplicateCheck {
		rd.seen = &idSet{}
	}
	return rd
}

// NewItemReader returns a Reader of pool items.
func NewItemReader(r io.Reader, name string, opts Options) *Reader[Item] {
	rd := newReader[Item](r, name, opts)
	rd.check = rd.checkItem
	return rd
}

// NewLabelReader returns a Reader of labels. Duplicates are labels with the
// same item_id, annotator and round.
func NewLabelReader(r io.Reader, name string, opts Options) *Reader[Label] {
	rd := newReader[Label](r, name, opts)
	rd.check = rd.checkLabel
	return rd
}

// NewEvalReader returns a Reader of evaluation items.
func NewEvalReader(r io.Reader, name string, opts Options) *Reader[EvalItem] {
	rd := newReader[EvalItem](r, name, opts)
	rd.check = rd.checkEval
	return rd
}

// Next advances to the next valid record. It returns false at the end of
// input, on a read error, or (without SkipInvalid) on the first rejected
// line; Err tells which.
func (r *Reader[T]) Next() bool {
	if r.err != nil {
		return false
	}
	for {
		line, tooLong, err := r.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			r.err = fmt.Errorf("read %s line %d: %w", r.name, r.line+1, err)
			return false
		}
		if line == nil && !tooLong && errors.Is(err, io.EOF) {
			return false
		}
		r.line++
		if r.line == 1 {
			// A UTF-8 byte order mark (Windows editors write one) opens
			// the file: it is not part of the first record.
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		var problems []Problem
		if tooLong {
			problems = []Problem{{Reason: ReasonLineTooLong, Detail: fmt.Sprintf("over %d bytes", MaxLineBytes)}}
		} else {
			if len(bytes.TrimSpace(line)) == 0 {
				if errors.Is(err, io.EOF) {
					return false
				}
				continue
			}
			problems = r.decode(line)
		}
		if len(problems) == 0 {
			r.records++
			return true
		}
		le := &LineError{File: r.name, Line: r.line, Problems: problems}
		if !r.opts.SkipInvalid {
			r.err = le
			return false
		}
		r.skipped++
		if len(r.invalid) < r.opts.MaxKeptErrors {
			r.invalid = append(r.invalid, le)
		}
		if errors.Is(err, io.EOF) {
			return false
		}
	}
}

// readLine returns the next line without its newline. A line longer than
// MaxLineBytes is consumed and reported by tooLong.
func (r *Reader[T]) readLine() (line []byte, tooLong bool, err error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !tooLong {
			if len(r.buf)+len(chunk) > MaxLineBytes+2 {
				tooLong = true
				r.buf = r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return bytes.TrimRight(r.buf, "\r\n"), tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(r.buf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
			return bytes.TrimRight(r.buf, "\r\n"), tooLong, io.EOF
		default:
			return nil, false, err
		}
	}
}

// utf8BOM is the UTF-8 byte order mark.
var utf8BOM = []byte("\xef\xbb\xbf")

func (r *Reader[T]) decode(line []byte) []Problem {
	if !utf8.Valid(line) {
		return []Problem{{Reason: ReasonInvalidUTF8}}
	}
	if bytes.HasPrefix(line, utf8BOM) {
		return []Problem{{Reason: ReasonBadJSON, Detail: "the line starts with a UTF-8 byte order mark (U+FEFF), which only the first line may have: were files joined? Remove it (e.g. sed -i '2,$s/^\\xEF\\xBB\\xBF//' FILE)"}}
	}
	var zero T
	r.rec = zero
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.rec); err != nil {
		msg := err.Error()
		if strings.HasPrefix(msg, "json: unknown field ") {
			return []Problem{{Reason: ReasonUnknownField, Detail: strings.TrimPrefix(msg, "json: unknown field ")}}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) || strings.Contains(msg, "parsing time") {
			return []Problem{{Reason: ReasonBadValue, Detail: msg}}
		}
		return []Problem{{Reason: ReasonBadJSON, Detail: msg}}
	}
	if dec.More() {
		return []Problem{{Reason: ReasonBadJSON, Detail: "more than one value on the line"}}
	}
	return r.check(&r.rec, nil)
}

// dup records key and reports whether it was seen before.
func (r *Reader[T]) dup(parts ...string) bool {
	if r.seen == nil {
		return false
	}
	return r.seen.add(hash64(parts...))
}

func checkText(text string, problems []Problem) []Problem {
	if strings.TrimSpace(text) == "" {
		return append(problems, Problem{Reason: ReasonEmptyText})
	}
	if CountMasks(text) == 0 {
		problems = append(problems, Problem{Reason: ReasonNoMask})
	}
	return problems
}

func checkMeta(meta json.RawMessage, problems []Problem) []Problem {
	if len(meta) == 0 {
		return problems
	}
	m := bytes.TrimSpace(meta)
	if string(m) == "null" {
		return problems
	}
	if len(m) == 0 || m[0] != '{' {
		return append(problems, Problem{Reason: ReasonBadValue, Detail: "meta must be a JSON object"})
	}
	return problems
}

func checkSource(s string, problems []Problem) []Problem {
	if !ValidSource(s) {
		return append(problems, Problem{Reason: ReasonBadValue, Detail: fmt.Sprintf("source %q: want at most %d ASCII letters, digits and - _ . : /", s, MaxSourceLen)})
	}
	return problems
}

func (r *Reader[T]) checkItem(rec *T, problems []Problem) []Problem {
	it := any(rec).(*Item)
	it.Text = CleanText(it.Text)
	problems = checkText(it.Text, problems)
	problems = checkMeta(it.Meta, problems)
	problems = checkSource(it.Source, problems)
	if it.ID = strings.TrimSpace(it.ID); it.ID == "" && it.Text != "" {
		it.ID = ContentID(it.Text)
	}
	if len(problems) == 0 && r.dup(it.ID) {
		problems = append(problems, Problem{Reason: ReasonDuplicateID, Detail: strconv.Quote(it.ID)})
	}
	return problems
}

func (r *Reader[T]) checkEval(rec *T, problems []Problem) []Problem {
	ev := any(rec).(*EvalItem)
	ev.Text = CleanText(ev.Text)
	problems = checkText(ev.Text, problems)
	problems = checkMeta(ev.Meta, problems)
	problems = checkSource(ev.Source, problems)
	if n := CountMasks(ev.Text); n > 0 && len(ev.Gold) != n {
		problems = append(problems, Problem{Reason: ReasonAnswerCount, Detail: fmt.Sprintf("%d gold answers for %d masks", len(ev.Gold), n)})
	}
	for i, g := range ev.Gold {
		if ev.Gold[i] = strings.TrimSpace(g); ev.Gold[i] == "" {
			problems = append(problems, Problem{Reason: ReasonEmptyAnswer, Detail: fmt.Sprintf("gold %d", i+1)})
		}
	}
	if ev.ID = strings.TrimSpace(ev.ID); ev.ID == "" && ev.Text != "" {
		ev.ID = ContentID(ev.Text)
	}
	if len(problems) == 0 && r.dup(ev.ID) {
		problems = append(problems, Problem{Reason: ReasonDuplicateID, Detail: strconv.Quote(ev.ID)})
	}
	return problems
}

func (r *Reader[T]) checkLabel(rec *T, problems []Problem) []Problem {
	lb := any(rec).(*Label)
	lb.ItemID = strings.TrimSpace(lb.ItemID)
	lb.Annotator = strings.TrimSpace(lb.Annotator)
	if lb.ItemID == "" {
		problems = append(problems, Problem{Reason: ReasonMissingItemID})
	}
	if lb.Annotator == "" {
		problems = append(problems, Problem{Reason: ReasonMissingField, Detail: "annotator"})
	}
	if lb.Round < 0 {
		problems = append(problems, Problem{Reason: ReasonBadValue, Detail: "round is negative"})
	}
	if lb.Time.IsZero() {
		problems = append(problems, Problem{Reason: ReasonMissingField, Detail: "time (RFC 3339)"})
	}
	if !lb.Status.Valid() {
		problems = append(problems, Problem{Reason: ReasonBadStatus, Detail: fmt.Sprintf("%q (want answered, skipped or flagged)", lb.Status)})
	}
	for i, a := range lb.Answers {
		if lb.Answers[i] = strings.TrimSpace(a); lb.Answers[i] == "" && lb.Status == StatusAnswered {
			problems = append(problems, Problem{Reason: ReasonEmptyAnswer, Detail: fmt.Sprintf("answer %d", i+1)})
		}
	}
	switch {
	case lb.Status == StatusSkipped && len(lb.Answers) > 0:
		problems = append(problems, Problem{Reason: ReasonAnswerCount, Detail: "a skipped label has no answers"})
	case lb.Status == StatusAnswered && len(lb.Answers) == 0:
		problems = append(problems, Problem{Reason: ReasonAnswerCount, Detail: "an answered label has no answers"})
	}
	if r.opts.MaskCounts != nil && lb.ItemID != "" {
		n, ok := r.opts.MaskCounts(lb.ItemID)
		switch {
		case !ok:
			problems = append(problems, Problem{Reason: ReasonUnknownItem, Detail: strconv.Quote(lb.ItemID)})
		case lb.Status == StatusAnswered && len(lb.Answers) != n,
			lb.Status == StatusFlagged && len(lb.Answers) != 0 && len(lb.Answers) != n:
			problems = append(problems, Problem{Reason: ReasonAnswerCount, Detail: fmt.Sprintf("%d answers for %d masks", len(lb.Answers), n)})
		}
	}
	if len(problems) == 0 && r.dup(lb.ItemID, lb.Annotator, strconv.Itoa(lb.Round)) {
		problems = append(problems, Problem{Reason: ReasonDuplicateID, Detail: fmt.Sprintf("item %q, annotator %q, round %d labelled twice", lb.ItemID, lb.Annotator, lb.Round)})
	}
	return problems
}

// Record returns the record read by the last successful Next.
func (r *Reader[T]) Record() T { return r.rec }

// Line returns the 1-based number of the last line read.
func (r *Reader[T]) Line() int { return r.line }

// Err returns the first error that stopped Next: a *LineError for a
// rejected line (without SkipInvalid) or a wrapped read error. It is nil at
// a clean end of input.
func (r *Reader[T]) Err() error { return r.err }

// Records returns how many valid records Next has returned.
func (r *Reader[T]) Records() int { return r.records }

// Skipped returns how many lines SkipInvalid skipped.
func (r *Reader[T]) Skipped() int { return r.skipped }

// Invalid returns the first MaxKeptErrors rejected lines under SkipInvalid.
func (r *Reader[T]) Invalid() []*LineError { return r.invalid }

// PoolIndex maps pool item ids (as 8-byte hashes) to their mask counts so
// that labels can be checked against the pool without holding its text.
type PoolIndex struct {
	masks map[uint64]uint16
}

// NewPoolIndex reads a pool and indexes it. Invalid pool lines fail the
// index with their *LineError.
func NewPoolIndex(r io.Reader, name string) (*PoolIndex, error) {
	idx := &PoolIndex{masks: make(map[uint64]uint16)}
	rd := NewItemReader(r, name, Options{})
	for rd.Next() {
		it := rd.Record()
		idx.masks[hash64(it.ID)] = uint16(min(CountMasks(it.Text), 1<<16-1))
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("index pool: %w", err)
	}
	return idx, nil
}

// MaskCount returns the number of masks of the item with the given id.
func (p *PoolIndex) MaskCount(id string) (int, bool) {
	n, ok := p.masks[hash64(id)]
	return int(n), ok
}

// Len returns the number of indexed items.
func (p *PoolIndex) Len() int { return len(p.masks) }
