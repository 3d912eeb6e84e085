package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

func labelCmd() command {
	return command{
		name:    "label",
		summary: "submit answers for the open round, or close or extend it (Updates)",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "label", "--round N (--annotator NAME ITEM=ANSWER[|ANSWER...]... | --close | --extend DURATION) [--json] [client flags] RUN_ID\n\n"+
				"An item with several [MASK] blanks takes one answer per blank, in order, separated by |: ITEM=red|car.")
			co := clientFlags(fs)
			round := fs.Int("round", 0, "round the answers are for")
			annotator := fs.String("annotator", "", "who answers")
			closeRound := fs.Bool("close", false, "close the round instead (CloseRound update)")
			extend := fs.Duration("extend", 0, "move the round's deadline this much later instead, e.g. 24h (ExtendRound update; at most 720h per request)")
			reason := fs.String("reason", "", "why the round is closed or extended (kept in the workflow's log)")
			asJSON := fs.Bool("json", false, "print JSON")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() < 1 {
				return usagef("want --round N and RUN_ID")
			}
			id := fs.Arg(0)
			req, out, err := labelUpdate(*round, *annotator, *closeRound, *extend, *reason, fs.Args()[1:])
			if err != nil {
				return err
			}
			req.WorkflowID = id
			c, err := workers.Dial(ctx, *co, env.log)
			if err != nil {
				return err
			}
			defer c.Close()
			h, err := c.UpdateWorkflow(ctx, req)
			if err != nil {
				return fmt.Errorf("%s on %s rejected: %w", req.UpdateName, id, err)
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

// labelUpdate builds the Update `clozeloop label` sends (without the
// workflow id) and the value its result decodes into. Answers are
// ITEM=ANSWER, one answer per [MASK] blank separated by "|".
func labelUpdate(round int, annotator string, closeRound bool, extend time.Duration, reason string, answers []string) (client.UpdateWorkflowOptions, any, error) {
	req := client.UpdateWorkflowOptions{WaitForStage: client.WorkflowUpdateStageCompleted}
	if round < 1 {
		return req, nil, usagef("want --round N (a positive round number)")
	}
	if closeRound && extend != 0 {
		return req, nil, usagef("--close and --extend exclude each other")
	}
	if (closeRound || extend != 0) && len(answers) > 0 {
		return req, nil, usagef("--close and --extend take no answers, got %q", answers)
	}
	reason = strings.TrimSpace(reason)
	switch {
	case closeRound:
		if reason == "" {
			reason = "closed from the CLI"
		}
		req.UpdateName, req.Args = workflows.CloseRound, []any{workflows.CloseRequest{Round: round, Reason: reason}}
		return req, &workflows.Status{}, nil
	case extend != 0:
		if reason == "" {
			reason = "extended from the CLI"
		}
		ext := workflows.ExtendRequest{Round: round, Extend: workflows.Duration(extend), Reason: reason}
		if err := ext.Validate(); err != nil {
			return req, nil, usagef("--extend: %v", err)
		}
		req.UpdateName, req.Args = workflows.ExtendRound, []any{ext}
		return req, &workflows.Status{}, nil
	}
	if strings.TrimSpace(annotator) == "" {
		return req, nil, usagef("want --annotator NAME to answer (or --close or --extend)")
	}
	if len(answers) == 0 {
		return req, nil, usagef("want at least one ITEM=ANSWER")
	}
	sub := workflows.LabelSubmission{Round: round, Annotator: annotator}
	for _, a := range answers {
		item, ans, ok := strings.Cut(a, "=")
		if !ok || strings.TrimSpace(item) == "" {
			return req, nil, usagef("answer %q: want ITEM=ANSWER (ITEM=ANSWER1|ANSWER2 for an item with two blanks)", a)
		}
		blanks := strings.Split(ans, workflows.AnswerSeparator)
		for i, b := range blanks {
			blanks[i] = strings.TrimSpace(b)
			if blanks[i] == "" {
				return req, nil, usagef("answer %q: blank %d is empty", a, i+1)
			}
		}
		sub.Answers = append(sub.Answers, workflows.Answer{ItemID: item, Answers: blanks})
	}
	req.UpdateName, req.Args = workflows.UpdateSubmitLabels, []any{sub}
	return req, &workflows.SubmitResult{}, nil
}
