package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"

	"github.com/clozeloop/clozeloop/tracing"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

func startCmd() command {
	return command{
		name:    "start",
		summary: "start an active-learning run from a JSON run config",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "start", "--config run.json [--json] [client flags]")
			co := clientFlags(fs)
			path := fs.String("config", "", "run config JSON file (workflows.RunConfig)")
			asJSON := fs.Bool("json", false, "print JSON")
			otlp := tracingFlags(fs)
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if *path == "" {
				return usagef("--config is required")
			}
			data, err := os.ReadFile(*path)
			if err != nil {
				return fmt.Errorf("read run config %s: %w", *path, err)
			}
			var cfg workflows.RunConfig
			if err := json.Unmarshal(data, &cfg); err != nil {
				return fmt.Errorf("parse run config %s: %w", *path, err)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("run config %s: %w", *path, err)
			}
			// The run's trace starts here: its rounds' workflow tasks and
			// activities, on every worker, are spans of it.
			tr, stopTracing, err := startTracing(ctx, env, *otlp, tracing.Options{Service: "clozeloop-cli", Instance: co.Identity})
			if err != nil {
				return err
			}
			defer stopTracing()
			if co.Interceptors, err = tr.Interceptors(); err != nil {
				return err
			}
			c, err := workers.Dial(ctx, *co, env.log)
			if err != nil {
				return err
			}
			defer c.Close()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: cfg.RunID, TaskQueue: workflows.DefaultTaskQueue,
				Memo: map[string]any{"dataset": cfg.Dataset, "model": cfg.ModelURI, "strategy": cfg.Strategy},
			}, workflows.ActiveLearningName, cfg)
			if err != nil {
				return fmt.Errorf("start run %s: %w", cfg.RunID, err)
			}
			out := map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()}
			if *asJSON {
				return writeJSON(env.stdout, out)
			}
			fmt.Fprintf(env.stdout, "started %s (run %s)\n", run.GetID(), run.GetRunID())
			return nil
		},
	}
}
