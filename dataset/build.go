package dataset

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// The files a builder writes into its output folder.
const (
	PoolFile   = "pool.jsonl"   // pool items (no answers)
	EvalFile   = "eval.jsonl"   // evaluation items with gold answers
	OracleFile = "oracle.jsonl" // the pool's gold answers, eval format, same ids
	RawFile    = "raw.txt"      // raw text for MLM pretraining, one line each
	StatsFile  = "stats.json"   // BuildStats
)

// SplitOptions are the split and deduplication settings shared by builders.
type SplitOptions struct {
	// EvalFraction of sentences (by hash of the normalised sentence) go to
	// the eval split. Zero means DefaultEvalFraction; use a negative value
	// for no eval split.
	EvalFraction float64
	// Seed selects the split.
	Seed int64
	// MaxMasks skips items with more masks (0: no limit).
	MaxMasks int
	// MinContext skips items with fewer context words (ContextWords):
	// 0 means DefaultMinContext, a negative value no minimum. The
	// sentence of a skipped item still goes to the raw text.
	MinContext int
}

// DefaultEvalFraction is the eval share when SplitOptions.EvalFraction is 0.
const DefaultEvalFraction = 0.1

func (o SplitOptions) fraction() float64 {
	switch {
	case o.EvalFraction == 0:
		return DefaultEvalFraction
	case o.EvalFraction < 0:
		return 0
	}
	return o.EvalFraction
}

// BuildStats is what a builder reports and writes to stats.json.
type BuildStats struct {
	Source       string  `json:"source"`
	Seed         int64   `json:"seed"`
	EvalFraction float64 `json:"eval_fraction"`
	// Sentences is the number of candidate sentences seen.
	Sentences int `json:"sentences"`
	// NoMask counts sentences for which nothing could be masked.
	NoMask int `json:"no_mask"`
	// TooManyMasks counts items dropped by MaxMasks.
	TooManyMasks int `json:"too_many_masks,omitempty"`
	// MinContext is the minimum number of context words applied (0:
	// none); TooLittleContext counts the items dropped by it.
	MinContext       int `json:"min_context"`
	TooLittleContext int `json:"too_little_context"`
	// Duplicates counts sentences dropped because their normalised text
	// (or their masked item's id) was seen before.
	Duplicates int `json:"duplicates"`
	Pool       int `json:"pool"`
	Eval       int `json:"eval"`
	RawLines   int `json:"raw_lines"`
	// MasksPerItem is a histogram: number of masks → items.
	MasksPerItem map[string]int `json:"masks_per_item"`
	// WordNet holds counts specific to the WordNet builder.
	WordNet *WordNetStats `json:"wordnet,omitempty"`
	// Text holds counts specific to the raw-text builder.
	Text *TextStats `json:"text,omitempty"`
	// Supersense holds counts specific to the supersense builder.
	Supersense *SupersenseStats `json:"supersense,omitempty"`
	// Mixed holds counts specific to the mixed-pool builder.
	Mixed *MixedStats `json:"mixed,omitempty"`
	// Labelled holds counts specific to the labelled-file builder.
	Labelled *LabelledStats `json:"labelled,omitempty"`
}

// outputs writes the files of a build into a temporary folder inside the
// output folder and moves them into place only on commit, so a failed build
// leaves no partial files.
type outputs struct {
	dir, tmp                string
	files                   []*os.File
	pool, eval, oracle, raw *bufio.Writer
	split                   SplitOptions
	seenSentence, seenID    map[uint64]struct{}
	seenRaw                 map[uint64]struct{}
	stats                   *BuildStats
	// rawEval reports whether a raw line belongs to the eval side and so
	// must stay out of raw.txt (default: InEval by sentence hash).
	rawEval func(line string) bool
	// noPoolRaw keeps pool items' sentences out of the raw text (the
	// builder writes its raw text itself).
	noPoolRaw bool
}

func newOutputs(dir string, split SplitOptions, stats *BuildStats) (*outputs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("create temporary folder: %w", err)
	}
	o := &outputs{dir: dir, tmp: tmp, split: split, stats: stats,
		seenSentence: map[uint64]struct{}{}, seenID: map[uint64]struct{}{}, seenRaw: map[uint64]struct{}{}}
	stats.Seed = split.Seed
	stats.EvalFraction = split.fraction()
	stats.MinContext = minContext(split.MinContext)
	o.rawEval = func(line string) bool { return InEval(line, split.fraction(), split.Seed) }
	stats.MasksPerItem = map[string]int{}
	for _, p := range []struct {
		name string
		w    **bufio.Writer
	}{{PoolFile, &o.pool}, {EvalFile, &o.eval}, {OracleFile, &o.oracle}, {RawFile, &o.raw}} {
		f, err := os.Create(filepath.Join(tmp, p.name))
		if err != nil {
			o.abort()
			return nil, fmt.Errorf("create %s: %w", p.name, err)
		}
		o.files = append(o.files, f)
		*p.w = bufio.NewWriterSize(f, 256<<10)
	}
	return o, nil
}

