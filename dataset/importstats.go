package dataset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DetectKind guesses the kind of a JSONL file from the fields of its first
// non-blank line: "item_id" means labels, "gold" means eval, else pool.
func DetectKind(r io.Reader) (Kind, error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			var m map[string]json.RawMessage
			if jerr := json.Unmarshal(t, &m); jerr != nil {
				return "", fmt.Errorf("detect kind from first line: %w", jerr)
			}
			switch {
			case m["item_id"] != nil:
				return KindLabels, nil
			case m["gold"] != nil:
				return KindEval, nil
			}
			return KindPool, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", errors.New("detect kind: the file has no records")
			}
			return "", fmt.Errorf("detect kind: %w", err)
		}
	}
}

// Result is the outcome of Validate or Import.
type Result struct {
	File    string       `json:"file"`
	Kind    Kind         `json:"kind"`
	Records int          `json:"records"`
	Skipped int          `json:"skipped"`
	Invalid []*LineError `json:"invalid,omitempty"`
	// MinContext is the minimum number of context words checked (0: not
	// checked). LowContext counts the pool or eval items with fewer, which
	// neither an annotator nor a model can be expected to answer; they are
	// a warning, not an error. LowContextFirst lists the first ones.
	MinContext      int              `json:"min_context"`
	LowContext      int              `json:"low_context"`
	LowContextFirst []LowContextItem `json:"low_context_first,omitempty"`
	// Output is the imported file, when one was written.
	Output string `json:"output,omitempty"`
}

// LowContextItem is one item with too few context words.
type LowContextItem struct {
	Line         int    `json:"line"`
	ID           string `json:"id"`
	ContextWords int    `json:"context_words"`
	Text         string `json:"text"`
}

// maxLowContextFirst bounds Result.LowContextFirst.
const maxLowContextFirst = 10

// ValidationError is returned when a file has rejected lines and skipping
// was not asked for. It lists the first rejected lines.
type ValidationError struct {
	File    string
	Invalid int
	First   []*LineError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d invalid line(s)", e.File, e.Invalid)
	for _, le := range e.First[:min(len(e.First), 10)] {
		b.WriteString("\n  ")
		b.WriteString(le.Error())
	}
	if e.Invalid > 10 {
		fmt.Fprintf(&b, "\n  … and %d more", e.Invalid-10)
	}
	return b.String()
}

// ValidateOptions configure Validate and Import.
type ValidateOptions struct {
	// Kind of records; empty means DetectKind.
	Kind Kind
	// SkipInvalid keeps going past rejected lines (Import then writes only
	// the valid ones).
	SkipInvalid bool
	// Pool, for labels, checks item ids and answer counts against the pool.
	Pool *PoolIndex
	// MinContext is the number of context words (ContextWords) below which
	// a pool or eval item is counted in Result.LowContext: 0 means
	// DefaultMinContext, a negative value no check.
	MinContext int
}

// scan reads every record of path, calling emit (when not nil) with each
// valid record.
func scan(ctx context.Context, path string, kind Kind, opts ValidateOptions, emit func(any) error) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	ro := Options{SkipInvalid: true}
	if opts.Pool != nil {
		ro.MaskCounts = opts.Pool.MaskCount
	}
	name := filepath.Base(path)
	res := &Result{File: path, Kind: kind}
	if kind != KindLabels {
		res.MinContext = minContext(opts.MinContext)
	}
	lowContext := func(line int, id, text string) {
		if res.MinContext == 0 {
			return
		}
		if n := ContextWords(text); n < res.MinContext {
			res.LowContext++
			if len(res.LowContextFirst) < maxLowContextFirst {
				res.LowContextFirst = append(res.LowContextFirst, LowContextItem{Line: line, ID: id, ContextWords: n, Text: text})
			}
		}
	}
	run := func(next func() bool, rec func() any, done func() (int, []*LineError, error)) error {
		for n := 0; next(); n++ {
			if n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			res.Records++
			r := rec()
			if emit != nil {
				if err := emit(r); err != nil {
					return err
				}
			}
		}
		var err error
		res.Skipped, res.Invalid, err = done()
		return err
	}
	switch kind {
	case KindPool:
		r := NewItemReader(f, name, ro)
		rec := func() any {
			it := r.Record()
			lowContext(r.Line(), it.ID, it.Text)
			return it
		}
		err = run(r.Next, rec, func() (int, []*LineError, error) { return r.Skipped(), r.Invalid(), r.Err() })
	case KindLabels:
		r := NewLabelReader(f, name, ro)
		err = run(r.Next, func() any { return r.Record() }, func() (int, []*LineError, error) { return r.Skipped(), r.Invalid(), r.Err() })
	case KindEval:
		r := NewEvalReader(f, name, ro)
		rec := func() any {
			it := r.Record()
			lowContext(r.Line(), it.ID, it.Text)
			return it
		}
		err = run(r.Next, rec, func() (int, []*LineError, error) { return r.Skipped(), r.Invalid(), r.Err() })
	default:
		return nil, fmt.Errorf("unknown record kind %q", kind)
	}
	if err != nil {
		return nil, err
	}
	if res.Skipped > 0 && !opts.SkipInvalid {
		return res, &ValidationError{File: path, Invalid: res.Skipped, First: res.Invalid}
	}
	return res, nil
}

