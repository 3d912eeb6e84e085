package mlmengine_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/mlmengine"
	"github.com/clozeloop/clozeloop/activities/mlmengine/mlmenginetest"
	"github.com/clozeloop/clozeloop/workflows"
)

func TestAdaptResumes(t *testing.T) {
	f := mlmenginetest.Start(t, 24, 0)
	ctx := context.Background()
	req := activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "runs/r/adapt",
		Settings: workflows.AdaptSettings{Steps: 10, BatchSize: 4, LearningRate: 1e-3, Seed: 3, CheckpointEvery: 3}}

	straightReq := req
	straightReq.OutputPrefix = "runs/straight/adapt"
	straight, err := newEngine(t, f).Adapt(ctx, straightReq, nil)
	if err != nil {
		t.Fatalf("uninterrupted adaptation: %v", err)
	}
	if straight.Texts != 24 || straight.Sequences != 24 || straight.Steps != 10 {
		t.Errorf("uninterrupted result %+v, want 24 texts, one sequence each, 10 steps", straight)
	}

	cctx, cancel := context.WithCancel(ctx)
	var last activities.TrainProgress
	_, err = newEngine(t, f).Adapt(cctx, req, func(p activities.TrainProgress) {
		last = p
		if p.CheckpointStep > 0 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted adaptation: %v", err)
	}
	if last.CheckpointStep != 3 || last.CheckpointURI != mlmengine.CheckpointURI(req.OutputPrefix, 3) || last.Step != 4 {
		t.Fatalf("last progress %+v, want the checkpoint of step 3 reported at step 4", last)
	}

	resumed := req
	resumed.Resume = &last
	var steps []int
	res, err := newEngine(t, f).Adapt(ctx, resumed, func(p activities.TrainProgress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatalf("resumed adaptation: %v", err)
	}
	if res.ResumedFrom != 3 || res.Steps != 10 || len(steps) != 7 || steps[0] != 4 {
		t.Fatalf("resumed result %+v, steps %v; want resumed from 3, steps 4..10", res, steps)
	}
	if math.Abs(res.FinalLoss-straight.FinalLoss) > 1e-4 {
		t.Errorf("resumed final loss %v, uninterrupted %v", res.FinalLoss, straight.FinalLoss)
	}
	if res.CheckpointURI != req.OutputPrefix+"/"+mlmengine.ModelDir {
		t.Errorf("model URI %s", res.CheckpointURI)
	}
	m, err := newEngine(t, f).LoadModel(ctx, res.CheckpointURI)
	if err != nil {
		t.Fatalf("load adapted model: %v", err)
	}
	m.Close()
	if objs, err := f.Store.List(ctx, req.OutputPrefix+"/"+mlmengine.CheckpointsDir+"/"); err != nil || len(objs) != 0 {
		t.Errorf("intermediate checkpoints left: %d, %v", len(objs), err)
	}

	calls := 0
	again, err := newEngine(t, f).Adapt(ctx, req, func(activities.TrainProgress) { calls++ })
	if err != nil || calls != 0 || again != res {
		t.Errorf("repeated adaptation: %+v, %v, %d progress reports; want %+v without training", again, err, calls, res)
	}
}

func TestAdaptTextCorpus(t *testing.T) {
	f := mlmenginetest.Start(t, 0, 0)
	ctx := context.Background()
	corpus := strings.Join(mlmenginetest.Sentences(10), "\n\n") + "\n   \n"
	if _, err := f.Store.PutBytes(ctx, "corpora/text.txt", []byte(corpus)); err != nil {
		t.Fatal(err)
	}
	res, err := newEngine(t, f).Adapt(ctx, activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "t/adapt",
		Settings: workflows.AdaptSettings{Steps: 2, BatchSize: 4, Packing: workflows.AdaptPackSequences, TextURI: "corpora/text.txt"}}, nil)
	if err != nil || res.Texts != 10 || res.Steps != 2 || res.Sequences == 0 || res.Sequences >= 10 {
		t.Fatalf("%+v, %v; want 10 texts packed into fewer sequences", res, err)
	}
}

