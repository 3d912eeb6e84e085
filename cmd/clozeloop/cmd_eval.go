package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/unigram"
)

func evalCmd() command {
	return command{
		name:    "eval",
		summary: "score a model on a cloze eval set (top-1, top-5, MRR, gold NLL), beside a unigram-frequency baseline",
		run:     runEval,
	}
}

// evalChunk is the number of items per Evaluate call: the progress bar
// moves once per chunk.
const evalChunk = 256

// evalBaseline is one unigram-frequency baseline of the eval report.
type evalBaseline struct {
	// Name says what was counted: "unigram corpus" (every word of a raw
	// text), "unigram corpus content" (only the words a cloze builder may
	// blank, see contentWords) or "unigram answers" (gold answers).
	Name string `json:"name"`
	// Source is the file counted.
	Source string `json:"source"`
	// Vocab and Tokens are the distinct and total words counted.
	Vocab   int             `json:"vocab"`
	Tokens  int64           `json:"tokens"`
	Top     []string        `json:"top"`
	Metrics unigram.Metrics `json:"metrics"`
}

// evalReport is what eval prints.
type evalReport struct {
	Model string `json:"model"`
	Eval  string `json:"eval"`
	// Read is the number of items in the eval file, Sampled the number
	// scored (--limit).
	Read    int             `json:"read"`
	Sampled int             `json:"sampled"`
	Seed    uint64          `json:"seed"`
	Metrics mlm.EvalMetrics `json:"metrics"`
	// Baselines are scored on the same items as the model (those the
	// model skipped are left out).
	Baselines []evalBaseline `json:"baselines,omitempty"`
	Seconds   float64        `json:"seconds"`
}

func runEval(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "eval", "--model DIR --eval FILE [--limit N] [--batch 32] [--threads N] [--baseline-corpus FILE]... [--baseline-answers FILE] [--json]")
	modelDir := fs.String("model", "", "model directory (config.json, model.safetensors, tokenizer files), or a Hugging Face Hub model hf://org/name[@revision]")
	evalFile := fs.String("eval", "", "eval set (JSONL: text with [MASK], gold answers; docs/DATA.md)")
	limit := fs.Int("limit", 0, "score a random sample of this many items (0: all)")
	seed := fs.Uint64("seed", 1, "seed of the --limit sample")
	batch := fs.Int("batch", 32, "items per forward pass")
	threads := fs.Int("threads", 0, "libtorch threads (0: number of CPUs)")
	device := fs.String("device", "auto", "auto, cpu, cuda or cuda:N")
	var corpora stringList
	fs.Var(&corpora, "baseline-corpus", "raw text (one text per line): rank words by their frequency in it, the unigram-frequency baseline, once over all words and once over the content words a cloze builder may blank (repeatable)")
	answers := fs.String("baseline-answers", "", "eval-format JSONL (e.g. a pool's oracle.jsonl): rank words by their frequency as gold answers in it")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlagsOnly(fs, args, "model", "eval"); err != nil {
		return err
	}
	if *limit < 0 || *batch <= 0 || *threads < 0 {
		return usagef("--limit and --threads must not be negative, --batch must be positive")
	}
	start := time.Now()
	items, err := readEvalItems(ctx, *evalFile, func(dataset.EvalItem) bool { return true })
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return fmt.Errorf("eval set %s has no items", *evalFile)
	}
	// The baselines are counted before the model runs so that a bad
	// baseline file fails fast.
	var bases []evalBaseline
	var baseModels []*unigram.Model
	add := func(name, path string, um *unigram.Model) {
		bases = append(bases, evalBaseline{Name: name, Source: path, Vocab: um.Vocab(), Tokens: um.Tokens(), Top: um.Top(5)})
		baseModels = append(baseModels, um)
	}
	for _, path := range corpora {
		um, err := countBaseline(ctx, "unigram corpus", path)
		if err != nil {
			return err
		}
		add("unigram corpus", path, um)
		if content, err := contentWords(um); err == nil {
			add("unigram corpus content", path, content)
		} else {
			fmt.Fprintf(env.stderr, "eval: no content-word baseline for %s: it has no word that a cloze builder would blank (%v)\n", path, err)
		}
	}
	if *answers != "" {
		um, err := countBaseline(ctx, "unigram answers", *answers)
		if err != nil {
			return err
		}
		add("unigram answers", *answers, um)
	}
	rep := evalReport{Model: *modelDir, Eval: *evalFile, Read: len(items), Seed: *seed}
	items = sampleEvalItems(items, *limit, *seed)
	rep.Sampled = len(items)

	dir, _, err := resolveModel(ctx, env, *modelDir)
	if err != nil {
		return err
	}
	m, err := mlm.Load(ctx, dir, mlm.Options{Device: *device, Threads: *threads})
	if err != nil {
		return err
	}
	defer m.Close()
	rep.Metrics, err = evaluateChunked(ctx, m, items, *batch, newItemBar(env.stderr, "eval", len(items)))
	if err != nil {
		return err
	}
	skipped := make(map[string]bool, len(rep.Metrics.Skips))
	for _, s := range rep.Metrics.Skips {
		skipped[s.ID] = true
	}
	var gold [][]string
	for _, it := range items {
		if !skipped[it.ID] {
			gold = append(gold, it.Gold)
		}
	}
	for i, um := range baseModels {
		if bases[i].Metrics, err = um.Evaluate(ctx, gold); err != nil {
			return err
		}
	}
	rep.Baselines = bases
	rep.Seconds = time.Since(start).Seconds()
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	return printEvalTable(env.stdout, rep)
}

