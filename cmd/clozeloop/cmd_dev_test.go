package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/hook"
	"github.com/clozeloop/clozeloop/metrics"
	"github.com/clozeloop/clozeloop/metrics/metricstest"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
	"github.com/clozeloop/clozeloop/store/s3test"
	"github.com/clozeloop/clozeloop/workflows"
)

// poolEngine scores the real pool uploaded to the store (so item ids match
// the gold answers), and trains and evaluates without a model: it tests
// the dev wiring, not the model engine.
type poolEngine struct{ blobs activities.Blobs }

func (e poolEngine) ScoreShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) ([]activities.ScoredItem, error) {
	data, err := e.blobs.Get(ctx, req.PoolURI)
	if err != nil {
		return nil, err
	}
	var out []activities.ScoredItem
	sc := bufio.NewScanner(bytes.NewReader(data))
	for p := 0; sc.Scan(); p++ {
		var it dataset.Item
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			return nil, fmt.Errorf("pool line %d: %w", p+1, err)
		}
		if p%req.NumShards != req.Shard || req.Skip(it.ID) {
			continue
		}
		scores := map[string]float64{}
		for _, s := range req.Strategies {
			scores[s] = float64(p)
		}
		out = append(out, activities.ScoredItem{ItemID: it.ID, Text: it.Text, Scores: scores,
			Suggestions: []workflows.Suggestion{{Token: "thing", Prob: 0.5}}})
	}
	return out, sc.Err()
}

func (e poolEngine) FineTune(ctx context.Context, req activities.TrainRequest, progress func(activities.TrainProgress)) (activities.TrainResult, error) {
	key := req.OutputPrefix + "/final"
	if err := e.blobs.Put(ctx, key+"/model.safetensors", []byte(fmt.Sprint(len(req.Examples)))); err != nil {
		return activities.TrainResult{}, err
	}
	if progress != nil {
		progress(activities.TrainProgress{Step: 1, TotalSteps: 1, Loss: 1, Tokens: 64, TokensPerSec: 640})
	}
	return activities.TrainResult{CheckpointURI: key, Steps: 1, FinalLoss: 1}, nil
}

func (e poolEngine) Evaluate(ctx context.Context, modelURI, evalURI string, progress func(done, total int)) (map[string]float64, error) {
	if _, err := e.blobs.Get(ctx, evalURI); err != nil {
		return nil, err
	}
	return map[string]float64{"accuracy": 0.1 * float64(strings.Count(modelURI, "round"))}, nil
}

func testEnv(stdout io.Writer) *cmdEnv {
	return &cmdEnv{stdout: stdout, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestDevDemoAnnotate runs `clozeloop dev --demo-annotate` in process on
// free ports and temporary folders: data set build, upload, run start, the
// oracle annotator answering two rounds through the hook, and a clean
// shutdown.
func TestDevDemoAnnotate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server")
	}
	testDevDemo(t, nil)
}

// TestDevDemoOnVersityGW runs the same demo with its data, labels and
// models in a real S3 server, the Versity S3 Gateway (make test builds it
// and names it in CLOZELOOP_TEST_VERSITYGW), through dev --s3-endpoint.
func TestDevDemoOnVersityGW(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server and an S3 gateway")
	}
	if _, ok := s3test.VersityGWBinary(); !ok {
		t.Skipf("no versitygw binary (set %s; make test builds it)", s3test.EnvVersityGW)
	}
	gw := s3test.StartVersityGW(t, nil)
	testDevDemo(t, &store.Config{Endpoint: gw.Direct, Bucket: gw.Bucket, Region: gw.Region, PathStyle: true,
		AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey})
	// The round's labels and models are files of the gateway's bucket.
	for _, prefix := range []string{"runs", "models"} {
		if _, err := os.Stat(filepath.Join(gw.Root, gw.Bucket, prefix)); err != nil {
			t.Errorf("nothing under %s/ in the gateway's folder: %v", prefix, err)
		}
	}
}

