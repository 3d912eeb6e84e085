package mlmengine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/mlmengine"
	"github.com/clozeloop/clozeloop/activities/mlmengine/mlmenginetest"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/workflows"
)

func newEngine(t *testing.T, f *mlmenginetest.Fixture) *mlmengine.Engine {
	t.Helper()
	e, err := mlmengine.New(mlmengine.Options{Store: f.Store, CacheDir: t.TempDir(), Device: "cpu", Threads: 1,
		ChunkSize: 7, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewValidates(t *testing.T) {
	f := mlmenginetest.Start(t, 0, 0)
	tests := []struct {
		name string
		o    mlmengine.Options
	}{
		{"no store", mlmengine.Options{CacheDir: t.TempDir()}},
		{"no cache", mlmengine.Options{Store: f.Store}},
		{"bad device", mlmengine.Options{Store: f.Store, CacheDir: t.TempDir(), Device: "tpu"}},
	}
	for _, tc := range tests {
		if _, err := mlmengine.New(tc.o); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

// TestScoreShardPlumbing checks sharding, skipping, progress and that every
// score is present and in range (the values are checked in mlm and in
// TestScoreShardToMatchesReference).
func TestScoreShardPlumbing(t *testing.T) {
	f := mlmenginetest.Start(t, 30, 0)
	e := newEngine(t, f)
	ctx := context.Background()
	all := []string{"entropy", "margin", "least-confidence", "bald", "random", "kcenter", "hybrid"}

	seen := map[string]int{}
	for shard := 0; shard < 3; shard++ {
		var calls int
		items, err := e.ScoreShard(ctx, activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI,
			Shard: shard, NumShards: 3, Strategies: all, Seed: 1, Skip: func(id string) bool { return id == "p0003" }},
			func(done, total int) { calls++ })
		if err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		if calls == 0 {
			t.Errorf("shard %d: no progress reported", shard)
		}
		for _, it := range items {
			seen[it.ItemID]++
			var pos int
			if _, err := fmtSscanf(it.ItemID, &pos); err != nil || pos%3 != shard {
				t.Errorf("shard %d got item %s", shard, it.ItemID)
			}
			for _, s := range all {
				v, ok := it.Scores[s]
				if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("item %s: score %s = %v, %v", it.ItemID, s, v, ok)
				}
			}
			if it.Scores["entropy"] <= 0 || it.Scores["least-confidence"] <= 0 || it.Scores["least-confidence"] > 1 ||
				it.Scores["margin"] < 0 || it.Scores["margin"] > 1 {
				t.Errorf("item %s: implausible scores %v", it.ItemID, it.Scores)
			}
			if len(it.Suggestions) != 5 || it.Suggestions[0].Prob < it.Suggestions[4].Prob || it.Text == "" {
				t.Errorf("item %s: suggestions %+v text %q", it.ItemID, it.Suggestions, it.Text)
			}
		}
	}
	if len(seen) != 29 || seen["p0003"] != 0 {
		t.Errorf("scored %d distinct items (want 29, p0003 skipped): %v", len(seen), seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("item %s scored %d times", id, n)
		}
	}
}

// fmtSscanf parses "p%04d".
func fmtSscanf(id string, pos *int) (int, error) {
	n := 0
	for _, c := range strings.TrimPrefix(id, "p") {
		if c < '0' || c > '9' {
			return 0, errors.New("not a pool id")
		}
		n = n*10 + int(c-'0')
	}
	*pos = n
	return 1, nil
}

func TestScoreShardErrors(t *testing.T) {
	f := mlmenginetest.Start(t, 4, 0)
	e := newEngine(t, f)
	ctx := context.Background()
	if _, err := f.Store.PutBytes(ctx, "bad/pool.jsonl", []byte("{\"id\":\"x\",\"text\":\"no mask here\"}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.PutBytes(ctx, "bad/model/config.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for key, data := range map[string]string{
		"bad/target-json.jsonl":   "{\"text\":\"a [MASK] b\"}\n{not json\n",
		"bad/target-nomask.jsonl": "{\"text\":\"no blank\"}\n\n{\"id\":\"y\"}\n",
	} {
		if _, err := f.Store.PutBytes(ctx, key, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	target := func(uri string) activities.ScoreRequest {
		return activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, NumShards: 1, Strategies: []string{"target"}, TargetURI: uri}
	}
	domain := func(pool, uri string) activities.ScoreRequest {
		return activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: pool, NumShards: 1, Strategies: []string{"domain-random"}, TargetURI: uri}
	}
	tests := []struct {
		name string
		req  activities.ScoreRequest
		want error
	}{
		{"unknown strategy", activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, NumShards: 1, Strategies: []string{"psychic"}}, activities.ErrBadData},
		{"bad shard", activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, Shard: 2, NumShards: 2, Strategies: []string{"entropy"}}, activities.ErrBadData},
		{"missing pool", activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: "nope.jsonl", NumShards: 1, Strategies: []string{"entropy"}}, activities.ErrBadData},
		{"malformed pool", activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: "bad/pool.jsonl", NumShards: 1, Strategies: []string{"entropy"}}, activities.ErrBadData},
		{"missing model", activities.ScoreRequest{ModelURI: "models/none", PoolURI: mlmenginetest.PoolURI, NumShards: 1, Strategies: []string{"entropy"}}, activities.ErrBadCheckpoint},
		{"model without manifest", activities.ScoreRequest{ModelURI: "bad/model", PoolURI: mlmenginetest.PoolURI, NumShards: 1, Strategies: []string{"entropy"}}, activities.ErrBadCheckpoint},
		{"target without a sample", target(""), activities.ErrBadData},
		{"missing target sample", target("nope/target.jsonl"), activities.ErrBadData},
		{"malformed target sample", target("bad/target-json.jsonl"), activities.ErrBadData},
		{"target sample without blanks", target("bad/target-nomask.jsonl"), activities.ErrBadData},
		{"target draw without a sample", activities.ScoreRequest{ModelURI: mlmenginetest.ModelURI, PoolURI: mlmenginetest.PoolURI, NumShards: 1, Strategies: []string{"target-random"}}, activities.ErrBadData},
		{"domain draw without a sample", domain(mlmenginetest.PoolURI, ""), activities.ErrBadData},
		{"domain draw, target sample without blanks", domain(mlmenginetest.PoolURI, "bad/target-nomask.jsonl"), activities.ErrBadData},
		{"domain draw, malformed target sample", domain(mlmenginetest.PoolURI, "bad/target-json.jsonl"), activities.ErrBadData},
		{"domain draw, malformed pool", domain("bad/pool.jsonl", mlmenginetest.EvalURI), activities.ErrBadData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ScoreShard(ctx, tc.req, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestEvaluatePlumbing checks that the activity reports every metric in
// range and that chunking does not change it (the metrics' values are
// checked in mlm's TestEvaluateForced and TestEvaluateMatchesFillMask).
func TestEvaluatePlumbing(t *testing.T) {
	f := mlmenginetest.Start(t, 0, 20)
	e := newEngine(t, f)
	ctx := context.Background()
	var calls int
	met, err := e.Evaluate(ctx, mlmenginetest.ModelURI, mlmenginetest.EvalURI, func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"accuracy", "top1", "top5", "mrr"} {
		if v, ok := met[k]; !ok || v < 0 || v > 1 {
			t.Errorf("metric %s = %v, %v", k, v, ok)
		}
	}
	if met["nll"] <= 0 || met["answers"] != 20 || met["items"] != 20 || met["top5"] < met["top1"] {
		t.Errorf("metrics %v", met)
	}
	if calls != 3 { // chunks of 7
		t.Errorf("%d progress reports, want 3", calls)
	}
	// Chunking does not change the result.
	e2, err := mlmengine.New(mlmengine.Options{Store: f.Store, CacheDir: t.TempDir(), Device: "cpu", Threads: 1, ChunkSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	met2, err := e2.Evaluate(ctx, mlmenginetest.ModelURI, mlmenginetest.EvalURI, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range met {
		if math.Abs(met2[k]-v) > 1e-6 {
			t.Errorf("metric %s: %v in chunks, %v at once", k, v, met2[k])
		}
	}

	if _, err := f.Store.PutBytes(ctx, "bad/eval.jsonl", []byte("{\"id\":\"x\",\"text\":\"a [MASK] b\"}\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model, eval string
		want        error
	}{
		{mlmenginetest.ModelURI, "missing.jsonl", activities.ErrBadData},
		{mlmenginetest.ModelURI, "bad/eval.jsonl", activities.ErrBadData},
		{"models/none", mlmenginetest.EvalURI, activities.ErrBadCheckpoint},
	} {
		if _, err := e.Evaluate(ctx, tc.model, tc.eval, nil); !errors.Is(err, tc.want) {
			t.Errorf("Evaluate(%s, %s) error %v, want %v", tc.model, tc.eval, err, tc.want)
		}
	}
}

func trainExamples(f *mlmenginetest.Fixture, n int) []activities.Example {
	var out []activities.Example
	for _, it := range f.PoolItems[:n] {
		out = append(out, activities.Example{ItemID: it.ID, Text: it.Text, Label: f.Gold[it.ID]})
	}
	return out
}

// TestFineTuneResumes interrupts a fine-tune after its first uploaded
// checkpoint, resumes it as a retried activity would (from the last
// progress report) with a new engine, and checks that it continued from
// that step, ends like an uninterrupted run, uploads a loadable model, and
// that a repeated call returns the recorded result without training.
func TestFineTuneResumes(t *testing.T) {
	f := mlmenginetest.Start(t, 16, 0)
	ctx := context.Background()
	req := activities.TrainRequest{BaseModelURI: mlmenginetest.ModelURI, Examples: trainExamples(f, 16), OutputPrefix: "runs/r/rounds/0001/train",
		Settings: workflows.FineTuneSettings{MaxSteps: 12, BatchSize: 4, LearningRate: 1e-3, Seed: 3, CheckpointEvery: 3}}

	straight, err := newEngine(t, f).FineTune(ctx, activities.TrainRequest{BaseModelURI: req.BaseModelURI, Examples: req.Examples,
		OutputPrefix: "runs/straight/train", Settings: req.Settings}, nil)
	if err != nil {
		t.Fatalf("uninterrupted fine-tune: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	var last activities.TrainProgress
	_, err = newEngine(t, f).FineTune(cctx, req, func(p activities.TrainProgress) {
		last = p
		if p.CheckpointStep > 0 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fine-tune: %v", err)
	}
	if last.CheckpointStep != 3 || last.CheckpointURI != mlmengine.CheckpointURI(req.OutputPrefix, 3) || last.Step != 4 {
		t.Fatalf("last progress %+v, want checkpoint of step 3 reported at step 4", last)
	}

	resumed := req
	resumed.Resume = &last
	var steps []int
	res, err := newEngine(t, f).FineTune(ctx, resumed, func(p activities.TrainProgress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatalf("resumed fine-tune: %v", err)
	}
	if res.ResumedFrom != 3 || res.Steps != 12 || len(steps) != 9 || steps[0] != 4 {
		t.Fatalf("resumed result %+v, steps %v; want resumed from 3, steps 4..12", res, steps)
	}
	if math.Abs(res.FinalLoss-straight.FinalLoss) > 1e-4 {
		t.Errorf("resumed final loss %v, uninterrupted %v", res.FinalLoss, straight.FinalLoss)
	}
	if res.CheckpointURI != req.OutputPrefix+"/"+mlmengine.ModelDir {
		t.Errorf("model URI %s", res.CheckpointURI)
	}
	m, err := newEngine(t, f).LoadModel(ctx, res.CheckpointURI)
	if err != nil {
		t.Fatalf("load fine-tuned model: %v", err)
	}
	m.Close()
	if objs, err := f.Store.List(ctx, req.OutputPrefix+"/"+mlmengine.CheckpointsDir+"/"); err != nil || len(objs) != 0 {
		t.Errorf("intermediate checkpoints left: %d, %v", len(objs), err)
	}

	calls := 0
	again, err := newEngine(t, f).FineTune(ctx, req, func(activities.TrainProgress) { calls++ })
	if err != nil || calls != 0 || again != res {
		t.Errorf("repeated fine-tune: %+v, %v, %d progress reports; want %+v without training", again, err, calls, res)
	}
}

func TestFineTuneBadInput(t *testing.T) {
	f := mlmenginetest.Start(t, 4, 0)
	e := newEngine(t, f)
	ctx := context.Background()
	good := trainExamples(f, 2)
	tests := []struct {
		name string
		req  activities.TrainRequest
		want error
	}{
		{"no examples", activities.TrainRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "o"}, activities.ErrBadData},
		{"no mask", activities.TrainRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "o",
			Examples: []activities.Example{{ItemID: "x", Text: "no blank", Label: "a"}}}, activities.ErrBadData},
		{"answer count", activities.TrainRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "o",
			Examples: []activities.Example{{ItemID: "x", Text: "a [MASK] b [MASK]", Label: "one"}}}, activities.ErrBadData},
		{"missing base", activities.TrainRequest{BaseModelURI: "models/none", OutputPrefix: "o", Examples: good}, activities.ErrBadCheckpoint},
		{"missing resume", activities.TrainRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "o", Examples: good,
			Resume: &activities.TrainProgress{CheckpointURI: "o/checkpoints/step-00000009", CheckpointStep: 9}}, activities.ErrBadCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.FineTune(ctx, tc.req, nil); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestFineTuneMultiMask checks that an item with two blanks trains on both
// answers, each at its own mask: the activity's fine-tune ends with the
// same loss as mlm.FineTune given the answers in order, and a different one
// from the answers swapped or from the first blank alone, so an expansion
// that dropped, merged or reordered the answers fails.
func TestFineTuneMultiMask(t *testing.T) {
	f := mlmenginetest.Start(t, 0, 0)
	e := newEngine(t, f)
	ctx := context.Background()
	const text = "the cat [MASK] the red [MASK] ."
	settings := workflows.FineTuneSettings{MaxSteps: 2, BatchSize: 1}
	res, err := e.FineTune(ctx, activities.TrainRequest{BaseModelURI: mlmenginetest.ModelURI, OutputPrefix: "mm",
		Examples: []activities.Example{{ItemID: "x", Text: text, Label: "sees | book"}}, Settings: settings}, nil)
	if err != nil || res.Steps != 2 {
		t.Fatalf("%+v, %v", res, err)
	}
	direct := func(ex mlm.Example) mlm.FineTuneResult {
		t.Helper()
		m, err := e.LoadModel(ctx, mlmenginetest.ModelURI)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		// The activity fills the recipe's defaults (learning rate, warm-up).
		s := settings.WithDefaults()
		out, err := m.FineTune(ctx, []mlm.Example{ex}, nil, mlm.FineTuneOptions{MaxSteps: s.MaxSteps, BatchSize: s.BatchSize,
			LR: s.LearningRate, WarmupRatio: s.WarmupRatio}, nil)
		if err != nil || out.Trained != 1 || len(out.Skipped) != 0 {
			t.Fatalf("direct fine-tune on %+v: %+v, %v", ex, out, err)
		}
		return out
	}
	want := direct(mlm.Example{Text: text, Answers: []string{"sees", "book"}})
	if math.Abs(res.FinalLoss-want.FinalLoss) > 1e-6 {
		t.Errorf("activity's final loss %.7g, mlm's on answers [sees book] %.7g", res.FinalLoss, want.FinalLoss)
	}
	for _, wrong := range []mlm.Example{
		{Text: text, Answers: []string{"book", "sees"}},
		{Text: "the cat [MASK] the red book .", Answers: []string{"sees"}},
	} {
		if d := math.Abs(direct(wrong).FinalLoss - want.FinalLoss); d < 1e-3 {
			t.Errorf("training on %+v ends within %g of the right expansion; the test could not tell them apart", wrong, d)
		}
	}
}
