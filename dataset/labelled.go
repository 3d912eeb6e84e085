package dataset

import (
	"context"
	"fmt"
	"os"
)

// LabelledOptions configure BuildLabelled.
type LabelledOptions struct {
	// In is a JSONL file of items with their gold answers (the eval
	// format: id, text, gold, meta), e.g. items your annotators already
	// answered, or another build's eval.jsonl.
	In string
	// Name is the Source of the build's stats (default: In).
	Name string
	// Out is the output folder.
	Out string
	// Split sets the eval share, seed, mask and context limits.
	Split SplitOptions
}

// LabelledStats are the labelled-file-specific counts of a build.
type LabelledStats struct {
	In string `json:"in"`
	// Items is the number of items read.
	Items int `json:"items"`
}

// BuildLabelled turns a file of answered items into a simulation folder:
// each item goes to the eval side or to the pool (its answers to
// oracle.jsonl) by the seeded hash of its sentence with the blanks filled
// in, as the other builders split (InEval); duplicates and items with too
// little context are dropped and counted; raw.txt holds the pool's
// sentences. Item ids are the content ids of their texts, as every
// builder writes them, and meta is kept. A split that leaves either side
// empty fails: a file that is itself the eval side of a build made with
// the same seed all hashes to the eval side again, and needs another seed.
func BuildLabelled(ctx context.Context, opts LabelledOptions) (*BuildStats, error) {
	if opts.Name == "" {
		opts.Name = opts.In
	}
	f, err := os.Open(opts.In)
	if err != nil {
		return nil, fmt.Errorf("build labelled: %w", err)
	}
	defer f.Close()
	stats := &BuildStats{Source: opts.Name, Labelled: &LabelledStats{In: opts.In}}
	o, err := newOutputs(opts.Out, opts.Split, stats)
	if err != nil {
		return nil, fmt.Errorf("build labelled: %w", err)
	}
	defer o.abort()
	r := NewEvalReader(f, opts.In, Options{})
	for r.Next() {
		if r.Records()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		it := r.Record()
		stats.Sentences++
		stats.Labelled.Items++
		if _, err := o.add(fillBlanks(it.Text, it.Gold), it.Text, it.Gold, it.Meta, it.Source); err != nil {
			return nil, fmt.Errorf("build labelled: %w", err)
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("build labelled: %w", err)
	}
	if stats.Pool == 0 || stats.Eval == 0 && o.split.fraction() > 0 {
		return nil, fmt.Errorf("build labelled: the split of %d items left %d in the pool and %d in the eval set; "+
			"a file that is the eval side of a build with seed %d hashes to one side again: pick another --seed",
			stats.Labelled.Items, stats.Pool, stats.Eval, opts.Split.Seed)
	}
	if err := o.commit(); err != nil {
		return nil, fmt.Errorf("build labelled: %w", err)
	}
	return stats, nil
}
