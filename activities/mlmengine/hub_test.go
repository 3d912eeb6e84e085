package mlmengine_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/mlmengine"
	"github.com/clozeloop/clozeloop/activities/mlmengine/mlmenginetest"
	"github.com/clozeloop/clozeloop/activities/storeblobs"
	"github.com/clozeloop/clozeloop/hfhub"
	"github.com/clozeloop/clozeloop/hfhub/hubtest"
	"github.com/clozeloop/clozeloop/workflows"
)

// hubFiles returns the fixture's model files, as a Hub repository holds them.
func hubFiles(t *testing.T, f *mlmenginetest.Fixture) map[string][]byte {
	t.Helper()
	dir, _, err := f.Store.DownloadDir(context.Background(), mlmenginetest.ModelURI, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "MANIFEST.json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func hubEngine(t *testing.T, f *mlmenginetest.Fixture, hub *hfhub.Client) *mlmengine.Engine {
	t.Helper()
	e, err := mlmengine.New(mlmengine.Options{Store: f.Store, CacheDir: t.TempDir(), Device: "cpu", Threads: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestHubModels runs a fine-tune and an evaluation from an hf:// model
// URI: the fine-tune records the resolved commit beside its result in S3,
// and a worker offline with the filled cache evaluates without the Hub.
func TestHubModels(t *testing.T) {
	f := mlmenginetest.Start(t, 8, 6)
	srv := hubtest.New()
	defer srv.Close()
	files := hubFiles(t, f)
	commit := srv.AddCommit("org/tiny", "main", false, files)
	gpt := map[string][]byte{}
	for k, v := range files {
		gpt[k] = v
	}
	gpt["config.json"] = []byte(`{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}`)
	srv.AddCommit("openai-community/gpt2", "main", false, gpt)
	cache := t.TempDir()
	ctx := context.Background()

	e := hubEngine(t, f, hfhub.New(hfhub.Config{Endpoint: srv.URL(), CacheDir: cache}))
	req := activities.TrainRequest{BaseModelURI: "hf://org/tiny", Examples: trainExamples(f, 8), OutputPrefix: "runs/hub/round-1/train",
		Settings: workflows.FineTuneSettings{MaxSteps: 2, BatchSize: 4, LearningRate: 1e-3, Seed: 1}}
	res, err := e.FineTune(ctx, req, nil)
	if err != nil {
		t.Fatalf("fine-tune from the Hub: %v", err)
	}
	if res.Steps != 2 {
		t.Errorf("steps %d", res.Steps)
	}
	data, _, err := f.Store.GetBytes(ctx, req.OutputPrefix+"/"+mlmengine.HubModelFile)
	if err != nil {
		t.Fatalf("no hub model record: %v", err)
	}
	var rec mlmengine.HubModelRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Commit != commit || rec.Repo != "org/tiny" || rec.Revision != "main" || rec.Pinned != "hf://org/tiny@"+commit {
		t.Errorf("record %+v", rec)
	}
	if hubtest.CountCDN(srv.Requests()) != 1 {
		t.Error("weights not downloaded exactly once")
	}

	offline := hubEngine(t, f, hfhub.New(hfhub.Config{Endpoint: "http://127.0.0.1:1", CacheDir: cache, Offline: true}))
	for _, uri := range []string{"hf://org/tiny", rec.Pinned} {
		if _, err := offline.Evaluate(ctx, uri, mlmenginetest.EvalURI, nil); err != nil {
			t.Errorf("offline evaluate %s: %v", uri, err)
		}
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("offline engine made requests %q", reqs)
	}

	tests := []struct {
		name string
		e    *mlmengine.Engine
		uri  string
		want string
	}{
		{"offline, not cached", hubEngine(t, f, hfhub.New(hfhub.Config{Endpoint: srv.URL(), CacheDir: t.TempDir(), Offline: true})), "hf://org/tiny", "HF_HUB_OFFLINE"},
		{"no hub client", hubEngine(t, f, nil), "hf://org/tiny", "no Hugging Face Hub client"},
		{"causal LM", e, "hf://openai-community/gpt2", "not a fill-mask model"},
		{"missing repository", e, "hf://org/missing", "repository not found"},
		{"bad reference", e, "hf://a/b/c", "want org/name"},
	}
	for _, tc := range tests {
		_, err := tc.e.Evaluate(ctx, tc.uri, mlmenginetest.EvalURI, nil)
		if !errors.Is(err, activities.ErrBadCheckpoint) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadCheckpoint with %q", tc.name, err, tc.want)
		}
	}
}

// TestResolveRunPinsHubModel: ResolveRun with the engine as its pinner
// pins a run's hf:// starting model to the commit the branch names now and
// records it in the run's prefix; offline, the filled cache answers; an S3
// key is left alone; a missing repository is a final error.
func TestResolveRunPinsHubModel(t *testing.T) {
	f := mlmenginetest.Start(t, 8, 6)
	srv := hubtest.New()
	defer srv.Close()
	commit := srv.AddCommit("org/tiny", "main", false, hubFiles(t, f))
	cache := t.TempDir()
	ctx := context.Background()
	online := hubEngine(t, f, hfhub.New(hfhub.Config{Endpoint: srv.URL(), CacheDir: cache}))
	offline := hubEngine(t, f, hfhub.New(hfhub.Config{Endpoint: "http://127.0.0.1:1", CacheDir: cache, Offline: true}))
	tests := []struct {
		name, uri, prefix, want, wantErr string
		e                                *mlmengine.Engine
	}{
		{"hub branch", "hf://org/tiny", "runs/pin-1", "hf://org/tiny@" + commit, "", online},
		{"offline from the cache", "hf://org/tiny", "runs/pin-2", "hf://org/tiny@" + commit, "", offline},
		{"S3 key", mlmenginetest.ModelURI, "runs/pin-3", "", "", online},
		{"missing repository", "hf://org/none", "runs/pin-4", "", "BadCheckpoint", online},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acts := &activities.Activities{Blobs: storeblobs.Blobs{S: f.Store}, Pinner: tc.e}
			out, err := acts.ResolveRun(ctx, workflows.ResolveRunInput{OutputPrefix: tc.prefix, ModelURI: tc.uri})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ResolveRun = %+v, %v; want an error with %q", out, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.PinnedModelURI != tc.want {
				t.Errorf("pinned %q, want %q", out.PinnedModelURI, tc.want)
			}
			data, _, err := f.Store.GetBytes(ctx, tc.prefix+"/"+mlmengine.HubModelFile)
			if tc.want == "" {
				if err == nil {
					t.Errorf("a record for a model that is not on the Hub: %s", data)
				}
				return
			}
			var rec mlmengine.HubModelRecord
			if err != nil || json.Unmarshal(data, &rec) != nil || rec.Commit != commit || rec.Pinned != tc.want {
				t.Errorf("record %s (%v)", data, err)
			}
		})
	}
}