// add writes one cloze item made from sentence, to the eval side when the
// sentence hashes there (InEval). It returns false when the item was
// dropped for too many masks, as a duplicate or for too little context.
func (o *outputs) add(sentence, text string, gold []string, meta any, source string) (bool, error) {
	if o.split.MaxMasks > 0 && len(gold) > o.split.MaxMasks {
		o.stats.TooManyMasks++
		// The sentence is still text to pretrain on.
		return false, o.addRaw(sentence)
	}
	return o.addTo(InEval(sentence, o.split.fraction(), o.split.Seed), sentence, text, gold, meta, source, ContextWords(text))
}

// addTo writes one item to the eval side (inEval) or to the pool and
// oracle (and, unless noPoolRaw, its sentence to the raw text); source is
// its Source ("" for none). It drops
// the item when its sentence or id was seen before, or when context (its
// number of context words) is below the minimum; the sentence of an item
// dropped for context still goes to the raw text.
func (o *outputs) addTo(inEval bool, sentence, text string, gold []string, meta any, source string, context int) (bool, error) {
	norm := NormalizeText(sentence)
	id := ContentID(text)
	hs, hi := hash64(norm), hash64(id)
	_, dupS := o.seenSentence[hs]
	_, dupI := o.seenID[hi]
	if dupS || dupI {
		o.stats.Duplicates++
		return false, nil
	}
	o.seenSentence[hs] = struct{}{}
	o.seenID[hi] = struct{}{}
	if o.stats.MinContext > 0 && context < o.stats.MinContext {
		o.stats.TooLittleContext++
		if o.noPoolRaw {
			return false, nil
		}
		return false, o.addRaw(sentence)
	}
	var m json.RawMessage
	if meta != nil {
		b, err := json.Marshal(meta)
		if err != nil {
			return false, fmt.Errorf("encode meta: %w", err)
		}
		m = b
	}
	ev := EvalItem{ID: id, Text: text, Gold: gold, Source: source, Meta: m}
	o.stats.MasksPerItem[strconv.Itoa(len(gold))]++
	if inEval {
		o.stats.Eval++
		return true, writeLine(o.eval, ev)
	}
	o.stats.Pool++
	if err := writeLine(o.pool, Item{ID: id, Text: text, Source: source, Meta: m}); err != nil {
		return false, err
	}
	if err := writeLine(o.oracle, ev); err != nil {
		return false, err
	}
	if o.noPoolRaw {
		return true, nil
	}
	// Pool sentences are raw text too; eval sentences never are.
	return true, o.addRaw(sentence)
}

// addRaw writes one line of raw text unless it was written before or its
// normalised text hashes to the eval side of the split.
func (o *outputs) addRaw(line string) error {
	line = CleanText(line)
	if line == "" {
		return nil
	}
	norm := NormalizeText(line)
	h := hash64(norm)
	if _, ok := o.seenRaw[h]; ok {
		return nil
	}
	if o.rawEval(line) {
		// Whatever hashes to the eval side stays out of the raw text, so
		// no eval sentence can be seen in pretraining.
		return nil
	}
	o.seenRaw[h] = struct{}{}
	o.stats.RawLines++
	_, err := o.raw.WriteString(line + "\n")
	return err
}

func writeLine(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// commit flushes and moves the files into the output folder.
func (o *outputs) commit() error {
	defer o.abort()
	for i, w := range []*bufio.Writer{o.pool, o.eval, o.oracle, o.raw} {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write %s: %w", o.files[i].Name(), err)
		}
		if err := o.files[i].Close(); err != nil {
			return fmt.Errorf("close %s: %w", o.files[i].Name(), err)
		}
	}
	st, err := json.MarshalIndent(o.stats, "", "  ")
	if err != nil {
		return fmt.Errorf("encode stats: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.tmp, StatsFile), append(st, '\n'), 0o644); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	names := []string{PoolFile, EvalFile, OracleFile, RawFile, StatsFile}
	sort.Strings(names)
	for _, n := range names {
		if err := os.Rename(filepath.Join(o.tmp, n), filepath.Join(o.dir, n)); err != nil {
			return fmt.Errorf("move %s into %s: %w", n, o.dir, err)
		}
	}
	return nil
}

// abort removes the temporary folder and whatever is left in it.
func (o *outputs) abort() {
	for _, f := range o.files {
		f.Close()
	}
	os.RemoveAll(o.tmp)
}
