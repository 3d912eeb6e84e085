package main

import (
	"context"
	"fmt"
	"time"

	"github.com/clozeloop/clozeloop/bench/torchref"
	"github.com/clozeloop/clozeloop/mlm"
)

// benchTrainRow is one line of the train section: fine-tuning tokens/s of
// the Go training step and of the PyTorch eager reference.
type benchTrainRow struct {
	Model   string `json:"model"`
	Threads int    `json:"threads"`
	Batch   int    `json:"batch"`
	Length  int    `json:"length"`
	// Runs is the number of timed Go steps.
	Runs int `json:"runs"`
	// GoTokensPerSec is mlm's training step (forward with dropout, loss at
	// the masks, backward, clipping, AdamW), median step.
	GoTokensPerSec float64 `json:"go_tokens_per_s"`
	// TorchEveryTokensPerSec computes logits at every position as Hugging
	// Face's BertForMaskedLM does in training; TorchMaskTokensPerSec only
	// at the masks. Zero when the reference did not run.
	TorchEveryTokensPerSec float64 `json:"torch_every_tokens_per_s,omitempty"`
	TorchMaskTokensPerSec  float64 `json:"torch_mask_tokens_per_s,omitempty"`
	RatioEvery             float64 `json:"ratio_go_every,omitempty"`
	RatioMask              float64 `json:"ratio_go_mask,omitempty"`
	// GoLoss is the loss of the last Go step (a sanity check: about
	// ln(vocabulary size) for random weights).
	GoLoss float64 `json:"go_loss"`
}

// benchTrainShape is a batch × length training shape of a model.
type benchTrainShape struct{ batch, length int }

// benchTrainShapes returns the shapes the train section measures for a
// model: batch 8 × length 32 for every model, and batch 32 × length 64
// for the small one.
func benchTrainShapes(model string, quick bool) []benchTrainShape {
	if quick {
		return []benchTrainShape{{8, 32}}
	}
	s := []benchTrainShape{{8, 32}}
	if model == "small" {
		s = append(s, benchTrainShape{32, 64})
	}
	return s
}

func runBenchTrain(ctx context.Context, env *cmdEnv, args []string, h benchHeader) error {
	var c benchCommon
	fs := newFlagSet(env, "bench train", "[--models small,bert-base] [--threads 1,2] [--quick] [--no-torch] [--json]\n\n"+
		"Fine-tuning tokens/s (one optimizer step: forward in train mode with dropout, cross-entropy at one\n"+
		"mask per item, backward, AdamW) at batch 8 x length 32 (and batch 32 x length 64 for small), Go\n"+
		"beside a PyTorch eager step computing logits at every position (HF BertForMaskedLM) and at the\n"+
		"masks only. Each measurement: one warm-up step, then steps for at least --min-time (capped at\n"+
		"--max-time, at least --min-steps); the median step counts.")
	c.register(fs)
	minTime := fs.Duration("min-time", 3*time.Second, "least timed duration of each measurement")
	maxTime := fs.Duration("max-time", 20*time.Second, "cap on the timed duration of each measurement (after one step)")
	minSteps := fs.Int("min-steps", 2, "least number of timed steps")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c.applyQuick(map[string]func(){
		"models": func() { c.models = "small" }, "threads": func() { c.threads = "1" },
		"min-time": func() { *minTime = 0 }, "min-steps": func() { *minSteps = 1 },
	})
	if *minSteps < 1 || *minTime < 0 || *maxTime < 0 {
		return usagef("--min-steps must be positive and --min-time and --max-time not negative")
	}
	models, threads, err := c.lists()
	if err != nil {
		return err
	}
	bopts := mlm.BenchOptions{Warmup: 1, MinRuns: *minSteps, MinTime: *minTime, MaxTime: *maxTime}
	var rows []benchTrainRow
	for _, bm := range models {
		shapes := benchTrainShapes(bm.Name, c.quick)
		m, err := mlm.New(bm.Cfg, nil, mlm.Options{Device: "cpu", Threads: threads[0], Seed: benchSeed})
		if err != nil {
			return fmt.Errorf("bench train: new %s model: %w", bm.Name, err)
		}
		for _, t := range threads {
			for _, s := range shapes {
				env.log.Info("bench train", "model", bm.Name, "threads", t, "batch", s.batch, "length", s.length)
				var res mlm.BenchResult
				err := withThreads(t, func() error {
					var err error
					res, err = m.BenchTrain(ctx, s.batch, s.length, bopts)
					return err
				})
				if err != nil {
					m.Close()
					return fmt.Errorf("bench train %s threads %d batch %d length %d: %w", bm.Name, t, s.batch, s.length, err)
				}
				rows = append(rows, benchTrainRow{Model: bm.Name, Threads: t, Batch: s.batch, Length: s.length,
					Runs: res.Runs, GoTokensPerSec: res.TokensPerSec, GoLoss: res.Loss})
			}
			if !h.torch() {
				continue
			}
			var ref []torchref.Cell
			for _, s := range shapes {
				for _, maskOnly := range []bool{false, true} {
					ref = append(ref, torchref.Cell{Mode: torchref.ModeTrain, Batch: s.batch, Length: s.length, MaskOnly: maskOnly})
				}
			}
			env.log.Info("bench train: PyTorch reference", "model", bm.Name, "threads", t, "cells", len(ref))
			o := torchref.Options{Python: h.Python, Model: refModel(bm.Cfg), Threads: t, Seed: benchSeed,
				Warmup: 1, Runs: *minSteps, MinSeconds: minTime.Seconds(), MaxSeconds: maxTime.Seconds()}
			res, err := torchref.RunGrid(ctx, o, ref)
			if err != nil {
				m.Close()
				return fmt.Errorf("bench train %s threads %d: PyTorch reference: %w", bm.Name, t, err)
			}
			base := len(rows) - len(shapes)
			for i := range shapes {
				r := &rows[base+i]
				r.TorchEveryTokensPerSec, r.TorchMaskTokensPerSec = res[2*i].TokensPerS, res[2*i+1].TokensPerS
				r.RatioEvery, r.RatioMask = ratio(r.GoTokensPerSec, r.TorchEveryTokensPerSec), ratio(r.GoTokensPerSec, r.TorchMaskTokensPerSec)
			}
		}
		m.Close()
	}
	if c.asJSON {
		return writeJSONLine(env.stdout, struct {
			Section      string          `json:"section"`
			TorchVersion string          `json:"pytorch_version,omitempty"`
			Rows         []benchTrainRow `json:"rows"`
		}{"train", h.TorchVersion, rows})
	}
	w := env.stdout
	fmt.Fprintf(w, "train: tokens/s of a fine-tuning step (forward with dropout, loss at one mask per item, backward, AdamW)\n")
	fmt.Fprintf(w, "%-10s %7s %5s %6s %10s %12s %11s %9s %9s\n", "model", "threads", "batch", "length", "go", "torch every", "torch mask", "go/every", "go/mask")
	for _, r := range rows {
		fmt.Fprintf(w, "%-10s %7d %5d %6d %10s %12s %11s %9s %9s\n", r.Model, r.Threads, r.Batch, r.Length,
			cellf("%.0f", r.GoTokensPerSec), cellf("%.0f", r.TorchEveryTokensPerSec), cellf("%.0f", r.TorchMaskTokensPerSec),
			ratiof(r.RatioEvery), ratiof(r.RatioMask))
	}
	return nil
}
