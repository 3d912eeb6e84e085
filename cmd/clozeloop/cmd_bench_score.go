package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/clozeloop/clozeloop/bench/torchref"
	"github.com/clozeloop/clozeloop/mlm"
)

// benchScoreRow is one line of the score section: items/s of the Go
// scoring path and of the PyTorch eager reference on the same items.
type benchScoreRow struct {
	Model   string `json:"model"`
	Threads int    `json:"threads"`
	Batch   int    `json:"batch"`
	// Length is the item length, or "mix 8-64" for the mix of lengths.
	Length string `json:"length"`
	// Items is the number of items of one timed run, Runs the timed runs
	// of the Go side.
	Items int `json:"items"`
	Runs  int `json:"runs"`
	// GoItemsPerSec is mlm.Score's throughput (median run).
	GoItemsPerSec float64 `json:"go_items_per_s"`
	// TorchEveryItemsPerSec computes logits at every position as the
	// Hugging Face pipeline does; TorchMaskItemsPerSec only at the mask.
	// Zero when the reference did not run.
	TorchEveryItemsPerSec float64 `json:"torch_every_items_per_s,omitempty"`
	TorchMaskItemsPerSec  float64 `json:"torch_mask_items_per_s,omitempty"`
	// RatioEvery and RatioMask are Go / reference.
	RatioEvery float64 `json:"ratio_go_every,omitempty"`
	RatioMask  float64 `json:"ratio_go_mask,omitempty"`
}

// benchTiming bounds each measurement: one warm-up, then timed runs until
// at least MinTime has passed, capped at MaxTime (after at least one run).
type benchTiming struct {
	MinTime, MaxTime time.Duration
}

func (t benchTiming) mlm() mlm.BenchOptions {
	return mlm.BenchOptions{Warmup: 1, MinRuns: 1, MinTime: t.MinTime, MaxTime: t.MaxTime}
}

func (t benchTiming) ref(o torchref.Options) torchref.Options {
	o.Warmup, o.Runs, o.MinSeconds, o.MaxSeconds = 1, 1, t.MinTime.Seconds(), t.MaxTime.Seconds()
	return o
}

// mixBounds are the shortest and longest item of the mix of lengths.
const mixLo, mixHi = 8, 64

// benchSeed seeds the weights, items and mix lengths of every section.
const benchSeed = 7

func runBenchScore(ctx context.Context, env *cmdEnv, args []string, h benchHeader) error {
	var c benchCommon
	fs := newFlagSet(env, "bench score", "[--models small,bert-base] [--threads 1,2] [--batches 1,8,32] [--lengths 16,32,64] [--mix-items 128] [--quick] [--no-torch] [--json]\n\n"+
		"Items/s of pool scoring (mlm.Score: tokenization, length buckets, head at the masks) on random-weight\n"+
		"models with one [MASK] per item, beside a PyTorch eager reference on the same shapes computing logits\n"+
		"at every position (the Hugging Face pipeline's way) and only at the mask. Each cell: one warm-up batch,\n"+
		"then timed runs (a run = one batch; for the mix, all its items) for at least --min-time, capped at\n"+
		"--max-time; the median run counts. The mix row draws item lengths uniformly from 8..64 (seeded);\n"+
		"Go buckets them by length, the reference batches them in input order padded to each batch's longest.")
	c.register(fs)
	batches := fs.String("batches", "1,8,32", "batch sizes, comma separated")
	lengths := fs.String("lengths", "16,32,64", "item lengths in tokens ([CLS] and [SEP] included), comma separated")
	mix := fs.Bool("mix", true, "add a row per model and thread count for a mix of lengths 8-64")
	mixItems := fs.Int("mix-items", 128, "items in the mix")
	mixBatch := fs.Int("mix-batch", 0, "batch size of the mix (0: the largest of --batches)")
	minTime := fs.Duration("min-time", 1500*time.Millisecond, "least timed duration of each measurement")
	maxTime := fs.Duration("max-time", 12*time.Second, "cap on the timed duration of each measurement (after one run)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c.applyQuick(map[string]func(){
		"models": func() { c.models = "small" }, "threads": func() { c.threads = "1" },
		"batches": func() { *batches = "8" }, "lengths": func() { *lengths = "16" },
		"mix-items": func() { *mixItems = 16 }, "min-time": func() { *minTime = 50 * time.Millisecond },
		"max-time": func() { *maxTime = time.Second },
	})
	models, threads, err := c.lists()
	if err != nil {
		return err
	}
	bs, err := parseInts("batches", *batches, 1, 4096)
	if err != nil {
		return err
	}
	ls, err := parseInts("lengths", *lengths, 3, 4096)
	if err != nil {
		return err
	}
	if *mixItems < 1 || *mixBatch < 0 || *minTime < 0 || *maxTime < 0 {
		return usagef("--mix-items must be positive and --mix-batch, --min-time and --max-time not negative")
	}
	mb := *mixBatch
	if mb == 0 {
		mb = slices.Max(bs)
	}
	timing := benchTiming{*minTime, *maxTime}
	var rows []benchScoreRow
	for _, bm := range models {
		for _, l := range ls {
			if l > bm.Cfg.MaxSequenceLength() {
				return usagef("--lengths: %d is longer than %s's %d positions", l, bm.Name, bm.Cfg.MaxSequenceLength())
			}
		}
		r, err := benchScoreModel(ctx, env, bm, threads, bs, ls, *mix, *mixItems, mb, timing, h)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	if c.asJSON {
		return writeJSONLine(env.stdout, struct {
			Section      string          `json:"section"`
			MinSeconds   float64         `json:"min_seconds"`
			MaxSeconds   float64         `json:"max_seconds"`
			MixLengths   string          `json:"mix_lengths"`
			MixItems     int             `json:"mix_items"`
			TorchVersion string          `json:"pytorch_version,omitempty"`
			Rows         []benchScoreRow `json:"rows"`
		}{"score", minTime.Seconds(), maxTime.Seconds(), fmt.Sprintf("%d-%d", mixLo, mixHi), *mixItems, h.TorchVersion, rows})
	}
	w := env.stdout
	fmt.Fprintf(w, "score: items/s, one [MASK] per item; torch every = logits at every position (HF pipeline), torch mask = at the mask only\n")
	fmt.Fprintf(w, "%-10s %7s %5s %-9s %10s %12s %11s %9s %9s\n", "model", "threads", "batch", "length", "go", "torch every", "torch mask", "go/every", "go/mask")
	for _, r := range rows {
		fmt.Fprintf(w, "%-10s %7d %5d %-9s %10s %12s %11s %9s %9s\n", r.Model, r.Threads, r.Batch, r.Length,
			cellf("%.1f", r.GoItemsPerSec), cellf("%.1f", r.TorchEveryItemsPerSec), cellf("%.1f", r.TorchMaskItemsPerSec),
			ratiof(r.RatioEvery), ratiof(r.RatioMask))
	}
	return nil
}

