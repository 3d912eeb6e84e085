package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/clozeloop/clozeloop/mlm"
)

func benchCmd() command {
	return command{
		name:    "bench",
		summary: "measure model speed (bench score: pool scoring items/s)",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 || args[0] != "score" {
				return usagef("usage: clozeloop bench score [flags] (run 'clozeloop bench score -h')")
			}
			return runBenchScore(ctx, env, args[1:])
		},
	}
}

// benchScoreRow is one line of the bench score table.
type benchScoreRow struct {
	Model   string  `json:"model"`
	Lengths string  `json:"lengths"`
	Batch   int     `json:"batch"`
	Threads int     `json:"threads"`
	Items   int     `json:"items"`
	Seconds float64 `json:"seconds"`
	ItemsPS float64 `json:"items_per_sec"`
}

func runBenchScore(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "bench score", "[--model base|tiny|all] [--batch 32] [--length 32] [--items 1024] [--threads 2] [--json]")
	which := fs.String("model", "all", "random-weight config: base (bert-base sized), tiny, or all")
	batch := fs.Int("batch", 32, "items per forward pass")
	length := fs.Int("length", 32, "tokens per item (with [CLS]/[SEP]) for the fixed-length run")
	items := fs.Int("items", 1024, "items per run (enough for length buckets to fill their batches)")
	threads := fs.Int("threads", 2, "libtorch threads (0: number of CPUs)")
	mix := fs.Bool("mix", true, "also run a mix of lengths 8-64 (bucketed by length)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *length < 3 || *items < 1 {
		return usagef("--batch and --items must be positive and --length at least 3")
	}
	var configs []struct {
		name string
		cfg  mlm.Config
	}
	if *which == "base" || *which == "all" {
		configs = append(configs, struct {
			name string
			cfg  mlm.Config
		}{"bert-base", mlm.BERTBaseConfig()})
	}
	if *which == "tiny" || *which == "all" {
		configs = append(configs, struct {
			name string
			cfg  mlm.Config
		}{"tiny", mlm.TinyConfig(30522)})
	}
	if len(configs) == 0 {
		return usagef("--model must be base, tiny or all, not %q", *which)
	}
	nThreads := *threads
	if nThreads <= 0 {
		nThreads = runtime.NumCPU()
	}
	var rows []benchScoreRow
	for _, c := range configs {
		tok, err := mlm.SyntheticTokenizer(c.cfg.VocabSize)
		if err != nil {
			return err
		}
		m, err := mlm.New(c.cfg, tok, mlm.Options{Device: "cpu", Threads: nThreads, Seed: 1})
		if err != nil {
			return err
		}
		runs := []struct {
			lengths  string
			min, max int
		}{{fmt.Sprint(*length), *length, *length}}
		if *mix {
			runs = append(runs, struct {
				lengths  string
				min, max int
			}{"8-64", 8, 64})
		}
		for _, r := range runs {
			env.log.Info("bench score", "model", c.name, "lengths", r.lengths, "items", *items)
			pool := mlm.SyntheticItems(*items, r.min, r.max, c.cfg.VocabSize, 7)
			res, err := m.BenchScore(ctx, pool, mlm.ScoreOptions{BatchSize: *batch, TopK: 5})
			if err != nil {
				m.Close()
				return err
			}
			rows = append(rows, benchScoreRow{Model: c.name, Lengths: r.lengths, Batch: *batch, Threads: nThreads,
				Items: res.Items, Seconds: res.Seconds, ItemsPS: res.ItemsPerSec})
		}
		m.Close()
	}
	if *asJSON {
		return writeJSON(env.stdout, rows)
	}
	fmt.Fprintf(env.stdout, "%-10s %-8s %6s %8s %7s %9s %10s\n", "model", "lengths", "batch", "threads", "items", "seconds", "items/s")
	for _, r := range rows {
		fmt.Fprintf(env.stdout, "%-10s %-8s %6d %8d %7d %9.2f %10.1f\n", r.Model, r.Lengths, r.Batch, r.Threads, r.Items, r.Seconds, r.ItemsPS)
	}
	return nil
}
