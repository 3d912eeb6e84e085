package main

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/client"

	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

func labelCmd() command {
	return command{
		name:    "label",
		summary: "submit answers for the open round (SubmitLabels update)",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "label", "--round N --annotator NAME [--json] [client flags] RUN_ID ITEM=ANSWER...")
			co := clientFlags(fs)
			round := fs.Int("round", 0, "round the answers are for")
			annotator := fs.String("annotator", "", "who answers")
			closeRound := fs.Bool("close", false, "close the round instead (CloseRound update)")
			asJSON := fs.Bool("json", false, "print JSON")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() < 1 || *round < 1 {
				return usagef("want --round N and RUN_ID")
			}
			id := fs.Arg(0)
			req := client.UpdateWorkflowOptions{WorkflowID: id, WaitForStage: client.WorkflowUpdateStageCompleted}
			if *closeRound {
				req.UpdateName, req.Args = workflows.CloseRound, []any{workflows.CloseRequest{Round: *round, Reason: "closed from the CLI"}}
			} else {
				sub := workflows.LabelSubmission{Round: *round, Annotator: *annotator}
				for _, a := range fs.Args()[1:] {
					item, ans, ok := strings.Cut(a, "=")
					if !ok {
						return usagef("answer %q: want ITEM=ANSWER", a)
					}
					sub.Answers = append(sub.Answers, workflows.Answer{ItemID: item, Answer: ans})
				}
				req.UpdateName, req.Args = workflows.UpdateSubmitLabels, []any{sub}
			}
			c, err := workers.Dial(ctx, *co, env.log)
			if err != nil {
				return err
			}
			defer c.Close()
			h, err := c.UpdateWorkflow(ctx, req)
			if err != nil {
				return fmt.Errorf("%s on %s rejected: %w", req.UpdateName, id, err)
			}
			var out any
			if *closeRound {
				out = &workflows.Status{}
			} else {
				out = &workflows.SubmitResult{}
			}
			if err := h.Get(ctx, out); err != nil {
				return fmt.Errorf("%s on %s: %w", req.UpdateName, id, err)
			}
			if *asJSON {
				return writeJSON(env.stdout, out)
			}
			fmt.Fprintf(env.stdout, "%+v\n", out)
			return nil
		},
	}
}
