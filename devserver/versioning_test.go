package devserver

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/clozeloop/clozeloop/activities/mlmengine/mlmenginetest"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workers/engine"
	"github.com/clozeloop/clozeloop/workflows"
)

// TestWorkerVersioningPinsRounds upgrades the workers of a running
// deployment from build v1 to build v2 on the embedded Temporal server,
// with the real engine on a tiny model:
//   - run A starts on v1 and waits for labels; v2 becomes current; run B
//     starts on v2;
//   - A's labels arrive while v1's workers are stopped: v2's workers,
//     polling the same task queues, do not pick up A's round, which waits
//     until v1 is back and then finishes on v1 (workflow tasks and both
//     queues' activities, fine-tune included);
//   - at the round boundary A continues as new on v2, the current version;
//   - the deployment's description shows v1 drained of open runs.
func TestWorkerVersioningPinsRounds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server and trains a model")
	}
	ctx := context.Background()
	dir := t.TempDir()
	fx := mlmenginetest.Start(t, 40, 16)
	s := startServer(t, dir)
	defer s.Stop()
	c := dial(t, s)
	defer c.Close()

	startWorkers := func(build string) func() {
		acts, err := engine.NewActivities(ctx, engine.Options{Store: fx.Store, Device: "cpu", Threads: 1,
			CacheDir: filepath.Join(dir, "cache-"+build), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ws, err := workers.New(c, acts, workers.Options{Queues: []string{"default", "gpu"}, StopTimeout: time.Second,
			Identity: "worker-" + build, Versioning: workers.Versioning{BuildID: build}})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
		}
		return func() {
			for _, w := range ws {
				w.Stop()
			}
		}
	}
	setCurrent := func(build string) {
		t.Helper()
		if _, err := workers.SetCurrentVersion(ctx, c, workers.DefaultDeployment, build, workers.SetCurrentOptions{Wait: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	start := func(id string) client.WorkflowRun {
		t.Helper()
		cfg := workflows.RunConfig{RunID: id, Dataset: "tiny", PoolURI: mlmenginetest.PoolURI,
			EvalURI: mlmenginetest.EvalURI, ModelURI: mlmenginetest.ModelURI, Strategy: "entropy", BatchSize: 4, Quorum: 1,
			RoundDeadline: workflows.Duration(72 * time.Hour), MinLabels: 1, Budget: workflows.Budget{MaxRounds: 2},
			FineTune: workflows.FineTuneSettings{MaxSteps: 4, BatchSize: 2, LearningRate: 1e-3, Seed: 1}}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.DefaultTaskQueue}, workflows.ActiveLearningName, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	pinnedTo := func(id, runID string) string {
		t.Helper()
		d, err := c.DescribeWorkflowExecution(ctx, id, runID)
		if err != nil {
			t.Fatal(err)
		}
		vi := d.GetWorkflowExecutionInfo().GetVersioningInfo()
		if vi.GetBehavior() != enumspb.VERSIONING_BEHAVIOR_PINNED {
			t.Fatalf("run %s/%s has versioning behavior %v, want pinned", id, runID, vi.GetBehavior())
		}
		return vi.GetDeploymentVersion().GetBuildId()
	}

	stopV1 := startWorkers("v1")
	defer func() { stopV1() }()
	setCurrent("v1")
	runA := start("run-a")
	batchA := waitBatch(t, c, "run-a", 1)
	if got := pinnedTo("run-a", runA.GetRunID()); got != "v1" {
		t.Fatalf("run A pinned to %q, want v1", got)
	}

	stopV2 := startWorkers("v2")
	defer stopV2()
	setCurrent("v2")
	runB := start("run-b")
	waitBatch(t, c, "run-b", 1)
	if got := pinnedTo("run-b", runB.GetRunID()); got != "v2" {
		t.Fatalf("run B pinned to %q, want v2", got)
	}

	// A's labels arrive while only v2 is up: its round must not move.
	stopV1()
	sub := workflows.LabelSubmission{Round: 1, Annotator: "ann"}
	for _, it := range batchA.Items {
		sub.Answers = append(sub.Answers, workflows.Answer{ItemID: it.ItemID, Answer: fx.Gold[it.ItemID]})
	}
	if err := c.SignalWorkflow(ctx, "run-a", runA.GetRunID(), workflows.SignalLabels, sub); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if n := completedTasksAfterSignal(t, c, "run-a", runA.GetRunID()); n != 0 {
		t.Fatalf("%d workflow tasks of run A completed after its labels arrived with only v2's workers up", n)
	}
	stopV1 = startWorkers("v1")

	// A finishes round 1 on v1 and continues as new on v2.
	waitBatch(t, c, "run-a", 2)
	byIdentity := identitiesOf(t, c, "run-a", runA.GetRunID())
	for kind, ids := range byIdentity {
		if len(ids) != 1 || ids[0] != "worker-v1" {
			t.Errorf("run A round 1: %s handled by %v, want only worker-v1", kind, ids)
		}
	}
	for _, kind := range []string{"workflow task", workflows.ActivityScoreShard, workflows.ActivityFineTune, workflows.ActivityEvaluate} {
		if _, ok := byIdentity[kind]; !ok {
			t.Errorf("run A round 1 has no %s in its history (saw %v)", kind, byIdentity)
		}
	}
	d, err := c.DescribeWorkflowExecution(ctx, "run-a", "")
	if err != nil {
		t.Fatal(err)
	}
	round2 := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if round2 == runA.GetRunID() {
		t.Fatal("run A did not continue as new")
	}
	if got := pinnedTo("run-a", round2); got != "v2" {
		t.Fatalf("run A round 2 pinned to %q, want v2 (the current version at the round boundary)", got)
	}

	var st workers.DeploymentStatus
	deadline := time.Now().Add(time.Minute)
	for {
		st, err = workers.DescribeDeployment(ctx, c, workers.DefaultDeployment)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(runsOf(st, "v1"), runsOf(st, "v2")) == "[] [run-a run-b]" || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st.CurrentBuildID != "v2" || len(st.Versions) != 2 || st.Versions[0].BuildID != "v1" || st.Versions[1].Status != "current" ||
		!slices.Contains([]string{"draining", "drained", "inactive"}, st.Versions[0].Status) ||
		fmt.Sprint(runsOf(st, "v1"), runsOf(st, "v2")) != "[] [run-a run-b]" {
		t.Fatalf("deployment %+v: want v2 current with runs A and B, v1 without open runs", st)
	}
	t.Logf("deployment after the upgrade: %+v", st)
	for _, id := range []string{"run-a", "run-b"} {
		if err := c.TerminateWorkflow(ctx, id, "", "test done"); err != nil {
			t.Fatal(err)
		}
	}
}

func runsOf(st workers.DeploymentStatus, build string) []string {
	for _, v := range st.Versions {
		if v.BuildID == build {
			return v.OpenRuns
		}
	}
	return nil
}

// completedTasksAfterSignal counts workflow tasks completed after the
// run's last signal.
func completedTasksAfterSignal(t *testing.T, c client.Client, id, runID string) int {
	t.Helper()
	n, signalled := 0, false
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			signalled, n = true, 0
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			if signalled {
				n++
			}
		}
	}
	if !signalled {
		t.Fatal("no signal in the history")
	}
	return n
}

// identitiesOf maps "workflow task" and each activity type of one run to
// the worker identities that completed them.
func identitiesOf(t *testing.T, c client.Client, id, runID string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(kind, identity string) {
		if !slices.Contains(out[kind], identity) {
			out[kind] = append(out[kind], identity)
		}
	}
	scheduled := map[int64]string{}
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			add("workflow task", strings.TrimSpace(a.GetIdentity()))
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
			add(scheduled[a.GetScheduledEventId()], a.GetIdentity())
		}
	}
	return out
}
