package devserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// countingBlobs counts writes per key.
type countingBlobs struct {
	activities.Blobs
	rec *engineRecord
}

func (b countingBlobs) Put(ctx context.Context, key string, data []byte) error {
	b.rec.mu.Lock()
	b.rec.puts[key]++
	b.rec.mu.Unlock()
	return b.Blobs.Put(ctx, key, data)
}

// trainCall is one FineTune call of the engine.
type trainCall struct {
	prefix string
	resume *activities.TrainProgress
	last   activities.TrainProgress
	res    activities.TrainResult
	err    error
}

// engineRecord is what the wrappers saw, shared by every worker
// incarnation of a test.
type engineRecord struct {
	mu    sync.Mutex
	puts  map[string]int
	calls []*trainCall
	// stepDelay slows every fine-tuning step (set for the kill test).
	stepDelay time.Duration
}

// recordingTrainer records every FineTune call and can slow training down.
type recordingTrainer struct {
	inner activities.Trainer
	rec   *engineRecord
}

func (r recordingTrainer) FineTune(ctx context.Context, req activities.TrainRequest, progress func(activities.TrainProgress)) (activities.TrainResult, error) {
	call := &trainCall{prefix: req.OutputPrefix, resume: req.Resume}
	r.rec.mu.Lock()
	r.rec.calls = append(r.rec.calls, call)
	delay := r.rec.stepDelay
	r.rec.mu.Unlock()
	res, err := r.inner.FineTune(ctx, req, func(p activities.TrainProgress) {
		r.rec.mu.Lock()
		call.last = p
		r.rec.mu.Unlock()
		progress(p)
		time.Sleep(delay)
	})
	r.rec.mu.Lock()
	call.res, call.err = res, err
	r.rec.mu.Unlock()
	return res, err
}

func (r *engineRecord) callsFor(prefix string) []trainCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []trainCall
	for _, c := range r.calls {
		if c.prefix == prefix {
			out = append(out, *c)
		}
	}
	return out
}

