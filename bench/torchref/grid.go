package torchref

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// Cell is one measurement of a grid: a score or train run of Batch items.
type Cell struct {
	// Mode is ModeScore or ModeTrain; empty means ModeScore.
	Mode Mode `json:"mode"`
	// Batch is the number of items per forward pass.
	Batch int `json:"batch"`
	// Length is the length of every item ([CLS] and [SEP] included) when
	// Lengths is empty.
	Length int `json:"length,omitempty"`
	// Lengths (score mode only) are the lengths of the items, batched in
	// this order as Options.Lengths describes.
	Lengths []int `json:"lengths,omitempty"`
	// MaskOnly computes the MLM head only at the masks.
	MaskOnly bool `json:"mask_only"`
}

// validate checks c against the model m.
func (c Cell) validate(m Model) error {
	if c.Batch <= 0 {
		return fmt.Errorf("torchref: batch = %d: must be positive", c.Batch)
	}
	lengths := c.Lengths
	if len(lengths) == 0 {
		lengths = []int{c.Length}
	} else if c.Mode == ModeTrain {
		return fmt.Errorf("torchref: lengths are for score mode, not train")
	}
	for _, n := range lengths {
		if n < 3 || n > m.MaxPos {
			return fmt.Errorf("torchref: length %d must be in [3, max positions %d]", n, m.MaxPos)
		}
	}
	return nil
}

// MixLengths returns n item lengths drawn uniformly from [lo, hi] by a
// generator seeded with seed: the same arguments give the same lengths.
// The benchmarks give the same list to their Go side and to the reference.
func MixLengths(n, lo, hi int, seed uint64) ([]int, error) {
	if n < 0 || lo < 3 || hi < lo {
		return nil, fmt.Errorf("torchref: mix of %d lengths in [%d, %d]: want n >= 0 and 3 <= lo <= hi", n, lo, hi)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d6978))
	out := make([]int, n)
	for i := range out {
		out[i] = lo + rng.IntN(hi-lo+1)
	}
	return out, nil
}

// RunGrid measures cells with one bench_ref.py process (torch starts once
// and the score cells share one set of weights): opts gives the python,
// model, threads, seed and timing (Warmup, Runs, MinSeconds, MaxSeconds);
// its Mode, Batch, Length, Lengths and MaskOnly are ignored. It returns one
// result per cell, in order.
func RunGrid(ctx context.Context, opts Options, cells []Cell) ([]Result, error) {
	if len(cells) == 0 {
		return nil, fmt.Errorf("torchref: grid without cells")
	}
	o := opts.withDefaults()
	o.Mode = ModeScore
	norm := make([]Cell, len(cells))
	for i, c := range cells {
		if c.Mode == "" {
			c.Mode = ModeScore
		}
		if c.Mode != ModeScore && c.Mode != ModeTrain {
			return nil, fmt.Errorf("torchref: grid cell %d: mode %q (want score or train)", i, c.Mode)
		}
		norm[i] = c
	}
	args, err := o.commonArgs(norm...)
	if err != nil {
		return nil, err
	}
	args[0] = "grid"
	spec, err := json.Marshal(struct {
		Cells []Cell `json:"cells"`
	}{norm})
	if err != nil {
		return nil, fmt.Errorf("torchref: grid spec: %w", err)
	}
	python := o.Python
	if python == "" {
		if python, _, err = FindPython(ctx); err != nil {
			return nil, err
		}
	}
	out, err := runScript(ctx, python, append(args, "--spec", "spec.json"), map[string][]byte{"spec.json": spec})
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	var res []Result
	for _, l := range lines {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] != '{' {
			continue // noise a library printed
		}
		r, err := parseLine(l)
		if err != nil {
			return nil, fmt.Errorf("torchref: grid result %d: %w", len(res), err)
		}
		r.Python = python
		res = append(res, r)
	}
	if len(res) != len(norm) {
		return nil, fmt.Errorf("torchref: grid of %d cells gave %d results", len(norm), len(res))
	}
	for i, r := range res {
		c := norm[i]
		if r.Mode != c.Mode || r.Batch != c.Batch || r.MaskOnly != c.MaskOnly || len(r.Lengths) != len(c.Lengths) {
			return nil, fmt.Errorf("torchref: grid result %d (%s batch %d mask-only %v) does not match its cell %+v",
				i, r.Mode, r.Batch, r.MaskOnly, c)
		}
	}
	return res, nil
}
