package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

func scheduleCmd() command {
	return command{
		name:    "schedule",
		summary: "create the nightly Retrain schedule (schedule create --cron ...)",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 || args[0] != "create" {
				return usagef("usage: clozeloop schedule create --cron \"0 2 * * *\" --config retrain.json")
			}
			fs := newFlagSet(env, "schedule create", "--cron SPEC --config retrain.json [--id ID] [--json] [client flags]")
			co := clientFlags(fs)
			cron := fs.String("cron", "0 2 * * *", "cron spec (UTC)")
			path := fs.String("config", "", "retrain config JSON file (workflows.RetrainConfig)")
			id := fs.String("id", "", "schedule id (default retrain-<run_id>)")
			asJSON := fs.Bool("json", false, "print JSON")
			if err := parseFlags(fs, args[1:]); err != nil {
				return err
			}
			if *path == "" {
				return usagef("--config is required")
			}
			data, err := os.ReadFile(*path)
			if err != nil {
				return fmt.Errorf("read retrain config %s: %w", *path, err)
			}
			var cfg workflows.RetrainConfig
			if err := json.Unmarshal(data, &cfg); err != nil {
				return fmt.Errorf("parse retrain config %s: %w", *path, err)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("retrain config %s: %w", *path, err)
			}
			if *id == "" {
				*id = "retrain-" + cfg.RunID
			}
			c, err := workers.Dial(ctx, *co, env.log)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
				ID:      *id,
				Spec:    client.ScheduleSpec{CronExpressions: []string{*cron}},
				Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
				Action: &client.ScheduleWorkflowAction{
					ID: *id + "-run", Workflow: workflows.RetrainName, Args: []any{cfg}, TaskQueue: workflows.DefaultTaskQueue,
					Memo: map[string]any{"run": cfg.RunID, "kind": "nightly retrain"},
				},
			})
			if err != nil {
				return fmt.Errorf("create schedule %s: %w", *id, err)
			}
			out := map[string]string{"schedule_id": *id, "cron": *cron, "overlap": "skip"}
			if *asJSON {
				return writeJSON(env.stdout, out)
			}
			fmt.Fprintf(env.stdout, "schedule %s created (%s, overlap skip)\n", *id, *cron)
			return nil
		},
	}
}