func resolveKind(path string, k Kind) (Kind, error) {
	if k != "" {
		return k, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	k, err = DetectKind(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Validate checks every line of a JSONL file. Without SkipInvalid a file
// with rejected lines gives a *ValidationError (and the Result).
func Validate(ctx context.Context, path string, opts ValidateOptions) (*Result, error) {
	kind, err := resolveKind(path, opts.Kind)
	if err != nil {
		return nil, err
	}
	return scan(ctx, path, kind, opts, nil)
}

// Import copies the valid, normalised records of a JSONL file (ids filled
// in, text white space collapsed) to outDir under the file's base name.
// The whole file is validated first: without SkipInvalid, a file with any
// rejected line fails with a *ValidationError and nothing is written. The
// output appears atomically (temporary file, then rename).
func Import(ctx context.Context, path, outDir string, opts ValidateOptions) (*Result, error) {
	kind, err := resolveKind(path, opts.Kind)
	if err != nil {
		return nil, err
	}
	if _, err := scan(ctx, path, kind, opts, nil); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", outDir, err)
	}
	dest := filepath.Join(outDir, filepath.Base(path))
	tmp, err := os.CreateTemp(outDir, ".import-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	w := bufio.NewWriterSize(tmp, 256<<10)
	res, err := scan(ctx, path, kind, opts, func(rec any) error { return writeLine(w, rec) })
	if err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return nil, fmt.Errorf("move import into place: %w", err)
	}
	res.Output = dest
	return res, nil
}

// Count is one entry of a frequency list.
type Count struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// FileStats describes a JSONL file.
type FileStats struct {
	File    string `json:"file"`
	Kind    Kind   `json:"kind"`
	Records int    `json:"records"`
	Invalid int    `json:"invalid"`
	// MasksPerItem is a histogram: masks → records (pool and eval).
	MasksPerItem map[string]int `json:"masks_per_item,omitempty"`
	// Words summarises the text length in words (pool and eval).
	Words *Distribution `json:"words,omitempty"`
	// TopAnswers are the most frequent gold answers (eval) or answers
	// (labels), lower case.
	TopAnswers []Count `json:"top_answers,omitempty"`
	// Status counts labels by status.
	Status map[string]int `json:"status,omitempty"`
	// Duplicates counts records whose normalised text (pool, eval) or
	// item, annotator and round (labels) was seen before; DuplicateRate is
	// Duplicates / Records.
	Duplicates    int     `json:"duplicates"`
	DuplicateRate float64 `json:"duplicate_rate"`
}

// Distribution summarises integer values.
type Distribution struct {
	Min  int     `json:"min"`
	Max  int     `json:"max"`
	Mean float64 `json:"mean"`
	P50  int     `json:"p50"`
	P90  int     `json:"p90"`
	P99  int     `json:"p99"`
}

// ComputeStats reads a JSONL file once and describes it. Invalid lines are
// counted and skipped. Memory holds a histogram of lengths, an 8-byte hash
// per record and the answer counts.
func ComputeStats(ctx context.Context, path string, kind Kind, topN int) (*FileStats, error) {
	kind, err := resolveKind(path, kind)
	if err != nil {
		return nil, err
	}
	st := &FileStats{File: path, Kind: kind}
	lengths := map[int]int{}
	answers := map[string]int{}
	seen := map[uint64]struct{}{}
	dup := func(parts ...string) {
		h := hash64(parts...)
		if _, ok := seen[h]; ok {
			st.Duplicates++
			return
		}
		seen[h] = struct{}{}
	}
	text := func(t string) {
		if st.MasksPerItem == nil {
			st.MasksPerItem = map[string]int{}
		}
		st.MasksPerItem[fmt.Sprint(CountMasks(t))]++
		lengths[len(strings.Fields(t))]++
		dup(NormalizeText(t))
	}
	res, err := scan(ctx, path, kind, ValidateOptions{SkipInvalid: true}, func(rec any) error {
		switch r := rec.(type) {
		case Item:
			text(r.Text)
		case EvalItem:
			text(r.Text)
			for _, g := range r.Gold {
				answers[strings.ToLower(g)]++
			}
		case Label:
			if st.Status == nil {
				st.Status = map[string]int{}
			}
			st.Status[string(r.Status)]++
			dup(r.ItemID, r.Annotator, fmt.Sprint(r.Round))
			for _, a := range r.Answers {
				answers[strings.ToLower(a)]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Records, st.Invalid = res.Records, res.Skipped
	if st.Records > 0 {
		st.DuplicateRate = float64(st.Duplicates) / float64(st.Records)
	}
	if len(lengths) > 0 {
		st.Words = distribution(lengths)
	}
	st.TopAnswers = topCounts(answers, topN)
	return st, nil
}

func distribution(h map[int]int) *Distribution {
	keys := make([]int, 0, len(h))
	total, sum := 0, 0
	for k, n := range h {
		keys = append(keys, k)
		total += n
		sum += k * n
	}
	sort.Ints(keys)
	d := &Distribution{Min: keys[0], Max: keys[len(keys)-1], Mean: float64(sum) / float64(total)}
	pct := func(p float64) int {
		need := int(p*float64(total) + 0.5)
		acc := 0
		for _, k := range keys {
			acc += h[k]
			if acc >= need {
				return k
			}
		}
		return keys[len(keys)-1]
	}
	d.P50, d.P90, d.P99 = pct(0.5), pct(0.9), pct(0.99)
	return d
}

func topCounts(m map[string]int, n int) []Count {
	out := make([]Count, 0, len(m))
	for v, c := range m {
		out = append(out, Count{Value: v, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	if n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
