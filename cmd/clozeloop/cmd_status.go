package main

import (
	"context"
	"fmt"

	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

func statusCmd() command {
	return command{
		name:    "status",
		summary: "show a run's phase, round, labels, deadline and metrics",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "status", "[--batch] [--history] [--json] [client flags] RUN_ID")
			co := clientFlags(fs)
			batch := fs.Bool("batch", false, "show the open batch instead")
			history := fs.Bool("history", false, "show per-round metrics instead")
			asJSON := fs.Bool("json", false, "print JSON")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() != 1 {
				return usagef("want exactly one RUN_ID")
			}
			id := fs.Arg(0)
			c, err := workers.Dial(ctx, *co, env.log)
			if err != nil {
				return err
			}
			defer c.Close()
			query := workflows.QueryStatus
			var out any = &workflows.Status{}
			switch {
			case *batch:
				query, out = workflows.QueryBatch, &workflows.BatchView{}
			case *history:
				query, out = workflows.QueryHistory, &[]workflows.RoundMetrics{}
			}
			v, err := c.QueryWorkflow(ctx, id, "", query)
			if err != nil {
				return fmt.Errorf("query %s of %s: %w", query, id, err)
			}
			if err := v.Get(out); err != nil {
				return fmt.Errorf("decode %s of %s: %w", query, id, err)
			}
			if *asJSON {
				return writeJSON(env.stdout, out)
			}
			switch o := out.(type) {
			case *workflows.Status:
				fmt.Fprintf(env.stdout, "run %s: round %d, %s\nitems %d (%d complete), answers %d/%d, deadline %s\nmodel %s\nmetrics %v\n",
					o.RunID, o.Round, o.Phase, o.Items, o.ItemsComplete, o.LabelsReceived, o.LabelsNeeded, o.Deadline.Format("2006-01-02 15:04 MST"), o.ModelURI, o.LastMetrics)
				if o.Extensions > 0 {
					fmt.Fprintf(env.stdout, "deadline extended %d time(s), %d by leads\n", o.Extensions, o.LeadExtensions)
				}
				if a := o.Adaptation; a != nil {
					fmt.Fprintf(env.stdout, "adapted %s -> %s in %d steps (loss %.4f): metrics %v, before %v\n",
						a.BaseModelURI, a.ModelURI, a.Steps, a.FinalLoss, a.Metrics, a.BaseMetrics)
				}
			case *workflows.BatchView:
				fmt.Fprintf(env.stdout, "round %d (open=%v)\n", o.Round, o.Open)
				for _, it := range o.Items {
					fmt.Fprintf(env.stdout, "%s\t%d/%d\t%s\n", it.ItemID, it.Answers, it.Quorum, it.Text)
				}
			case *[]workflows.RoundMetrics:
				for _, h := range *o {
					fmt.Fprintf(env.stdout, "round %d: %s, %d labelled, promoted=%v, %v\n", h.Round, h.EndedBy, h.Labeled, h.Promoted, h.Metrics)
				}
			}
			return nil
		},
	}
}
