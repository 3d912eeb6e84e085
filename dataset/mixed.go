package dataset

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// MixedOptions configure BuildMixed.
type MixedOptions struct {
	// Main and Target are data folders written by a builder (pool.jsonl,
	// oracle.jsonl, eval.jsonl).
	Main, Target string
	// MainSource and TargetSource are the Source given to their items
	// (see ValidSource; default: the folders' base names).
	MainSource, TargetSource string
	// Out is the output folder.
	Out string
	// TargetShare is the target's share of the output pool, in (0, 1).
	TargetShare float64
	// MainLimit keeps at most this many main pool items (0: all).
	MainLimit int
	// Seed selects the sampled items and the pool order.
	Seed int64
}

// MixedStats are the mixed-pool-specific counts of a build.
type MixedStats struct {
	Main         string  `json:"main"`
	Target       string  `json:"target"`
	MainSource   string  `json:"main_source"`
	TargetSource string  `json:"target_source"`
	TargetShare  float64 `json:"target_share"`
	// MainAvailable and TargetAvailable are the pool sizes of the inputs.
	MainAvailable   int `json:"main_available"`
	TargetAvailable int `json:"target_available"`
	// PoolBySource counts the output pool (and oracle) by source.
	PoolBySource map[string]int `json:"pool_by_source"`
	// EvalBySource counts the output eval set (the target's) by source.
	EvalBySource map[string]int `json:"eval_by_source"`
}

// mixedItem is one pool item with its gold answers.
type mixedItem struct {
	item Item
	gold []string
	key  uint64
}

// BuildMixed writes a pool that is mostly the main folder's pool plus a
// minority of the target folder's pool: all main items (or MainLimit of
// them, sampled by seeded hash), and as many target items, sampled the
// same way, as make TargetShare of the pool. Every pool and oracle item
// carries its folder's source in Item.Source. The eval set is the
// target's eval set; the oracle is the union of the two oracles'
// answers for the chosen items; raw.txt holds the pool items' sentences
// (answers filled in) except any that is also a target eval sentence. The
// pool is in a seeded hash order, so the sources are interleaved. The
// output depends only on the inputs, the options and the seed.
func BuildMixed(ctx context.Context, opts MixedOptions) (*BuildStats, error) {
	if opts.Main == "" || opts.Target == "" {
		return nil, errors.New("build mixed: want a main and a target data folder")
	}
	if !(opts.TargetShare > 0 && opts.TargetShare < 1) {
		return nil, fmt.Errorf("build mixed: target share %v is not in (0, 1)", opts.TargetShare)
	}
	if opts.MainLimit < 0 {
		return nil, fmt.Errorf("build mixed: main limit %d is negative", opts.MainLimit)
	}
	if opts.MainSource == "" {
		opts.MainSource = filepath.Base(filepath.Clean(opts.Main))
	}
	if opts.TargetSource == "" {
		opts.TargetSource = filepath.Base(filepath.Clean(opts.Target))
	}
	for _, s := range []string{opts.MainSource, opts.TargetSource} {
		if s == "" || !ValidSource(s) {
			return nil, fmt.Errorf("build mixed: source %q: want 1 to %d ASCII letters, digits and - _ . : /", s, MaxSourceLen)
		}
	}
	if opts.MainSource == opts.TargetSource {
		return nil, fmt.Errorf("build mixed: main and target have the same source %q; name them apart", opts.MainSource)
	}
	main, err := readPoolWithGold(ctx, opts.Main)
	if err != nil {
		return nil, err
	}
	target, err := readPoolWithGold(ctx, opts.Target)
	if err != nil {
		return nil, err
	}
	evalItems, err := readEvalFile(ctx, filepath.Join(opts.Target, EvalFile))
	if err != nil {
		return nil, err
	}
	nMain := len(main)
	if opts.MainLimit > 0 {
		nMain = min(nMain, opts.MainLimit)
	}
	nTarget := int(math.Round(opts.TargetShare * float64(nMain) / (1 - opts.TargetShare)))
	if nMain == 0 || nTarget == 0 {
		return nil, fmt.Errorf("build mixed: %d main items at target share %v give %d target items; want at least one of each", nMain, opts.TargetShare, nTarget)
	}
	if nTarget > len(target) {
		return nil, fmt.Errorf("build mixed: target share %v of a pool with %d main items needs %d target items, but %s has %d; lower the share or the main limit",
			opts.TargetShare, nMain, nTarget, filepath.Join(opts.Target, PoolFile), len(target))
	}
	ms := &MixedStats{Main: opts.Main, Target: opts.Target, MainSource: opts.MainSource, TargetSource: opts.TargetSource,
		TargetShare: opts.TargetShare, MainAvailable: len(main), TargetAvailable: len(target),
		PoolBySource: map[string]int{}, EvalBySource: map[string]int{}}
	seed := strconv.FormatInt(opts.Seed, 10)
	pick := func(items []mixedItem, source string, n int) []mixedItem {
		for i := range items {
			items[i].item.Source = source
			items[i].key = hash64(seed, "mixed-sample", source, items[i].item.ID)
		}
		sort.SliceStable(items, func(a, b int) bool { return items[a].key < items[b].key })
		return items[:n]
	}
	pool := append(pick(main, opts.MainSource, nMain), pick(target, opts.TargetSource, nTarget)...)
	for i := range pool {
		pool[i].key = hash64(seed, "mixed-order", pool[i].item.ID)
	}
	sort.SliceStable(pool, func(a, b int) bool { return pool[a].key < pool[b].key })

	stats := &BuildStats{Source: "mixed:" + opts.MainSource + "+" + opts.TargetSource, Mixed: ms}
	out, err := newOutputs(opts.Out, SplitOptions{Seed: opts.Seed, EvalFraction: -1, MinContext: -1}, stats)
	if err != nil {
		return nil, err
	}
	stats.EvalFraction = 0
	evalSentences := map[uint64]struct{}{}
	for _, ev := range evalItems {
		ev.Source = opts.TargetSource
		evalSentences[hash64(NormalizeText(fillBlanks(ev.Text, ev.Gold)))] = struct{}{}
		if err := writeLine(out.eval, ev); err != nil {
			out.abort()
			return nil, err
		}
		stats.Eval++
		ms.EvalBySource[ev.Source]++
	}
	out.rawEval = func(line string) bool {
		_, ok := evalSentences[hash64(NormalizeText(line))]
		return ok
	}
	seen := map[string]bool{}
	for _, it := range pool {
		stats.Sentences++
		if seen[it.item.ID] {
			// The same item (same id) in both folders: keep the first.
			stats.Duplicates++
			continue
		}
		seen[it.item.ID] = true
		if err := writeLine(out.pool, it.item); err != nil {
			out.abort()
			return nil, err
		}
		if err := writeLine(out.oracle, EvalItem{ID: it.item.ID, Text: it.item.Text, Gold: it.gold, Source: it.item.Source, Meta: it.item.Meta}); err != nil {
			out.abort()
			return nil, err
		}
		if err := out.addRaw(fillBlanks(it.item.Text, it.gold)); err != nil {
			out.abort()
			return nil, err
		}
		stats.Pool++
		ms.PoolBySource[it.item.Source]++
		stats.MasksPerItem[strconv.Itoa(len(it.gold))]++
	}
	if err := out.commit(); err != nil {
		return nil, err
	}
	return stats, nil
}