// testDevDemo runs `clozeloop dev --demo-annotate` for two rounds, on s3
// (nil: the embedded server), and checks what it printed, its metrics and
// its files.
func testDevDemo(t *testing.T, s3 *store.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	model := filepath.Join(t.TempDir(), "model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"model_type":"bert"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := devOptions{
		dataDir: dir, temporalAddr: "127.0.0.1:0", uiAddr: "127.0.0.1:0", s3Addr: "127.0.0.1:0", hookAddr: "127.0.0.1:0",
		namespace: "default", modelDir: model, wordnetDir: filepath.Join("..", "..", "dataset", "testdata", "wordnet"),
		metricsAddr: "127.0.0.1:0", s3: s3,
		demo: true, demoAnnotate: true, demoRounds: 2, demoBatch: 2, asJSON: true,
		newActivities: func(ctx context.Context, env *cmdEnv, blobs activities.Blobs) (*activities.Activities, error) {
			eng := poolEngine{blobs: blobs}
			return &activities.Activities{Blobs: blobs, Scorer: eng, Trainer: eng, Evaluator: eng, Logger: env.log}, nil
		},
	}
	// Before the demo shuts down: one refused label submission, then a
	// scrape of the metrics endpoint.
	var scraped map[string]float64
	o.beforeStop = func(info devInfo) {
		resp, err := http.Post(info.Hook+"/api/v1/runs/"+info.RunID+"/labels", "application/json", strings.NewReader(`{"round":1,"answers":[]}`))
		if err != nil {
			t.Errorf("unauthenticated labels: %v", err)
		} else {
			resp.Body.Close()
		}
		// The SDK's metrics reach the registry within a second.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			m, err := metricstest.Scrape(info.Metrics)
			if err != nil {
				t.Errorf("%v", err)
				return
			}
			scraped = m
			if scraped[metrics.RoundPhase] > 0 && allPositive(scraped, devSDKMetrics) {
				break
			}
		}
	}
	start := time.Now()
	if err := runDev(ctx, testEnv(&out), o); err != nil {
		t.Fatalf("dev: %v\n%s", err, out.String())
	}
	checkDevMetrics(t, scraped)
	t.Logf("dev --demo-annotate with 2 rounds took %s", time.Since(start))

	dec := json.NewDecoder(&out)
	var info devInfo
	var res devResult
	if err := dec.Decode(&info); err != nil {
		t.Fatalf("info: %v", err)
	}
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("result: %v", err)
	}
	if !info.Workers || info.RunID == "" || info.WebUI == "" || !strings.HasPrefix(info.AnnotateURL, info.Hook+"/runs/demo-") {
		t.Errorf("info %+v", info)
	}
	if info.SignInURL != info.AnnotateURL+"#token="+info.AdminToken {
		t.Errorf("sign-in URL %q", info.SignInURL)
	}
	if res.Result == nil || res.Result.Rounds != 2 || res.Result.LabelsTotal != 4 || res.Result.StopReason != "max rounds reached" {
		t.Fatalf("result %+v", res.Result)
	}
	for _, name := range []string{"temporal/temporal.db", "data/pool.jsonl", "data/oracle.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if s3 != nil {
		if info.S3Endpoint != s3.Endpoint || info.S3AccessKeyID != "" || info.S3CredentialsFile != "" {
			t.Errorf("external S3: printed %+v", info)
		}
		return
	}
	// The embedded S3 server's keys were made, stored privately and printed.
	creds, err := s3embed.ReadCredentials(filepath.Join(dir, "s3", s3embed.CredentialsFile))
	if err != nil || info.S3CredentialsFile != filepath.Join(dir, "s3", s3embed.CredentialsFile) ||
		creds.AccessKeyID != info.S3AccessKeyID || creds.SecretAccessKey != info.S3SecretAccessKey {
		t.Errorf("S3 keys: printed %s in %s, stored %s (%v)", info.S3AccessKeyID, info.S3CredentialsFile, creds.AccessKeyID, err)
	}
}

// TestDevNoEngine starts everything without workers (the model engine is
// not available), serves until cancelled and shuts down cleanly.
func TestDevNoEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server")
	}
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	pr, pw := io.Pipe()
	o := devOptions{
		dataDir: dir, temporalAddr: "127.0.0.1:0", s3Addr: "127.0.0.1:0", hookAddr: "127.0.0.1:0", namespace: "default",
		asJSON: true, demoRounds: 1, demoBatch: 1,
		newActivities: func(context.Context, *cmdEnv, activities.Blobs) (*activities.Activities, error) {
			return nil, fmt.Errorf("no engine in this test")
		},
	}
	done := make(chan error, 1)
	go func() { done <- runDev(ctx, testEnv(pw), o); pw.Close() }()
	var info devInfo
	if err := json.NewDecoder(pr).Decode(&info); err != nil {
		t.Fatalf("info: %v", err)
	}
	go io.Copy(io.Discard, pr)
	if info.Workers || info.WorkersError != "no engine in this test" || info.RunID != "" {
		t.Errorf("info %+v", info)
	}
	resp, err := httpGet(ctx, info.Hook+"/healthz")
	if err != nil || resp != 200 {
		t.Errorf("healthz: %d, %v", resp, err)
	}
	// The embedded S3 server refuses anonymous requests.
	if resp, err := httpGet(ctx, info.S3Endpoint+"/"+info.S3Bucket+"?list-type=2"); err != nil || resp != 403 {
		t.Errorf("anonymous S3 list: %d, %v", resp, err)
	}
	// The hook needs a token; dev prints the admin's, with a sign-in link
	// that carries it in the URL fragment only.
	if !strings.HasPrefix(info.AdminToken, hook.TokenPrefix) || info.SignInURL != info.Hook+"/signin#token="+info.AdminToken {
		t.Errorf("admin token %q, sign-in URL %q", info.AdminToken, info.SignInURL)
	}
	if resp, err := httpGet(ctx, info.Hook+"/api/v1/runs"); err != nil || resp != 401 {
		t.Errorf("API without a token: %d, %v; want 401", resp, err)
	}
	admin := &hook.Client{BaseURL: info.Hook, Token: info.AdminToken}
	if me, err := admin.Me(ctx); err != nil || me.Name != "dev-admin" || me.Role != hook.RoleAdmin {
		t.Errorf("admin token: %+v, %v", me, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("dev did not stop within a minute")
	}
}

func TestDevFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--demo=false", "--demo-annotate"}, "--demo-annotate needs --demo"},
		{[]string{"--demo-rounds", "0"}, "at least 1"},
		{[]string{"extra"}, "no arguments"},
	}
	for _, tt := range tests {
		err := devCmd().run(context.Background(), testEnv(io.Discard), tt.args)
		if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("dev %v: %v, want a usage error with %q", tt.args, err, tt.want)
		}
	}
}

func httpGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestStartModel checks where the demo's starting model comes from: the
// --model folder, else DATA/models/start, filled with the shipped model
// only when it holds none.
func TestStartModel(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	data := t.TempDir()
	dir, source, err := startModel(ctx, log, data, "/some/model")
	if err != nil || dir != "/some/model" || !strings.Contains(source, "--model") {
		t.Errorf("with --model: %q, %q, %v", dir, source, err)
	}

	dir, source, err = startModel(ctx, log, data, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(data, "models", "start"); dir != want || !strings.Contains(source, "shipped wordnet-small") {
		t.Errorf("empty data folder: %q, %q; want %s from the shipped model", dir, source, want)
	}
	for _, f := range []string{"config.json", "model.safetensors", "vocab.txt", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("shipped model file %s not written: %v", f, err)
		}
	}

	// A copy of the shipped model from an earlier release (other weights,
	// the shipped card) is brought up to date.
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("older weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, source, err = startModel(ctx, log, data, ""); err != nil || !strings.Contains(source, "shipped wordnet-small") {
		t.Errorf("older shipped copy: %q, %v", source, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); string(b) == "older weights" {
		t.Error("startModel kept an older copy of the shipped weights")
	}

	// Any other model already in DATA/models/start (its own card, or
	// none) is used as it is.
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"bert"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("# my fine-tuned model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir2, source, err := startModel(ctx, log, data, "")
	if err != nil || dir2 != dir || !strings.Contains(source, "already there") {
		t.Errorf("existing model: %q, %q, %v", dir2, source, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(b) != `{"model_type":"bert"}` {
		t.Errorf("startModel overwrote the existing model's config: %s", b)
	}
}

// checkDevMetrics checks that a demo round moved every metric of package
// metrics, and the Temporal SDK's own.
// devSDKMetrics are the Temporal SDK's metrics a demo run must report.
// The SDK hands them to the registry on its own reporting interval, so the
// scrape waits until every one of them is there.
var devSDKMetrics = []string{"temporal_workflow_task_execution_latency_seconds", "temporal_activity_execution_latency_seconds",
	"temporal_request_total", "temporal_workflow_continue_as_new_total"}

// allPositive reports whether every name has a positive value in got.
func allPositive(got map[string]float64, names []string) bool {
	for _, n := range names {
		if got[n] <= 0 {
			return false
		}
	}
	return true
}

func checkDevMetrics(t *testing.T, got map[string]float64) {
	t.Helper()
	if got == nil {
		t.Fatal("metrics were not scraped")
	}
	for name := range metrics.Names() {
		if name == metrics.S3Errors {
			continue // no S3 request failed
		}
		if got[name] <= 0 {
			t.Errorf("metric %s = %v after a demo run, want > 0", name, got[name])
		}
	}
	for _, series := range []string{
		metrics.Labels + "{reason=,result=accepted}",
		metrics.Labels + "{reason=unauthenticated,result=refused}",
		metrics.EvalMetric + "{metric=accuracy,set=eval}",
	} {
		if got[series] <= 0 {
			t.Errorf("series %s = %v, want > 0", series, got[series])
		}
	}
	// The workflow's phase timer carries the SDK's tags besides "phase".
	for _, phase := range []string{"scoring", "labeling", "persisting", "training", "evaluating", "uploading"} {
		n := 0.0
		for series, v := range got {
			if strings.HasPrefix(series, metrics.RoundPhase+"{") && strings.Contains(series, ",phase="+phase+",") {
				n += v
			}
		}
		if n <= 0 {
			t.Errorf("%s{phase=%s} has no sample", metrics.RoundPhase, phase)
		}
	}
	for _, name := range devSDKMetrics {
		if got[name] <= 0 {
			t.Errorf("SDK metric %s = %v, want > 0", name, got[name])
		}
	}
	metricstest.CheckDashboard(t, got, filepath.Join("..", "..", "deploy", "grafana", "clozeloop-dashboard.json"))
	if t.Failed() {
		var names []string
		for n := range got {
			if strings.HasPrefix(n, "clozeloop_") || !strings.Contains(n, "{") {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		t.Logf("scraped: %v", names)
	}
}