// readEvalItems reads the eval-format file at path, keeping the items keep
// accepts. A bad line fails with its file and line number.
func readEvalItems(ctx context.Context, path string, keep func(dataset.EvalItem) bool) ([]dataset.EvalItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval set: %w", err)
	}
	defer f.Close()
	r := dataset.NewEvalReader(f, path, dataset.Options{})
	var out []dataset.EvalItem
	for r.Next() {
		if r.Records()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if it := r.Record(); keep(it) {
			out = append(out, it)
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("read eval set: %w", err)
	}
	return out, nil
}

// countBaseline builds a unigram baseline from raw text ("unigram corpus")
// or from the gold answers of an eval-format file ("unigram answers").
func countBaseline(ctx context.Context, name, path string) (*unigram.Model, error) {
	c := unigram.NewCounter()
	if name == "unigram corpus" {
		if err := c.AddFile(ctx, path); err != nil {
			return nil, err
		}
	} else {
		if _, err := readEvalItems(ctx, path, func(it dataset.EvalItem) bool {
			for _, g := range it.Gold {
				c.AddWord(g)
			}
			return false
		}); err != nil {
			return nil, fmt.Errorf("baseline answers: %w", err)
		}
	}
	um, err := c.Model()
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return um, nil
}

// contentWords restricts a corpus baseline to the words that `clozeloop
// data build text` may blank in that corpus (dataset.FrequencyChooser with
// its defaults: not a stopword, not among the corpus's 100 most frequent
// words, letters only, at least 3 letters and 3 occurrences). Such a set
// never has a function word as its answer, so the plain corpus list, whose
// top five are "the, of, and, …", scores about zero there by
// construction; this list is the frequency baseline that knows the rule.
func contentWords(um *unigram.Model) (*unigram.Model, error) {
	ch := dataset.NewFrequencyChooser(um.Counts(), dataset.FrequencyOptions{})
	return um.Filter(func(w string, _ int64) bool { return ch.Eligible(w) })
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, s)
	return nil
}

// sampleEvalItems returns items, or when 0 < limit < len(items) a random
// sample of limit of them in file order, drawn with seed.
func sampleEvalItems(items []dataset.EvalItem, limit int, seed uint64) []dataset.EvalItem {
	if limit <= 0 || limit >= len(items) {
		return items
	}
	idx := rand.New(rand.NewPCG(seed, 0x636c6f7a65)).Perm(len(items))[:limit]
	sort.Ints(idx)
	out := make([]dataset.EvalItem, limit)
	for i, k := range idx {
		out[i] = items[k]
	}
	return out
}