// TestAdaptTargetShare adapts on the quarter of the pool most like a
// target sample: exactly that many texts, and a fingerprint of its own.
func TestAdaptTargetShare(t *testing.T) {
	f := mlmenginetest.Start(t, 24, 0)
	ctx := context.Background()
	target := `{"id":"t1","text":"` + mlmenginetest.Sentences(1)[0] + ` [MASK]"}` + "\n" + `{"id":"t2","text":"the [MASK] sat"}` + "\n"
	if _, err := f.Store.PutBytes(ctx, "datasets/target.jsonl", []byte(target)); err != nil {
		t.Fatal(err)
	}
	req := activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "runs/t/adapt",
		TargetURI: "datasets/target.jsonl", Settings: workflows.AdaptSettings{Steps: 2, BatchSize: 4, TargetShare: 0.25}}
	res, err := newEngine(t, f).Adapt(ctx, req, nil)
	if err != nil || res.Texts != 6 || res.Sequences != 6 || res.Steps != 2 {
		t.Fatalf("%+v, %v; want 6 of the 24 pool texts", res, err)
	}
	whole := req
	whole.Settings.TargetShare, whole.TargetURI = 0, ""
	if res, err := newEngine(t, f).Adapt(ctx, whole, nil); err != nil || res.Texts != 24 {
		t.Fatalf("the whole pool under the same prefix: %+v, %v; want 24 texts trained anew", res, err)
	}
}

func TestAdaptBadInput(t *testing.T) {
	f := mlmenginetest.Start(t, 4, 0)
	ctx := context.Background()
	if _, err := f.Store.PutBytes(ctx, "corpora/blank.txt", []byte("\n  \n")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.PutBytes(ctx, "pools/blanks.jsonl", []byte(`{"id":"a","text":"[MASK]"}`+"\n"+`{"id":"b","text":"[MASK] [MASK] ."}`+"\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.PutBytes(ctx, "pools/broken.jsonl", []byte("{not json\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.PutBytes(ctx, "targets/blanks.jsonl", []byte(`{"id":"a","text":"[MASK] ."}`+"\n")); err != nil {
		t.Fatal(err)
	}
	ok := workflows.AdaptSettings{Steps: 2, BatchSize: 2}
	share := ok
	share.TargetShare = 0.5
	tests := []struct {
		name string
		req  activities.AdaptRequest
		want error
	}{
		{"no output prefix", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, Settings: ok}, activities.ErrBadData},
		{"bad settings", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "o"}, activities.ErrBadData},
		{"no corpus", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "o", Settings: ok}, activities.ErrBadData},
		{"missing pool", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: "pools/none.jsonl", OutputPrefix: "o", Settings: ok}, activities.ErrBadData},
		{"broken pool", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: "pools/broken.jsonl", OutputPrefix: "o", Settings: ok}, activities.ErrBadData},
		{"pool of blanks only", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: "pools/blanks.jsonl", OutputPrefix: "o", Settings: ok}, activities.ErrBadData},
		{"blank text corpus", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "o",
			Settings: workflows.AdaptSettings{Steps: 2, TextURI: "corpora/blank.txt"}}, activities.ErrBadData},
		{"target share without a sample", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "o", Settings: share}, activities.ErrBadData},
		{"missing target sample", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "o", Settings: share,
			TargetURI: "targets/none.jsonl"}, activities.ErrBadData},
		{"broken target sample", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "o", Settings: share,
			TargetURI: "pools/broken.jsonl"}, activities.ErrBadData},
		{"wordless target sample", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "o", Settings: share,
			TargetURI: "targets/blanks.jsonl"}, activities.ErrBadData},
		{"missing base", activities.AdaptRequest{BaseModelURI: "models/none", PoolURI: mlmenginetest.PoolURI, OutputPrefix: "o", Settings: ok}, activities.ErrBadCheckpoint},
		{"missing resume", activities.AdaptRequest{BaseModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, OutputPrefix: "o", Settings: ok,
			Resume: &activities.TrainProgress{CheckpointURI: "o/checkpoints/step-00000009", CheckpointStep: 9}}, activities.ErrBadCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newEngine(t, f).Adapt(ctx, tc.req, nil); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}