// TestRealEngineRoundSurvivesRestarts runs a two-round active-learning run
// on the embedded Temporal server (SQLite file), the embedded S3 server and
// the real mlm engine with a tiny model.
//
// Round 1: while it waits for labels, the worker is stopped and restarted,
// then the Temporal server is stopped and restarted; the labels arrive by
// the SubmitLabels update and the round completes with a fine-tuned,
// evaluated, uploaded checkpoint; labels were persisted once and the
// fine-tune ran once.
//
// Round 2: the worker is stopped in the middle of the fine-tune, after the
// server has received a heartbeat naming an uploaded checkpoint; a new
// worker (with an empty local cache, like another machine) runs the retry,
// which resumes from that checkpoint's step.
//
// With CLOZELOOP_RECORD_HISTORIES=1 it also writes the run's histories to
// workflows/testdata for the replay test.
func TestRealEngineRoundSurvivesRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server twice and fine-tunes a model")
	}
	ctx := context.Background()
	dir := t.TempDir()
	fx := mlmenginetest.Start(t, 40, 16)
	rec := &engineRecord{puts: map[string]int{}}
	incarnation := 0
	startWorkers := func(c client.Client) func() {
		incarnation++
		acts, err := engine.NewActivities(ctx, engine.Options{Store: fx.Store, Device: "cpu", Threads: 1,
			CacheDir: filepath.Join(dir, fmt.Sprintf("worker-%d", incarnation)), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		acts.Blobs = countingBlobs{Blobs: acts.Blobs, rec: rec}
		acts.Trainer = recordingTrainer{inner: acts.Trainer, rec: rec}
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
	submit := func(c client.Client, b workflows.BatchView) {
		t.Helper()
		sub := workflows.LabelSubmission{Round: b.Round, Annotator: "ann"}
		for _, it := range b.Items {
			sub.Answers = append(sub.Answers, workflows.Answer{ItemID: it.ItemID, Answer: fx.Gold[it.ItemID]})
		}
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: "real-run", UpdateName: workflows.UpdateSubmitLabels,
			Args: []any{sub}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			t.Fatalf("round %d: submit: %v", b.Round, err)
		}
		var res workflows.SubmitResult
		if err := h.Get(ctx, &res); err != nil || !res.RoundComplete {
			t.Fatalf("round %d: %+v, %v", b.Round, res, err)
		}
	}

	s := startServer(t, dir)
	c := dial(t, s)
	stop := startWorkers(c)
	cfg := workflows.RunConfig{RunID: "real-run", Dataset: "tiny", PoolURI: mlmenginetest.PoolURI, PoolShards: 2,
		EvalURI: mlmenginetest.EvalURI, ModelURI: mlmenginetest.ModelURI, Strategy: "entropy", BatchSize: 4, Quorum: 1,
		RoundDeadline: workflows.Duration(72 * time.Hour), MinLabels: 1, Budget: workflows.Budget{MaxRounds: 2},
		FineTune: workflows.FineTuneSettings{MaxSteps: 60, BatchSize: 2, LearningRate: 1e-3, Seed: 1, CheckpointEvery: 4}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: cfg.RunID, TaskQueue: workflows.DefaultTaskQueue}, workflows.ActiveLearningName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	batch := waitBatch(t, c, cfg.RunID, 1)
	if len(batch.Items) != 4 {
		t.Fatalf("round 1 batch %+v", batch)
	}
	for _, it := range batch.Items {
		if len(it.Suggestions) != 5 || fx.Gold[it.ItemID] == "" {
			t.Fatalf("batch item %+v: want 5 suggestions and a pool item", it)
		}
	}

	// Restart the worker, then the server, while round 1 waits.
	stop()
	stop = startWorkers(c)
	time.Sleep(time.Second)
	stop()
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir)
	defer s.Stop()
	c = dial(t, s)
	defer c.Close()
	stop = startWorkers(c)
	defer func() { stop() }()

	if again := waitBatch(t, c, cfg.RunID, 1); fmt.Sprint(again.Items) != fmt.Sprint(batch.Items) {
		t.Fatalf("round 1 batch changed across restarts:\n%+v\n%+v", batch.Items, again.Items)
	}
	submit(c, batch)

	// Round 2 opens once round 1 is complete.
	batch2 := waitBatch(t, c, cfg.RunID, 2)
	prefix := "runs/" + cfg.RunID
	round1Train := prefix + "/rounds/0001/train"
	if calls := rec.callsFor(round1Train); len(calls) != 1 || calls[0].err != nil || calls[0].resume != nil {
		t.Fatalf("round 1 fine-tune calls %+v, want one successful fresh call", calls)
	}
	rec.mu.Lock()
	roundPuts, setPuts := rec.puts[prefix+"/labels/round-0001.json"], rec.puts[prefix+"/labels/set-0001.json"]
	rec.mu.Unlock()
	if roundPuts != 1 || setPuts != 1 {
		t.Fatalf("round 1 labels written %d times, set %d times; want once", roundPuts, setPuts)
	}
	for _, it := range batch2.Items {
		for _, old := range batch.Items {
			if it.ItemID == old.ItemID {
				t.Fatalf("round 2 re-selected %s", it.ItemID)
			}
		}
	}

	// Round 2: stop the worker in the middle of the fine-tune.
	rec.mu.Lock()
	rec.stepDelay = 100 * time.Millisecond
	rec.mu.Unlock()
	submit(c, batch2)
	seen := waitCheckpointHeartbeat(t, c, cfg.RunID)
	stop()
	rec.mu.Lock()
	rec.stepDelay = 0
	rec.mu.Unlock()
	stop = startWorkers(c)

	var res workflows.Result
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.GetWorkflow(wctx, cfg.RunID, "").Get(wctx, &res); err != nil {
		t.Fatalf("result: %v", err)
	}
	calls := rec.callsFor(prefix + "/rounds/0002/train")
	if len(calls) != 2 || calls[0].err == nil || calls[1].err != nil {
		t.Fatalf("round 2 fine-tune calls %+v: want an interrupted one and a successful retry", calls)
	}
	retry := calls[1]
	if retry.resume == nil || retry.resume.CheckpointStep < seen.CheckpointStep || retry.resume.CheckpointStep > calls[0].last.CheckpointStep ||
		retry.res.ResumedFrom != retry.resume.CheckpointStep || retry.res.Steps != cfg.FineTune.MaxSteps {
		t.Fatalf("retry resumed from %+v with result %+v; heartbeat seen %+v, interrupted attempt reached %+v",
			retry.resume, retry.res, seen, calls[0].last)
	}
	t.Logf("fine-tune interrupted at step %d (checkpoint %d), resumed from step %d", calls[0].last.Step, calls[0].last.CheckpointStep, retry.res.ResumedFrom)

	if res.Rounds != 2 || res.LabelsTotal != 8 || len(res.History) != 2 {
		t.Fatalf("result %+v", res)
	}
	eng, err := mlmengine.New(mlmengine.Options{Store: fx.Store, CacheDir: filepath.Join(dir, "check"), Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.History {
		for _, k := range []string{"accuracy", "top5", "mrr", "nll"} {
			if _, ok := h.Metrics[k]; !ok {
				t.Errorf("round %d: metric %s missing in %v", h.Round, k, h.Metrics)
			}
		}
		if h.Steps != cfg.FineTune.MaxSteps || h.Labeled != 4 {
			t.Errorf("round %d history %+v", h.Round, h)
		}
		model := fmt.Sprintf("%s/models/round-%04d", prefix, h.Round)
		for _, f := range []string{"MANIFEST.json", "config.json", "model.safetensors", "vocab.txt"} {
			if _, err := fx.Store.Head(ctx, model+"/"+f); err != nil {
				t.Errorf("round %d: %s/%s: %v", h.Round, model, f, err)
			}
		}
		m, err := eng.LoadModel(ctx, model)
		if err != nil {
			t.Fatalf("round %d: load uploaded model: %v", h.Round, err)
		}
		m.Close()
		if objs, _ := fx.Store.List(ctx, fmt.Sprintf("%s/rounds/%04d/train/%s/", prefix, h.Round, mlmengine.CheckpointsDir)); len(objs) != 0 {
			t.Errorf("round %d: %d intermediate checkpoint objects left", h.Round, len(objs))
		}
	}
	if !strings.HasPrefix(res.ModelURI, prefix+"/models/round-") && res.ModelURI != cfg.ModelURI {
		t.Errorf("final model %s", res.ModelURI)
	}
	if os.Getenv("CLOZELOOP_RECORD_HISTORIES") == "1" {
		recordChain(t, c, cfg.RunID, run.GetRunID())
	}
}

// waitCheckpointHeartbeat waits until the server holds a FineTune
// heartbeat naming an uploaded checkpoint, and returns it.
func waitCheckpointHeartbeat(t *testing.T, c client.Client, id string) activities.TrainProgress {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
		if err == nil {
			for _, a := range d.GetPendingActivities() {
				if a.GetActivityType().GetName() != workflows.ActivityFineTune || a.GetHeartbeatDetails() == nil {
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
	t.Fatal("no FineTune heartbeat with a checkpoint reached the server")
	return activities.TrainProgress{}
}