// fillBlanks puts the answers back into the blanks of a text, in order.
func fillBlanks(text string, answers []string) string {
	for _, a := range answers {
		text = strings.Replace(text, MaskToken, a, 1)
	}
	return text
}

// readPoolWithGold reads dir's pool.jsonl and oracle.jsonl and joins them
// by id, in pool order. Every pool item needs an oracle entry with as many
// answers as masks.
func readPoolWithGold(ctx context.Context, dir string) ([]mixedItem, error) {
	oracle, err := readEvalFile(ctx, filepath.Join(dir, OracleFile))
	if err != nil {
		return nil, err
	}
	gold := make(map[string][]string, len(oracle))
	for _, o := range oracle {
		gold[o.ID] = o.Gold
	}
	path := filepath.Join(dir, PoolFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("build mixed: %w", err)
	}
	defer f.Close()
	var out []mixedItem
	r := NewItemReader(f, path, Options{})
	for r.Next() {
		if r.Records()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		it := r.Record()
		g, ok := gold[it.ID]
		if !ok {
			return nil, fmt.Errorf("build mixed: %s:%d: item %q has no answers in %s", path, r.Line(), it.ID, OracleFile)
		}
		if len(g) != CountMasks(it.Text) {
			return nil, fmt.Errorf("build mixed: %s:%d: item %q has %d masks but %d answers in %s", path, r.Line(), it.ID, CountMasks(it.Text), len(g), OracleFile)
		}
		out = append(out, mixedItem{item: it, gold: g})
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("build mixed: %w", err)
	}
	return out, nil
}

// readEvalFile reads a whole eval-format file; a bad line fails it.
func readEvalFile(ctx context.Context, path string) ([]EvalItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("build mixed: %w", err)
	}
	defer f.Close()
	var out []EvalItem
	r := NewEvalReader(f, path, Options{})
	for r.Next() {
		if r.Records()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out = append(out, r.Record())
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("build mixed: %w", err)
	}
	return out, nil
}
