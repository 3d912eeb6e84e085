package devserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

func quietSDKLogger() sdklog.Logger { return sdklog.NewStructuredLogger(quietLogger()) }

// tinyEngine is a deterministic engine for the server-level test: a pool of
// 12 items, a trainer that writes a checkpoint object, an evaluator keyed
// by model URI.
type tinyEngine struct{ blobs activities.Blobs }

func (e tinyEngine) ScoreShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) ([]activities.ScoredItem, error) {
	var out []activities.ScoredItem
	for i := req.Shard; i < 12; i += req.NumShards {
		id := fmt.Sprintf("it-%02d", i)
		if req.Skip(id) {
			continue
		}
		scores := map[string]float64{}
		for _, s := range req.Strategies {
			scores[s] = float64(i)
		}
		out = append(out, activities.ScoredItem{ItemID: id, Text: "the [MASK] " + id, Scores: scores,
			Suggestions: []workflows.Suggestion{{Token: "cat", Prob: 0.5}}})
		progress(len(out), -1)
	}
	return out, nil
}

func (e tinyEngine) FineTune(ctx context.Context, req activities.TrainRequest, progress func(activities.TrainProgress)) (activities.TrainResult, error) {
	key := req.OutputPrefix + "/final"
	progress(activities.TrainProgress{Step: 1, TotalSteps: 1, Loss: 1, CheckpointURI: key, CheckpointStep: 1})
	if err := e.blobs.Put(ctx, key+"/model.safetensors", []byte(fmt.Sprint(len(req.Examples)))); err != nil {
		return activities.TrainResult{}, err
	}
	return activities.TrainResult{CheckpointURI: key, Steps: 1, FinalLoss: 1}, nil
}

func (e tinyEngine) Evaluate(ctx context.Context, modelURI, evalURI string, progress func(done, total int)) (map[string]float64, error) {
	return map[string]float64{"accuracy": 0.5 + 0.01*float64(len(modelURI))}, nil
}

// TestRoundSurvivesWorkerAndServerRestart starts a two-round run on the
// embedded server, stops the worker and then the server while round 1 waits
// for labels, restarts both, delivers the labels and checks the run
// completes with nothing lost or done twice. With
// CLOZELOOP_RECORD_HISTORIES=1 it also writes the histories to
// workflows/testdata for the replay test.
func TestRoundSurvivesWorkerAndServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server twice")
	}
	ctx := context.Background()
	dir := t.TempDir()
	blobs := &activities.MemBlobs{}
	eng := tinyEngine{blobs: blobs}
	acts := &activities.Activities{Blobs: blobs, Scorer: eng, Trainer: eng, Evaluator: eng, Logger: quietLogger()}
	startWorkers := func(c client.Client) func() {
		ws, err := workers.New(c, acts, workers.Options{Queues: []string{"default", "gpu"}, StopTimeout: 5 * time.Second})
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
	c := dial(t, s)
	stop := startWorkers(c)
	cfg := workflows.RunConfig{RunID: "it-run", Dataset: "tiny", PoolURI: "pool", PoolShards: 2, EvalURI: "eval", ModelURI: "base",
		Strategy: "entropy", BatchSize: 2, Quorum: 1, RoundDeadline: workflows.Duration(72 * time.Hour), MinLabels: 1,
		Budget: workflows.Budget{MaxRounds: 2}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: cfg.RunID, TaskQueue: workflows.DefaultTaskQueue}, workflows.ActiveLearningName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	batch := waitBatch(t, c, cfg.RunID, 1)
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
	defer stop()
	for round := 1; round <= 2; round++ {
		if round == 2 {
			batch = waitBatch(t, c, cfg.RunID, 2)
		}
		sub := workflows.LabelSubmission{Round: round, Annotator: "ann"}
		for _, it := range batch.Items {
			sub.Answers = append(sub.Answers, workflows.Answer{ItemID: it.ItemID, Answer: "cat"})
		}
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: cfg.RunID, UpdateName: workflows.UpdateSubmitLabels,
			Args: []any{sub}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			t.Fatalf("round %d: submit: %v", round, err)
		}
		var res workflows.SubmitResult
		if err := h.Get(ctx, &res); err != nil || !res.RoundComplete {
			t.Fatalf("round %d: %+v, %v", round, res, err)
		}
	}
	var res workflows.Result
	if err := c.GetWorkflow(ctx, cfg.RunID, "").Get(ctx, &res); err != nil {
		t.Fatalf("result: %v", err)
	}
	if res.Rounds != 2 || res.LabelsTotal != 4 || res.ModelURI == "base" {
		t.Fatalf("result %+v", res)
	}
	keys, _ := blobs.List(ctx, "runs/it-run/models/round-0002/")
	if len(keys) != 1 {
		t.Fatalf("round-2 checkpoint objects %v", keys)
	}
	if os.Getenv("CLOZELOOP_RECORD_HISTORIES") == "1" {
		recordChain(t, c, cfg.RunID, run.GetRunID())
	}
}

func waitBatch(t *testing.T, c client.Client, id string, round int) workflows.BatchView {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		v, err := c.QueryWorkflow(context.Background(), id, "", workflows.QueryBatch)
		if err == nil {
			var b workflows.BatchView
			if v.Get(&b) == nil && b.Round == round && b.Open {
				return b
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("round %d batch never opened", round)
	return workflows.BatchView{}
}

// recordChain writes every run of the continue-as-new chain to
// workflows/testdata/<id>-run<N>.json.
func recordChain(t *testing.T, c client.Client, id, firstRun string) {
	runID := firstRun
	for n := 1; runID != ""; n++ {
		it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		h := &historypb.History{}
		next := ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			h.Events = append(h.Events, ev)
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
		}
		data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "workflows", "testdata", fmt.Sprintf("%s-run%d.json", id, n))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d events)", path, len(h.Events))
		runID = next
	}
}
