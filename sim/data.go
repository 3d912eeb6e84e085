package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/clozeloop/clozeloop/dataset"
)

// File names in a data folder, as written by "clozeloop data build".
const (
	PoolFile   = "pool.jsonl"
	OracleFile = "oracle.jsonl"
	EvalFile   = "eval.jsonl"
)

// Data is the input of a simulation.
type Data struct {
	// Pool holds the pool items in file order.
	Pool []Item
	// Gold maps every pool item's ID to its gold answers.
	Gold map[string][]string
	// Eval is the evaluation set the runs are measured on: the whole eval
	// file, or the seeded subset of LoadOptions.EvalLimit items.
	Eval []EvalItem
	// EvalRest holds the eval file's other items (those not in Eval), in
	// file order; the target-aware strategies draw their target sample
	// from them when there are any.
	EvalRest []EvalItem
	// EvalTotal is the number of items in the eval file; EvalSeed the seed
	// of the subset (meaningful when len(Eval) < EvalTotal).
	EvalTotal int
	EvalSeed  int64
	// Replay holds general replay texts (LoadReplay), used besides the
	// labelled items when fine-tuning with replay.
	Replay []string
}

// LoadOptions configure LoadData.
type LoadOptions struct {
	// EvalLimit, when positive and smaller than the eval file, keeps a
	// seeded random subset of that many eval items (see EvalSubset).
	EvalLimit int
	// EvalSeed seeds the subset.
	EvalSeed int64
}

// LoadData reads pool.jsonl, oracle.jsonl and eval.jsonl from dir. Every
// pool item needs a gold answer with as many words as it has masks. A pool
// record's source field (or, failing that, its meta.source) becomes the
// item's Source.
func LoadData(ctx context.Context, dir string, opts LoadOptions) (*Data, error) {
	if opts.EvalLimit < 0 {
		return nil, fmt.Errorf("load data %s: negative eval limit %d", dir, opts.EvalLimit)
	}
	d := &Data{Gold: map[string][]string{}, EvalSeed: opts.EvalSeed}
	err := readFile(filepath.Join(dir, OracleFile), func(f *os.File) error {
		r := dataset.NewEvalReader(f, OracleFile, dataset.Options{})
		for r.Next() {
			rec := r.Record()
			d.Gold[rec.ID] = rec.Gold
		}
		return r.Err()
	})
	if err != nil {
		return nil, err
	}
	err = readFile(filepath.Join(dir, PoolFile), func(f *os.File) error {
		r := dataset.NewItemReader(f, PoolFile, dataset.Options{})
		for r.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec := r.Record()
			g, ok := d.Gold[rec.ID]
			if !ok {
				return fmt.Errorf("%s:%d: item %q has no gold answer in %s", PoolFile, r.Line(), rec.ID, OracleFile)
			}
			if n := dataset.CountMasks(rec.Text); n != len(g) {
				return fmt.Errorf("%s:%d: item %q has %d masks but %d gold answers in %s", PoolFile, r.Line(), rec.ID, n, len(g), OracleFile)
			}
			src := rec.Source
			if src == "" {
				src = metaSource(rec.Meta)
			}
			d.Pool = append(d.Pool, Item{ID: rec.ID, Text: rec.Text, Source: src})
		}
		return r.Err()
	})
	if err != nil {
		return nil, err
	}
	var all []EvalItem
	err = readFile(filepath.Join(dir, EvalFile), func(f *os.File) error {
		r := dataset.NewEvalReader(f, EvalFile, dataset.Options{})
		for r.Next() {
			rec := r.Record()
			all = append(all, EvalItem{ID: rec.ID, Text: rec.Text, Gold: rec.Gold})
		}
		return r.Err()
	})
	if err != nil {
		return nil, err
	}
	d.EvalTotal = len(all)
	d.Eval, d.EvalRest = EvalSubset(all, opts.EvalLimit, opts.EvalSeed)
	if len(d.Pool) == 0 {
		return nil, fmt.Errorf("load data %s: %s has no items", dir, PoolFile)
	}
	if len(d.Eval) == 0 {
		return nil, fmt.Errorf("load data %s: %s has no items", dir, EvalFile)
	}
	return d, nil
}

// EvalSubset splits items into a seeded uniform random subset of n of them
// and the rest, both in the input order. The subset is the n items with the
// smallest hash of (seed, ID): it does not depend on the file's order (an
// eval file written part of speech by part of speech gives a subset of
// every part in proportion), and the same seed and items give the same
// subset. n ≤ 0 or n ≥ len(items) keeps every item.
func EvalSubset(items []EvalItem, n int, seed int64) (subset, rest []EvalItem) {
	if n <= 0 || n >= len(items) {
		return items, nil
	}
	type keyed struct {
		h float64
		i int
	}
	k := make([]keyed, len(items))
	for i, it := range items {
		k[i] = keyed{hashUniform(seed, "eval", it.ID, 0), i}
	}
	sort.Slice(k, func(a, b int) bool {
		if k[a].h != k[b].h {
			return k[a].h < k[b].h
		}
		return k[a].i < k[b].i
	})
	in := make([]bool, len(items))
	for _, x := range k[:n] {
		in[x.i] = true
	}
	for i, it := range items {
		if in[i] {
			subset = append(subset, it)
		} else {
			rest = append(rest, it)
		}
	}
	return subset, rest
}

// metaSource returns the string meta.source of a record's meta object, or
// "".
func metaSource(meta json.RawMessage) string {
	if len(meta) == 0 {
		return ""
	}
	var m struct {
		Source any `json:"source"`
	}
	if json.Unmarshal(meta, &m) != nil {
		return ""
	}
	s, _ := m.Source.(string)
	return s
}

// LoadReplay reads replay texts from path, one per non-empty line (a raw
// text file such as the raw.txt of "clozeloop data build"). When the file
// has more than max lines (max > 0), a seeded uniform sample of max of
// them is kept, in file order.
func LoadReplay(ctx context.Context, path string, max int, seed int64) ([]string, error) {
	var lines []string
	err := readFile(path, func(f *os.File) error {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			if len(lines)%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if t := strings.TrimSpace(sc.Text()); t != "" {
				lines = append(lines, t)
			}
		}
		return sc.Err()
	})
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("read replay texts %s: no text", path)
	}
	if max > 0 && len(lines) > max {
		type keyed struct {
			h float64
			i int
		}
		k := make([]keyed, len(lines))
		for i := range lines {
			k[i] = keyed{hashUniform(seed, "replay", "", i), i}
		}
		sort.Slice(k, func(a, b int) bool { return k[a].h < k[b].h })
		keep := make([]int, max)
		for j := range keep {
			keep[j] = k[j].i
		}
		sort.Ints(keep)
		out := make([]string, max)
		for j, i := range keep {
			out[j] = lines[i]
		}
		lines = out
	}
	return lines, nil
}

func readFile(path string, fn func(*os.File) error) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read %s: %w (build the data folder with 'clozeloop data build')", path, err)
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if err := fn(f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
