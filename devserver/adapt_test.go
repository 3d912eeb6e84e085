package devserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/mlmengine"
	"github.com/clozeloop/clozeloop/activities/mlmengine/mlmenginetest"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workers/engine"
	"github.com/clozeloop/clozeloop/workflows"
)

// adaptCall is one Adapt call of the engine.
type adaptCall struct {
	resume *activities.TrainProgress
	last   activities.TrainProgress
	res    activities.AdaptResult
	err    error
}

// adaptRecorder records every Adapt call, across worker incarnations, and
// can slow every step down.
type adaptRecorder struct {
	mu    sync.Mutex
	calls []*adaptCall
	delay time.Duration
}

func (r *adaptRecorder) setDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

func (r *adaptRecorder) snapshot() []adaptCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]adaptCall, len(r.calls))
	for i, c := range r.calls {
		out[i] = *c
	}
	return out
}

type recordingAdapter struct {
	inner activities.Adapter
	rec   *adaptRecorder
}

func (a recordingAdapter) Adapt(ctx context.Context, req activities.AdaptRequest, progress func(activities.TrainProgress)) (activities.AdaptResult, error) {
	call := &adaptCall{resume: req.Resume}
	a.rec.mu.Lock()
	a.rec.calls = append(a.rec.calls, call)
	a.rec.mu.Unlock()
	res, err := a.inner.Adapt(ctx, req, func(p activities.TrainProgress) {
		a.rec.mu.Lock()
		call.last = p
		delay := a.rec.delay
		a.rec.mu.Unlock()
		progress(p)
		time.Sleep(delay)
	})
	a.rec.mu.Lock()
	call.res, call.err = res, err
	a.rec.mu.Unlock()
	return res, err
}

