package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/clozeloop/clozeloop/bench/rss"
)

// runBenchMemory is "clozeloop bench memory": the resident set size while
// the model engine scores a large pool.
func runBenchMemory(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "bench memory", "[--quick] [--json] [--items N] [--model DIR] [--threads N] [--chunk N] [--batch N] [--work DIR]\n"+
		"       clozeloop bench memory --train [--steps N] [--trim-every N] [--batch N] [--threads N] [--quick] [--json]\n\n"+
		"Generates a pool (8-64 words, one or two masks per item), scores it as one shard with the model engine\n"+
		"the ScoreShard activity uses (pool streamed from an in-process S3 store in chunks), and samples VmRSS and\n"+
		"VmHWM after every tenth of the pool. The default model has the shipped default shape with random weights.\n"+
		"With --train: fine-tuning steps of that model instead (lengths cycling 8-64), sampled 20 times, with the C heap\n"+
		"handed back every --trim-every steps (default 0: never, as fine-tuning does).")
	asJSON := fs.Bool("json", false, "print one JSON object")
	quick := fs.Bool("quick", false, "a reduced run (3000 items): for tests and smoke checks")
	items := fs.Int("items", 100000, "pool items")
	model := fs.String("model", "", "a Hugging Face checkpoint folder with vocab.txt (default: random weights, 4 layers, hidden 256, vocabulary 8000)")
	threads := fs.Int("threads", 0, "libtorch threads (0: the number of CPUs)")
	chunk := fs.Int("chunk", 0, "pool items read and scored at once (0: the engine's default, 512)")
	batch := fs.Int("batch", 0, "items per forward pass (0: the engine's default, 32)")
	work := fs.String("work", "", "work folder for the pool, the store and the model cache (default: a temporary folder, removed)")
	train := fs.Bool("train", false, "measure fine-tuning steps instead of scoring")
	steps := fs.Int("steps", 10000, "with --train: optimizer steps")
	trimEvery := fs.Int("trim-every", 0, "with --train: hand the C heap's free memory back every N steps (0: never, as fine-tuning does)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *train {
		tc := rss.TrainConfig{Steps: *steps, Batch: *batch, TrimEvery: *trimEvery, Threads: *threads, Seed: 1, Logger: env.log}
		if *quick && !flagGiven(fs, "steps") {
			tc.Steps = 200
		}
		if err := tc.Validate(); err != nil {
			return usageError{err}
		}
		res, err := rss.RunTrain(ctx, tc)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.stdout, struct {
				Section string `json:"section"`
				*rss.Result
			}{"memory-train", res})
		}
		printBenchMemory(env.stdout, res)
		return nil
	}
	cfg := rss.Config{Items: *items, ModelDir: *model, Threads: *threads, ChunkSize: *chunk, BatchSize: *batch, WorkDir: *work, Seed: 1, Logger: env.log}
	if *quick && !flagGiven(fs, "items") {
		cfg.Items = 3000
	}
	if cfg.Items < 1 {
		return usagef("--items must be positive, got %d", cfg.Items)
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	res, err := rss.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, struct {
			Section string `json:"section"`
			*rss.Result
		}{"memory", res})
	}
	printBenchMemory(env.stdout, res)
	return nil
}

// printBenchMemory writes the text table and verdict of a memory bench.
func printBenchMemory(w io.Writer, r *rss.Result) {
	fmt.Fprintf(w, "model: %s\npath:  %s\n", r.Model, r.Path)
	if !r.PeakReset {
		fmt.Fprintln(w, "note:  VmHWM could not be reset after setup; it includes building the model and the pool")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	unit := r.Unit
	if unit == "" {
		unit = "items"
	}
	done := "items scored"
	if unit != "items" {
		done = unit + " done"
	}
	fmt.Fprintf(tw, "%s\tVmRSS MiB\tVmHWM MiB\tfiles MiB\tGo heap MiB\tGo held MiB\tC heap MiB\tC free MiB\t%s/s\t\n", done, unit)
	row := func(label string, s rss.Sample) {
		rate := "-"
		if s.ItemsPerSec > 0 {
			rate = fmt.Sprintf("%.0f", s.ItemsPerSec)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", label, s.RSSMiB, s.HWMMiB, s.FileMiB, s.GoHeapMiB, s.GoHeldMiB, s.CHeapMiB, s.CFreeMiB, rate)
	}
	row("0 (before)", r.Before)
	for _, s := range r.Samples {
		row(fmt.Sprint(s.Items), s)
	}
	row("returned", r.After)
	tw.Flush()
	verdict := "FLAT"
	if !r.Flat {
		verdict = "GROWS"
	}
	fmt.Fprintf(w, "\n%d %s in %.1f s (%.1f %s/s); peak VmHWM %.1f MiB\n", r.Scored, unit, r.Seconds, r.ItemsPerSec, unit, r.PeakMiB)
	fmt.Fprintf(w, "verdict: %s: VmRSS trend %+.1f MiB (%.1f%%) from %d %s to the end, least-squares over the samples (threshold %.1f MiB: 5%% or 32 MiB, the smaller);\n"+
		"         last sample minus the one at %d %s: %+.1f MiB\n",
		verdict, r.GrowthMiB, r.GrowthPct, r.From.Items, unit, r.ThresholdMiB, r.From.Items, unit, r.LastMinusFromMiB)
	if n := len(r.Samples); n > 0 {
		fmt.Fprintf(w, "         C heap in use (libtorch, gotch) %+.1f MiB over the same stretch\n", r.Samples[n-1].CHeapMiB-r.From.CHeapMiB)
	}
	if r.HeapGrowthMiB > 0 {
		fmt.Fprintf(w, "         Go heap grew %.1f MiB over the same stretch: %.0f bytes per %s\n",
			r.HeapGrowthMiB, r.HeapBytesPerItem, strings.TrimSuffix(unit, "s"))
	} else {
		fmt.Fprintf(w, "         Go heap did not grow over the same stretch (%.1f MiB)\n", r.HeapGrowthMiB)
	}
}