// evaluateChunked runs m.Evaluate on chunks of items (so that bar can
// move) and combines the chunks' metrics, weighting each by its number of
// answers: the result is that of one Evaluate call over all items, up to
// float rounding.
func evaluateChunked(ctx context.Context, m *mlm.Model, items []dataset.EvalItem, batch int, bar *itemBar) (mlm.EvalMetrics, error) {
	var total mlm.EvalMetrics
	var top1, top5, rr, nll float64
	for lo := 0; lo < len(items); lo += evalChunk {
		hi := min(lo+evalChunk, len(items))
		chunk := make([]mlm.EvalItem, 0, hi-lo)
		for _, it := range items[lo:hi] {
			chunk = append(chunk, mlm.EvalItem{ID: it.ID, Text: it.Text, Gold: it.Gold})
		}
		met, err := m.Evaluate(ctx, chunk, mlm.EvalOptions{BatchSize: batch})
		if err != nil {
			bar.done()
			return mlm.EvalMetrics{}, err
		}
		n := float64(met.N)
		top1 += met.Top1 * n
		top5 += met.Top5 * n
		rr += met.MRR * n
		nll += met.GoldNLL * n
		total.Items += met.Items
		total.N += met.N
		total.Skipped += met.Skipped
		total.Skips = append(total.Skips, met.Skips...)
		bar.update(hi)
	}
	bar.done()
	if total.N > 0 {
		n := float64(total.N)
		total.Top1, total.Top5, total.MRR, total.GoldNLL = top1/n, top5/n, rr/n, nll/n
	}
	return total, nil
}

func printEvalTable(w io.Writer, rep evalReport) error {
	met := rep.Metrics
	fmt.Fprintf(w, "eval %s: %d of %d items scored", rep.Eval, met.Items, rep.Read)
	if rep.Sampled < rep.Read {
		fmt.Fprintf(w, " (sample of %d, seed %d)", rep.Sampled, rep.Seed)
	}
	fmt.Fprintf(w, ", %d answers, %d skipped, %.1fs\n\n", met.N, met.Skipped, rep.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "predictor\titems\tanswers\ttop-1\ttop-5\tMRR\tgold NLL\t")
	fmt.Fprintf(tw, "model %s\t%d\t%d\t%.2f%%\t%.2f%%\t%.4f\t%.3f\t\n", filepath.Base(rep.Model), met.Items, met.N, 100*met.Top1, 100*met.Top5, met.MRR, met.GoldNLL)
	for _, b := range rep.Baselines {
		bm := b.Metrics
		fmt.Fprintf(tw, "%s %s\t%d\t%d\t%.2f%%\t%.2f%%\t%.4f\t-\t\n", b.Name, shortPath(b.Source), bm.Items, bm.N, 100*bm.Top1, 100*bm.Top5, bm.MRR)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range rep.Baselines {
		fmt.Fprintf(w, "\n%s: %d words (%d distinct) in %s; predicts %s, … at every mask", b.Name, b.Tokens, b.Vocab, b.Source, strings.Join(b.Top, ", "))
	}
	if len(rep.Baselines) > 0 {
		fmt.Fprintln(w)
	}
	if met.Skipped > 0 {
		fmt.Fprintf(w, "\nskipped items (first %d of %d):\n", min(5, len(met.Skips)), met.Skipped)
		for _, s := range met.Skips[:min(5, len(met.Skips))] {
			fmt.Fprintf(w, "  %s: %s\n", s.ID, s.Reason)
		}
	}
	return nil
}

// shortPath names a file by its folder and base name ("kjv/raw.txt"),
// enough to tell two baselines' raw.txt apart in a table.
func shortPath(p string) string {
	dir := filepath.Base(filepath.Dir(p))
	if dir == "." || dir == string(filepath.Separator) {
		return filepath.Base(p)
	}
	return dir + "/" + filepath.Base(p)
}

// itemBar draws a one-line progress bar over items with \r: done/total
// and ETA.
type itemBar struct {
	w     io.Writer
	label string
	total int
	start time.Time
	drawn bool
}

func newItemBar(w io.Writer, label string, total int) *itemBar {
	return &itemBar{w: w, label: label, total: total, start: time.Now()}
}

func (b *itemBar) update(done int) {
	const width = 30
	filled := width * done / max(1, b.total)
	eta := "?"
	if done > 0 {
		left := time.Duration(float64(time.Since(b.start)) / float64(done) * float64(b.total-done))
		eta = left.Round(time.Second).String()
	}
	fmt.Fprintf(b.w, "\r%s %d/%d items [%s%s] ETA %s ", b.label, done, b.total,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), eta)
	b.drawn = true
}

// done ends the bar's line.
func (b *itemBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
