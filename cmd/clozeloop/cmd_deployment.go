package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clozeloop/clozeloop/workers"
)

const deploymentUsage = `usage: clozeloop deployment describe [--deployment NAME] [--json]
       clozeloop deployment set-current --build-id ID [--deployment NAME] [--wait 2m] [--ignore-missing-task-queues] [--json]`

func deploymentCmd() command {
	return command{
		name:    "deployment",
		summary: "worker versioning: describe the worker deployment, make a build the current version",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 {
				return usagef("%s", deploymentUsage)
			}
			switch args[0] {
			case "describe":
				return deploymentDescribe(ctx, env, args[1:])
			case "set-current":
				return deploymentSetCurrent(ctx, env, args[1:])
			default:
				return usagef("unknown deployment command %q\n%s", args[0], deploymentUsage)
			}
		},
	}
}

func deploymentDescribe(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "deployment describe", "[--deployment NAME] [--json] [client flags]")
	co := clientFlags(fs)
	name := fs.String("deployment", envOr("CLOZELOOP_DEPLOYMENT", workers.DefaultDeployment), "worker deployment (env CLOZELOOP_DEPLOYMENT)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := workers.Dial(ctx, *co, env.log)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := workers.DescribeDeployment(ctx, c, *name)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, st)
	}
	fmt.Fprintf(env.stdout, "deployment %s: current %s", st.Deployment, orNone(st.CurrentBuildID))
	if st.RampingBuildID != "" {
		fmt.Fprintf(env.stdout, ", ramping %s at %.0f%%", st.RampingBuildID, st.RampPercentage)
	}
	fmt.Fprintln(env.stdout)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILD ID\tSTATUS\tCREATED\tOPEN RUNS PINNED")
	for _, v := range st.Versions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.BuildID, v.Status, v.CreatedAt.UTC().Format(time.RFC3339), orNone(strings.Join(v.OpenRuns, ",")))
	}
	return tw.Flush()
}

func deploymentSetCurrent(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "deployment set-current", "--build-id ID [--deployment NAME] [--wait 2m] [--ignore-missing-task-queues] [--json] [client flags]")
	co := clientFlags(fs)
	name := fs.String("deployment", envOr("CLOZELOOP_DEPLOYMENT", workers.DefaultDeployment), "worker deployment (env CLOZELOOP_DEPLOYMENT)")
	buildID := fs.String("build-id", "", "the build to make current; its workers must be polling")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the build's workers to register on every task queue")
	ignore := fs.Bool("ignore-missing-task-queues", false, "make it current even if its workers do not serve every task queue the current version serves")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *buildID == "" {
		return usagef("--build-id is required")
	}
	if err := (workers.Versioning{Deployment: *name, BuildID: *buildID}).Validate(); err != nil {
		return usagef("%v", err)
	}
	c, err := workers.Dial(ctx, *co, env.log)
	if err != nil {
		return err
	}
	defer c.Close()
	prev, err := workers.SetCurrentVersion(ctx, c, *name, *buildID,
		workers.SetCurrentOptions{Wait: *wait, IgnoreMissingTaskQueues: *ignore, Identity: co.Identity})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, map[string]string{"deployment": *name, "current_build_id": *buildID, "previous_build_id": prev})
	}
	fmt.Fprintf(env.stdout, "deployment %s: current version is now %s (was %s)\n", *name, *buildID, orNone(prev))
	return nil
}

// orNone shows an empty value as "-".
func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