// TestRealEngineAdaptationSurvivesRestart runs an active-learning run with
// the adaptation phase on the embedded Temporal server (SQLite file), the
// embedded S3 server and the real mlm engine with a tiny model. The worker
// is stopped in the middle of the adaptation, after the server has
// received a heartbeat naming an uploaded checkpoint; a new worker (with
// an empty local cache, like another machine) runs the retry, which
// resumes from that checkpoint's step, and the run goes on to round 1 with
// the adapted model.
//
// With CLOZELOOP_RECORD_HISTORIES=1 it also writes the run's history to
// workflows/testdata for the replay test.
func TestRealEngineAdaptationSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server and trains a model")
	}
	ctx := context.Background()
	dir := t.TempDir()
	fx := mlmenginetest.Start(t, 40, 16)
	rec := &adaptRecorder{delay: 100 * time.Millisecond}
	incarnation := 0
	startWorkers := func(c client.Client) func() {
		incarnation++
		acts, err := engine.NewActivities(ctx, engine.Options{Store: fx.Store, Device: "cpu", Threads: 1,
			CacheDir: filepath.Join(dir, fmt.Sprintf("worker-%d", incarnation)), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		acts.Adapter = recordingAdapter{inner: acts.Adapter, rec: rec}
		ws, err := workers.New(c, acts, workers.Options{Queues: []string{"default", "gpu"}, StopTimeout: time.Second,
			MaxHeartbeatThrottleInterval: 500 * time.Millisecond})
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

	s := startServer(t, dir)
	defer s.Stop()
	c := dial(t, s)
	defer c.Close()
	stop := startWorkers(c)
	defer func() { stop() }()
	cfg := workflows.RunConfig{RunID: "adapt-run", Dataset: "tiny", PoolURI: mlmenginetest.PoolURI,
		EvalURI: mlmenginetest.EvalURI, ModelURI: mlmenginetest.ModelURI, Strategy: "entropy", BatchSize: 4, Quorum: 1,
		RoundDeadline: workflows.Duration(72 * time.Hour), MinLabels: 1, Budget: workflows.Budget{MaxRounds: 1},
		FineTune: workflows.FineTuneSettings{MaxSteps: 4, BatchSize: 2, LearningRate: 1e-3, Seed: 1, CheckpointEvery: 2},
		Adapt:    &workflows.AdaptSettings{Steps: 40, BatchSize: 8, LearningRate: 1e-3, Seed: 1, CheckpointEvery: 4}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: cfg.RunID, TaskQueue: workflows.DefaultTaskQueue}, workflows.ActiveLearningName, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Stop the worker in the middle of the adaptation.
	seen := waitActivityCheckpoint(t, c, cfg.RunID, workflows.ActivityAdapt)
	stop()
	rec.setDelay(0)
	stop = startWorkers(c)

	batch := waitBatch(t, c, cfg.RunID, 1)
	calls := rec.snapshot()
	if len(calls) != 2 || calls[0].err == nil || calls[1].err != nil {
		t.Fatalf("adapt calls %+v: want an interrupted one and a successful retry", calls)
	}
	retry := calls[1]
	if retry.resume == nil || retry.resume.CheckpointStep == 0 || retry.resume.CheckpointStep < seen.CheckpointStep ||
		retry.resume.CheckpointStep > calls[0].last.CheckpointStep ||
		retry.res.ResumedFrom != retry.resume.CheckpointStep || retry.res.Steps != cfg.Adapt.Steps {
		t.Fatalf("retry resumed from %+v with result %+v; heartbeat seen %+v, interrupted attempt reached %+v",
			retry.resume, retry.res, seen, calls[0].last)
	}
	t.Logf("adaptation interrupted at step %d (checkpoint %d), resumed from step %d", calls[0].last.Step, calls[0].last.CheckpointStep, retry.res.ResumedFrom)

	prefix := "runs/" + cfg.RunID
	adapted := prefix + "/models/adapted"
	v, err := c.QueryWorkflow(ctx, cfg.RunID, "", workflows.QueryStatus)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	if st.ModelURI != adapted || st.Adaptation == nil || st.Adaptation.ResumedFromStep != retry.res.ResumedFrom ||
		st.Adaptation.Texts != len(fx.PoolItems) || st.Adaptation.Metrics["accuracy"] != st.LastMetrics["accuracy"] {
		t.Fatalf("status in round 1: %+v (adaptation %+v), want the adapted model %s as the current model", st, st.Adaptation, adapted)
	}
	for _, f := range []string{"MANIFEST.json", "config.json", "model.safetensors", "vocab.txt"} {
		if _, err := fx.Store.Head(ctx, adapted+"/"+f); err != nil {
			t.Errorf("%s/%s: %v", adapted, f, err)
		}
	}
	if objs, _ := fx.Store.List(ctx, prefix+"/adapt/"+mlmengine.CheckpointsDir+"/"); len(objs) != 0 {
		t.Errorf("%d intermediate adaptation checkpoint objects left", len(objs))
	}

	sub := workflows.LabelSubmission{Round: 1, Annotator: "ann"}
	for _, it := range batch.Items {
		sub.Answers = append(sub.Answers, workflows.Answer{ItemID: it.ItemID, Answer: fx.Gold[it.ItemID]})
	}
	if err := c.SignalWorkflow(ctx, cfg.RunID, "", workflows.SignalLabels, sub); err != nil {
		t.Fatal(err)
	}
	var res workflows.Result
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.GetWorkflow(wctx, cfg.RunID, run.GetRunID()).Get(wctx, &res); err != nil {
		t.Fatalf("result: %v", err)
	}
	if res.Rounds != 1 || res.Adaptation == nil || res.Adaptation.ModelURI != adapted || len(res.History) != 1 {
		t.Fatalf("result %+v", res)
	}
	if calls := rec.snapshot(); len(calls) != 2 {
		t.Errorf("%d adapt calls by the end, want 2", len(calls))
	}
	if os.Getenv("CLOZELOOP_RECORD_HISTORIES") == "1" {
		recordChain(t, c, cfg.RunID, run.GetRunID())
	}
}

// waitActivityCheckpoint waits until the server holds a heartbeat of the
// named activity naming an uploaded checkpoint, and returns it.
func waitActivityCheckpoint(t *testing.T, c client.Client, id, activity string) activities.TrainProgress {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
		if err == nil {
			for _, a := range d.GetPendingActivities() {
				if a.GetActivityType().GetName() != activity || a.GetHeartbeatDetails() == nil {
					continue
				}
				var p activities.TrainProgress
				if err := converter.GetDefaultDataConverter().FromPayloads(a.GetHeartbeatDetails(), &p); err == nil && p.CheckpointStep > 0 {
					return p
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s heartbeat with a checkpoint reached the server", activity)
	return activities.TrainProgress{}
}