// benchScoreModel measures one model: for each thread count, the Go side
// on every cell, then the reference on the same cells in one process.
func benchScoreModel(ctx context.Context, env *cmdEnv, bm benchModel, threads, bs, ls []int, mix bool, mixItems, mixBatch int, timing benchTiming, h benchHeader) ([]benchScoreRow, error) {
	tok, err := mlm.SyntheticTokenizer(bm.Cfg.VocabSize)
	if err != nil {
		return nil, err
	}
	m, err := mlm.New(bm.Cfg, tok, mlm.Options{Device: "cpu", Threads: threads[0], Seed: benchSeed})
	if err != nil {
		return nil, fmt.Errorf("bench score: new %s model: %w", bm.Name, err)
	}
	defer m.Close()
	type cell struct {
		batch   int
		length  string
		items   []mlm.ScoreItem
		lengths []int // the mix only
	}
	var cells []cell
	for _, b := range bs {
		for _, l := range ls {
			cells = append(cells, cell{batch: b, length: strconv.Itoa(l),
				items: mlm.SyntheticItems(b, l, l, bm.Cfg.VocabSize, benchSeed)})
		}
	}
	if mix {
		hi := min(mixHi, bm.Cfg.MaxSequenceLength())
		lens, err := torchref.MixLengths(mixItems, mixLo, hi, benchSeed)
		if err != nil {
			return nil, err
		}
		cells = append(cells, cell{batch: mixBatch, length: fmt.Sprintf("mix %d-%d", mixLo, hi), lengths: lens,
			items: mlm.SyntheticItemsOfLengths(lens, bm.Cfg.VocabSize, benchSeed)})
	}
	var rows []benchScoreRow
	for _, t := range threads {
		for _, c := range cells {
			env.log.Info("bench score", "model", bm.Name, "threads", t, "batch", c.batch, "length", c.length)
			var res mlm.BenchResult
			err := withThreads(t, func() error {
				var err error
				res, err = m.BenchScoreRuns(ctx, c.items, mlm.ScoreOptions{BatchSize: c.batch, TopK: 5}, timing.mlm())
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("bench score %s threads %d batch %d length %s: %w", bm.Name, t, c.batch, c.length, err)
			}
			rows = append(rows, benchScoreRow{Model: bm.Name, Threads: t, Batch: c.batch, Length: c.length,
				Items: res.Items, Runs: res.Runs, GoItemsPerSec: res.ItemsPerSec})
		}
		if !h.torch() {
			continue
		}
		var ref []torchref.Cell
		for _, c := range cells {
			l, _ := strconv.Atoi(c.length)
			for _, maskOnly := range []bool{false, true} {
				ref = append(ref, torchref.Cell{Mode: torchref.ModeScore, Batch: c.batch, Length: l, Lengths: c.lengths, MaskOnly: maskOnly})
			}
		}
		env.log.Info("bench score: PyTorch reference", "model", bm.Name, "threads", t, "cells", len(ref))
		res, err := torchref.RunGrid(ctx, timing.ref(torchref.Options{Python: h.Python, Model: refModel(bm.Cfg), Threads: t, Seed: benchSeed}), ref)
		if err != nil {
			return nil, fmt.Errorf("bench score %s threads %d: PyTorch reference: %w", bm.Name, t, err)
		}
		base := len(rows) - len(cells)
		for i := range cells {
			r := &rows[base+i]
			r.TorchEveryItemsPerSec, r.TorchMaskItemsPerSec = res[2*i].ItemsPerS, res[2*i+1].ItemsPerS
			r.RatioEvery, r.RatioMask = ratio(r.GoItemsPerSec, r.TorchEveryItemsPerSec), ratio(r.GoItemsPerSec, r.TorchMaskItemsPerSec)
		}
	}
	return rows, nil
}
