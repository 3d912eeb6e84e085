package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/mlmengine/mlmenginetest"
	"github.com/clozeloop/clozeloop/workflows"
)

func TestNewActivities(t *testing.T) {
	ctx := context.Background()
	if _, err := NewActivities(ctx, Options{CacheDir: t.TempDir()}); err == nil {
		t.Error("no store and no bucket accepted")
	}
	f := mlmenginetest.Start(t, 6, 4)
	if _, err := NewActivities(ctx, Options{Store: f.Store}); err == nil {
		t.Error("no cache folder accepted")
	}
	// Opened from a config, as the worker command does.
	acts, err := NewActivities(ctx, Options{StoreConfig: f.Config, CacheDir: t.TempDir(), Device: "cpu", Threads: 1, MaxModels: 1})
	if err != nil {
		t.Fatal(err)
	}
	if acts.Blobs == nil || acts.Scorer == nil || acts.Trainer == nil || acts.Evaluator == nil || acts.Adapter == nil || acts.Pinner == nil {
		t.Fatalf("incomplete activities %+v", acts)
	}
	// The store and the cached models work together: score, then evaluate
	// (a second model URI evicts the first with MaxModels 1), then a bad
	// model is reported as such.
	items, err := acts.Scorer.ScoreShard(ctx, activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI,
		NumShards: 1, Strategies: []string{"entropy"}}, nil)
	if err != nil || len(items) != 6 {
		t.Fatalf("score: %d items, %v", len(items), err)
	}
	if _, err := acts.Evaluator.Evaluate(ctx, mlmenginetest.ModelURI, mlmenginetest.EvalURI, nil); err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	res, err := acts.Trainer.FineTune(ctx, activities.TrainRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "t",
		Examples: []activities.Example{{ItemID: "p0000", Text: f.PoolItems[0].Text, Label: f.Gold["p0000"]}},
		Settings: workflows.FineTuneSettings{MaxSteps: 1, BatchSize: 1}}, nil)
	if err != nil {
		t.Fatalf("fine-tune: %v", err)
	}
	if _, err := acts.Evaluator.Evaluate(ctx, res.CheckpointURI, mlmenginetest.EvalURI, nil); err != nil {
		t.Fatalf("evaluate fine-tuned model: %v", err)
	}
	if _, err := acts.Evaluator.Evaluate(ctx, "models/missing", mlmenginetest.EvalURI, nil); !errors.Is(err, activities.ErrBadCheckpoint) {
		t.Fatalf("missing model: %v", err)
	}
}
