package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"

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

	// The reported attacks, against the real workflow: each is refused
	// before it reaches Temporal, and the round stays open and untouched.
	attacks(t, ctx, hs, c, srv.Namespace(), cfg.RunID, batch)

	// A lead extends the round through the hook: the real workflow moves
	// its deadline; a wrong round is a conflict.
	accounts, toks := testAccounts(t)
	ha, err := New(NewTemporalBackend(c, srv.Namespace(), nil), Options{Logger: quiet, Auth: AuthOptions{Accounts: accounts}})
	if err != nil {
		t.Fatal(err)
	}
	hsa := httptest.NewServer(ha)
	defer hsa.Close()
	lead := &Client{BaseURL: hsa.URL, HTTP: hsa.Client(), Token: toks["boss"]}
	ann := &Client{BaseURL: hsa.URL, HTTP: hsa.Client(), Token: toks["ann"]}
	before, err := lead.Status(ctx, cfg.RunID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ann.ExtendRound(ctx, cfg.RunID, ExtendRequest{Round: 1, Extend: workflows.Duration(24 * time.Hour)})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("annotator extends: %v, want 403", err)
	}
	_, err = lead.ExtendRound(ctx, cfg.RunID, ExtendRequest{Round: 3, Extend: workflows.Duration(time.Hour)})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Message, "wrong round") {
		t.Fatalf("extend wrong round: %v, want 409", err)
	}
	st, err := lead.ExtendRound(ctx, cfg.RunID, ExtendRequest{Round: 1, Extend: workflows.Duration(24 * time.Hour), Reason: "holiday"})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Deadline.Sub(before.Deadline); got != 24*time.Hour || st.LeadExtensions != 1 || st.Extensions != 1 {
		t.Fatalf("after the extension: deadline moved %v, extensions %d (%d by leads); want 24h, 1, 1", got, st.Extensions, st.LeadExtensions)
	}
	if b, err := api.Batch(ctx, cfg.RunID); err != nil || !b.Deadline.Equal(st.Deadline) {
		t.Fatalf("batch deadline %v (%v), want %v", b.Deadline, err, st.Deadline)
	}

	// The validator's rejection reaches the client as 422 with its reason.
	_, err = api.SubmitLabels(ctx, cfg.RunID, LabelsRequest{Annotator: "ann", Round: 1, Labels: []ItemLabel{{ItemID: "nope", Answer: "cat"}}})
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
	if out.Rounds != 1 || out.LabelsTotal != 2 || out.History[0].Skipped != 0 || out.History[0].LeadExtensions != 1 {
		t.Fatalf("result %+v", out)
	}
	if os.Getenv("CLOZELOOP_RECORD_HISTORIES") == "1" {
		recordHistory(t, c, cfg.RunID, run.GetRunID())
	}
}

// recordHistory writes the run's history to
// workflows/testdata/<id>-run1.json for TestReplayRecordedHistories: a
// run under ChangeLabelSemantics version 1 with answers as lists, a
// self-skip, rejected updates, and a lead's ExtendRound.
func recordHistory(t *testing.T, c client.Client, id, runID string) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "workflows", "testdata", id+"-run1.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events)", path, len(h.Events))
}

