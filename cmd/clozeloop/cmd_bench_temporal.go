package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/clozeloop/clozeloop/bench/orchestration"
)

// runBenchTemporal is "clozeloop bench temporal": the orchestration
// overhead of a round and the label-update round trip on an embedded
// Temporal server.
func runBenchTemporal(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "bench temporal", "[--quick] [--json] [--rounds N] [--updates N] [--shards N] [--addr HOST:PORT] [--data DIR]\n\n"+
		"Starts an embedded Temporal server (as `clozeloop dev`), runs the ActiveLearning workflow with the real\n"+
		"workers and activities over an in-memory store and a model engine that does no work, and reports the\n"+
		"wall time of a round spent outside the activities and the SubmitLabels update round trip.")
	asJSON := fs.Bool("json", false, "print one JSON object")
	quick := fs.Bool("quick", false, "a reduced run (1 round cycle, 20 updates): for tests and smoke checks")
	rounds := fs.Int("rounds", 5, "full round cycles measured (the run labels rounds+1 batches)")
	updates := fs.Int("updates", 200, "SubmitLabels updates in all, one answer each, spread over the batches")
	shards := fs.Int("shards", 2, "ScoreShard activities per round")
	addr := fs.String("addr", "127.0.0.1:0", "the embedded server's gRPC address (port 0: a free port)")
	data := fs.String("data", "", "folder for the server's SQLite file (default: a temporary folder, removed)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	cfg := orchestration.Config{Cycles: *rounds, Updates: *updates, PoolShards: *shards, FrontendAddr: *addr, DataDir: *data, Logger: env.log}
	if *quick && !flagGiven(fs, "rounds") {
		cfg.Cycles = 1
	}
	if *quick && !flagGiven(fs, "updates") {
		cfg.Updates = 20
	}
	if cfg.Cycles < 1 || cfg.Updates < 1 || cfg.PoolShards < 1 {
		return usagef("--rounds, --updates and --shards must be positive")
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	res, err := orchestration.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, struct {
			Section string `json:"section"`
			*orchestration.Result
		}{"temporal", res})
	}
	printBenchTemporal(env.stdout, res)
	return nil
}

// printBenchTemporal writes the text tables of a temporal bench.
func printBenchTemporal(w io.Writer, r *orchestration.Result) {
	fmt.Fprintf(w, "server: %s, Temporal %s\n", r.Server, r.ServerVersion)
	fmt.Fprintf(w, "run: %d round cycles, batch %d, %d pool shards; activities return at once (in-memory store)\n\n",
		r.Cycles, r.BatchSize, r.PoolShards)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round cycle (ms)\tp50\tmean\tmax\t")
	fmt.Fprintf(tw, "wall\t%.1f\t%.1f\t%.1f\t\n", r.Wall.P50MS, r.Wall.MeanMS, r.Wall.MaxMS)
	fmt.Fprintf(tw, "activities' own work\t%.1f\t%.1f\t%.1f\t\n", r.Activity.P50MS, r.Activity.MeanMS, r.Activity.MaxMS)
	fmt.Fprintf(tw, "orchestration overhead\t%.1f\t%.1f\t%.1f\t\n", r.Overhead.P50MS, r.Overhead.MeanMS, r.Overhead.MaxMS)
	tw.Flush()
	fmt.Fprintln(w, "(a cycle: last answer of a batch returned → persist, fine-tune, evaluate, upload, continue-as-new, score, select →\n"+
		" next batch open, as the workflow's history records it; activities timed inside the worker)")
	fmt.Fprintf(w, "start (workflow start → first batch open): %.1f ms wall, %.1f ms overhead; finish (last answer → result): %.1f ms wall, %.1f ms overhead\n\n",
		r.Start.WallMS, r.Start.OverheadMS, r.Finish.WallMS, r.Finish.OverheadMS)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SubmitLabels update round trip (ms)\tcount\tp50\tp99\tmax\tmean\t")
	fmt.Fprintf(tw, "client call → update result\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.Updates.Count, r.Updates.P50MS, r.Updates.P99MS, r.Updates.MaxMS, r.Updates.MeanMS)
	tw.Flush()
}
