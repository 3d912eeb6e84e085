package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/devserver"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

// tinyEngine scores a fixed pool of four items and trains and evaluates
// without a model.
type tinyEngine struct{ blobs activities.Blobs }

func (e tinyEngine) ScoreShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) ([]activities.ScoredItem, error) {
	var out []activities.ScoredItem
	for i := req.Shard; i < 4; i += req.NumShards {
		id := fmt.Sprintf("it-%d", i)
		scores := map[string]float64{}
		for _, s := range req.Strategies {
			scores[s] = float64(i)
		}
		out = append(out, activities.ScoredItem{ItemID: id, Text: "the [MASK] number " + id, Scores: scores,
			Suggestions: []workflows.Suggestion{{Token: "cat", Prob: 0.6}, {Token: "dog", Prob: 0.3}}})
	}
	return out, nil
}

func (e tinyEngine) FineTune(ctx context.Context, req activities.TrainRequest, progress func(activities.TrainProgress)) (activities.TrainResult, error) {
	key := req.OutputPrefix + "/final"
	if err := e.blobs.Put(ctx, key+"/model.safetensors", []byte("weights")); err != nil {
		return activities.TrainResult{}, err
	}
	return activities.TrainResult{CheckpointURI: key, Steps: 1, FinalLoss: 1}, nil
}

func (e tinyEngine) Evaluate(ctx context.Context, modelURI, evalURI string, progress func(done, total int)) (map[string]float64, error) {
	return map[string]float64{"accuracy": 0.5}, nil
}

// TestTemporalBackend drives a real ActiveLearning run on the embedded
// Temporal server through the hook's HTTP API.
func TestTemporalBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := devserver.Start(ctx, devserver.Options{FrontendAddr: "127.0.0.1:0", DataDir: t.TempDir(), Namespace: "hook-test", LogLevel: "error", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := client.Dial(client.Options{HostPort: srv.FrontendAddr(), Namespace: srv.Namespace(), Logger: sdklog.NewStructuredLogger(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	blobs := &activities.MemBlobs{}
	eng := tinyEngine{blobs: blobs}
	acts := &activities.Activities{Blobs: blobs, Scorer: eng, Trainer: eng, Evaluator: eng, Logger: quiet}
	ws, err := workers.New(c, acts, workers.Options{Queues: []string{"default", "gpu"}, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	cfg := workflows.RunConfig{RunID: "hook-run", Dataset: "tiny", PoolURI: "pool", EvalURI: "eval", ModelURI: "base",
		Strategy: "entropy", BatchSize: 2, RoundDeadline: workflows.Duration(time.Hour), Budget: workflows.Budget{MaxRounds: 1}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: cfg.RunID, TaskQueue: workflows.DefaultTaskQueue,
		Memo: map[string]any{"dataset": cfg.Dataset, "strategy": cfg.Strategy}}, workflows.ActiveLearningName, cfg)
	if err != nil {
		t.Fatal(err)
	}

	h, err := New(NewTemporalBackend(c, srv.Namespace(), nil), Options{Logger: quiet, Auth: AuthOptions{NoAuth: true}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	api := &Client{BaseURL: hs.URL, HTTP: hs.Client()}

	var batch workflows.BatchView
	eventually(t, ctx, "the batch opens", func() error {
		batch, err = api.Batch(ctx, cfg.RunID)
		if err == nil && !batch.Open {
			err = errors.New("round not open yet")
		}
		return err
	})
	if batch.Round != 1 || len(batch.Items) != 2 || len(batch.Items[0].Suggestions) != 2 {
		t.Fatalf("batch %+v", batch)
	}
	eventually(t, ctx, "the run is listed", func() error {
		runs, err := api.Runs(ctx)
		if err != nil {
			return err
		}
		if len(runs) != 1 || runs[0].RunID != cfg.RunID || runs[0].Dataset != "tiny" || runs[0].Strategy != "entropy" {
			return fmt.Errorf("runs = %+v", runs)
		}
		return nil
	})

	// The validator's rejection reaches the client as 422 with its reason.
	_, err = api.SubmitLabels(ctx, cfg.RunID, LabelsRequest{Annotator: "ann", Round: 1, Labels: []ItemLabel{{ItemID: "nope", Answer: "cat"}}})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || !strings.Contains(apiErr.Message, `unknown item id "nope"`) {
		t.Fatalf("unknown item: %v, want 422 with the validator's reason", err)
	}
	_, err = api.Status(ctx, "no-such-run")
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("unknown run: %v, want 404", err)
	}
	_, err = api.CloseRound(ctx, cfg.RunID, CloseRequest{Round: 5})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Message, "wrong round") {
		t.Fatalf("close wrong round: %v, want 409", err)
	}

	// ann skips one item for themselves (signal) and answers the other
	// (update); another annotator answers the skipped one: the round
	// completes.
	skipped, answered := batch.Items[0].ItemID, batch.Items[1].ItemID
	resp, err := hs.Client().Post(hs.URL+"/api/v1/runs/"+cfg.RunID+"/items/"+skipped+"/skip", "application/json",
		strings.NewReader(`{"round":1,"annotator":"ann","reason":"unclear","scope":"self"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("skip: status %d", resp.StatusCode)
	}
	eventually(t, ctx, "the skip is applied", func() error {
		b, err := api.Batch(ctx, cfg.RunID)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(b.Items, func(it workflows.BatchItem) bool { return it.ItemID == skipped }); i < 0 || !slices.Contains(b.Items[i].SkippedBy, "ann") || b.Items[i].Skipped {
			return fmt.Errorf("item %s not skipped by ann yet", skipped)
		}
		return nil
	})
	_, err = api.SubmitLabels(ctx, cfg.RunID, LabelsRequest{Annotator: "ann", Round: 1, Labels: []ItemLabel{{ItemID: skipped, Answers: []string{"cat"}}}})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Message, "skipped item") {
		t.Fatalf("answer after one's own skip: %v, want 409", err)
	}
	res, err := api.SubmitLabels(ctx, cfg.RunID, LabelsRequest{Annotator: "ann", Round: 1, Labels: []ItemLabel{{ItemID: answered, Answers: []string{"cat"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counted != 1 || res.RoundComplete {
		t.Fatalf("submit result %+v", res)
	}
	res, err = api.SubmitLabels(ctx, cfg.RunID, LabelsRequest{Annotator: "ann2", Round: 1, Labels: []ItemLabel{{ItemID: skipped, Answers: []string{"Dog"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counted != 1 || !res.RoundComplete {
		t.Fatalf("submit result %+v", res)
	}
	var out workflows.Result
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if out.Rounds != 1 || out.LabelsTotal != 2 || out.History[0].Skipped != 0 {
		t.Fatalf("result %+v", out)
	}
}

func eventually(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