// attacks sends the four attacks reported in issue 13 to a real run whose
// round 1 is open (batch), through the loopback hook without
// authentication at hs and through a hook with accounts, and checks that
// each is refused and that the round is untouched.
func attacks(t *testing.T, ctx context.Context, hs *httptest.Server, c client.Client, namespace, runID string, batch workflows.BatchView) {
	t.Helper()
	post := func(base, path, ct, body string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	accounts, toks := testAccounts(t)
	quiet := slog.New(slog.DiscardHandler)
	ha, err := New(NewTemporalBackend(c, namespace, nil), Options{Logger: quiet, Auth: AuthOptions{Accounts: accounts}})
	if err != nil {
		t.Fatal(err)
	}
	hsa := httptest.NewServer(ha)
	defer hsa.Close()
	bearer := func(name string) map[string]string { return map[string]string{"Authorization": "Bearer " + toks[name]} }
	item, two := batch.Items[0], batch.Items[1]
	closePath := "/api/v1/runs/" + runID + "/close"
	labelsPath := "/api/v1/runs/" + runID + "/labels"
	tests := []struct {
		name, base, path, ct, body string
		header                     map[string]string
		want                       int
	}{
		// 1. A web page on another site closes the round (and, on the old
		// main, ended the run): a "simple" cross-site POST.
		{name: "cross-origin text/plain close, no body", base: hs.URL, path: closePath, ct: "text/plain",
			header: map[string]string{"Origin": "https://evil.example"}, want: http.StatusUnsupportedMediaType},
		{name: "cross-origin form close", base: hs.URL, path: closePath, ct: "application/x-www-form-urlencoded", body: "round=1",
			header: map[string]string{"Origin": "https://evil.example"}, want: http.StatusUnsupportedMediaType},
		{name: "cross-origin JSON close", base: hs.URL, path: closePath, ct: "application/json", body: `{"round":1}`,
			header: map[string]string{"Origin": "https://evil.example"}, want: http.StatusForbidden},
		// 2. No valid token: refused on a hook with accounts.
		{name: "close without a token", base: hsa.URL, path: closePath, ct: "application/json", body: `{"round":1}`,
			want: http.StatusUnauthorized},
		{name: "answer with an unknown token", base: hsa.URL, path: labelsPath, ct: "application/json",
			body:   `{"round":1,"labels":[{"item_id":"` + item.ItemID + `","answers":["cat"]}]}`,
			header: map[string]string{"Authorization": "Bearer clz_" + strings.Repeat("A", 43)}, want: http.StatusUnauthorized},
		// Anyone is anyone: an annotator answers as others, skips for
		// everyone or for someone else.
		{name: "answer as someone else", base: hsa.URL, path: labelsPath, ct: "application/json", header: bearer("ann"),
			body: `{"annotator":"ann2","round":1,"labels":[{"item_id":"` + item.ItemID + `","answers":["cat"]}]}`, want: http.StatusForbidden},
		{name: "answer as someone else by header", base: hsa.URL, path: labelsPath + "?async=1", ct: "application/json",
			header: map[string]string{"Authorization": "Bearer " + toks["ann"], "X-Annotator": "ann2"},
			body:   `{"round":1,"labels":[{"item_id":"` + item.ItemID + `","answers":["cat"]}]}`, want: http.StatusForbidden},
		{name: "annotator skips for everyone", base: hsa.URL, path: "/api/v1/runs/" + runID + "/items/" + item.ItemID + "/skip",
			ct: "application/json", header: bearer("ann"), body: `{"round":1,"scope":"all"}`, want: http.StatusForbidden},
		{name: "annotator skips for someone else", base: hsa.URL, path: "/api/v1/runs/" + runID + "/items/" + item.ItemID + "/skip",
			ct: "application/json", header: bearer("ann"), body: `{"round":1,"annotator":"ann2"}`, want: http.StatusForbidden},
		{name: "annotator closes", base: hsa.URL, path: closePath, ct: "application/json", header: bearer("ann"), body: `{"round":1}`,
			want: http.StatusForbidden},
		// 3. Wrong answer counts: three answers for one blank, on the
		// update and on the signal path.
		{name: "three answers for one blank", base: hsa.URL, path: labelsPath, ct: "application/json", header: bearer("ann"),
			body: `{"round":1,"labels":[{"item_id":"` + two.ItemID + `","answers":["a","b","c"]}]}`, want: http.StatusUnprocessableEntity},
		{name: "three answers for one blank, async", base: hs.URL, path: labelsPath + "?async=1", ct: "application/json",
			body: `{"annotator":"x","round":1,"labels":[{"item_id":"` + two.ItemID + `","answers":["a","b","c"]}]}`, want: http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		if code, body := post(tt.base, tt.path, tt.ct, tt.body, tt.header); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
	// The run goes on: round 1 is still open, with no answer, skip or
	// flag (a Status query is answered after every signal sent before it).
	api := &Client{BaseURL: hs.URL, HTTP: hs.Client()}
	st, err := api.Status(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := api.Batch(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != workflows.PhaseLabeling || st.Round != 1 || st.LabelsReceived != 0 || !b.Open {
		t.Fatalf("after the attacks: status %+v, batch open %v; want round 1 labelling with no labels", st, b.Open)
	}
	for _, it := range b.Items {
		if it.Answers != 0 || it.Skipped || it.Flagged || len(it.SkippedBy) > 0 {
			t.Fatalf("after the attacks: item %+v changed", it)
		}
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
