package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/clozeloop/clozeloop/workflows"
)

type countingScorer struct {
	mu    sync.Mutex
	calls int
	n     int
}

func (s *countingScorer) ScoreShard(ctx context.Context, req ScoreRequest, progress func(done, total int)) ([]ScoredItem, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	var out []ScoredItem
	for i := req.Shard; i < s.n; i += req.NumShards {
		id := fmt.Sprintf("it-%02d", i)
		if req.Skip(id) {
			continue
		}
		out = append(out, ScoredItem{ItemID: id, Text: "a [MASK] " + id, Scores: map[string]float64{"entropy": float64(i)},
			Suggestions: []workflows.Suggestion{{Token: "a"}, {Token: "b"}, {Token: "c"}, {Token: "d"}, {Token: "e"}, {Token: "f"}}})
		progress(len(out), -1)
	}
	return out, nil
}

// resumingTrainer saves a checkpoint every 10 steps and can die at a step.
type resumingTrainer struct {
	dieAt    int
	started  []int
	badCkpt  bool
	blobs    Blobs
	examples int
}

func (tr *resumingTrainer) FineTune(ctx context.Context, req TrainRequest, progress func(TrainProgress)) (TrainResult, error) {
	if tr.badCkpt {
		return TrainResult{}, fmt.Errorf("load %s: %w: missing weights", req.BaseModelURI, ErrBadCheckpoint)
	}
	start := 0
	if req.Resume != nil {
		start = req.Resume.CheckpointStep
	}
	tr.started = append(tr.started, start)
	tr.examples = len(req.Examples)
	for step := start + 1; step <= 30; step++ {
		p := TrainProgress{Step: step, TotalSteps: 30, Loss: 3 - float64(step)/10}
		if step%10 == 0 {
			p.CheckpointURI = fmt.Sprintf("%s/step-%d", req.OutputPrefix, step)
			p.CheckpointStep = step
		}
		progress(p)
		if step == tr.dieAt {
			tr.dieAt = 0
			return TrainResult{}, errors.New("worker lost the GPU")
		}
	}
	final := req.OutputPrefix + "/final"
	if err := tr.blobs.Put(ctx, final+"/model.safetensors", []byte("weights")); err != nil {
		return TrainResult{}, err
	}
	return TrainResult{CheckpointURI: final, Steps: 30, FinalLoss: 0}, nil
}

func newEnv(a *Activities) *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	for name, fn := range map[string]any{
		workflows.ActivityScoreShard: a.ScoreShard, workflows.ActivityPersistLabels: a.PersistLabels,
		workflows.ActivityFineTune: a.FineTune, workflows.ActivityEvaluate: a.Evaluate,
		workflows.ActivityUploadCheckpoint: a.UploadCheckpoint, workflows.ActivityResolveRun: a.ResolveRun,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	return env
}

func persist(t *testing.T, env *testsuite.TestActivityEnvironment, in workflows.PersistLabelsInput) workflows.PersistLabelsOutput {
	t.Helper()
	v, err := env.ExecuteActivity(workflows.ActivityPersistLabels, in)
	if err != nil {
		t.Fatalf("persist round %d: %v", in.Round, err)
	}
	var out workflows.PersistLabelsOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPersistLabelsIdempotent(t *testing.T) {
	blobs := &MemBlobs{}
	env := newEnv(&Activities{Blobs: blobs})
	r1 := workflows.PersistLabelsInput{RunID: "r", Round: 1, OutputPrefix: "runs/r", Decisions: []workflows.LabelDecision{
		{ItemID: "a", Text: "x [MASK]", Label: "cat"}, {ItemID: "b", Skipped: true}, {ItemID: "c"},
	}, Raw: []workflows.RawAnswer{{ItemID: "a", Annotator: "p", Answer: "cat", Counted: true}}}
	first := persist(t, env, r1)
	snapshot, _ := blobs.Get(context.Background(), "runs/r/labels/round-0001.json")
	again := persist(t, env, r1)
	after, _ := blobs.Get(context.Background(), "runs/r/labels/round-0001.json")
	if first != again || !bytes.Equal(snapshot, after) || first.Labeled != 1 {
		t.Fatalf("retry changed the result: %+v vs %+v", first, again)
	}
	r2 := workflows.PersistLabelsInput{RunID: "r", Round: 2, OutputPrefix: "runs/r", PrevLabelSet: first.LabelSetURI,
		Decisions: []workflows.LabelDecision{{ItemID: "d", Text: "y [MASK]", Label: "dog"}}}
	second := persist(t, env, r2)
	second2 := persist(t, env, r2)
	if second != second2 || second.Labeled != 2 {
		t.Fatalf("round 2: %+v then %+v, want 2 labelled both times", second, second2)
	}
	set, err := LoadLabelSet(context.Background(), blobs, second.LabelSetURI)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Examples) != 2 || !set.Done["b"] || set.Done["c"] {
		t.Fatalf("label set = %+v", set)
	}
}

func TestScoreShardReusesFinishedShard(t *testing.T) {
	blobs := &MemBlobs{}
	sc := &countingScorer{n: 20}
	env := newEnv(&Activities{Blobs: blobs, Scorer: sc})
	lab := persist(t, env, workflows.PersistLabelsInput{RunID: "r", Round: 1, OutputPrefix: "runs/r",
		Decisions: []workflows.LabelDecision{{ItemID: "it-18", Label: "x"}}})
	in := workflows.ScoreShardInput{Shard: 0, NumShards: 2, Strategies: []string{"entropy"}, TopM: 3,
		LabelSetURI: lab.LabelSetURI, Exclude: []string{"it-16"}, ScoresKey: "runs/r/rounds/0002/scores/shard-0.jsonl"}
	var outs [2]workflows.ScoreShardOutput
	for i := range outs {
		v, err := env.ExecuteActivity(workflows.ActivityScoreShard, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Get(&outs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if sc.calls != 1 {
		t.Errorf("scorer called %d times, want 1 (the second run reuses the shard's scores)", sc.calls)
	}
	got := []string{}
	for _, c := range outs[1].Top["entropy"] {
		got = append(got, c.ItemID)
		if len(c.Suggestions) != 5 {
			t.Errorf("%d suggestions, want 5", len(c.Suggestions))
		}
	}
	if strings.Join(got, ",") != "it-14,it-12,it-10" || outs[0].Scored != 8 {
		t.Errorf("top = %v scored = %d", got, outs[0].Scored)
	}
}

func TestFineTuneResumesFromHeartbeat(t *testing.T) {
	blobs := &MemBlobs{}
	tr := &resumingTrainer{dieAt: 25, blobs: blobs}
	a := &Activities{Blobs: blobs, Trainer: tr}
	env := newEnv(a)
	lab := persist(t, env, workflows.PersistLabelsInput{RunID: "r", Round: 1, OutputPrefix: "runs/r",
		Decisions: []workflows.LabelDecision{{ItemID: "a", Text: "t", Label: "x"}}})
	in := workflows.FineTuneInput{Round: 1, BaseModelURI: "base", LabelSetURI: lab.LabelSetURI, OutputPrefix: "runs/r/train"}
	if _, err := env.ExecuteActivity(workflows.ActivityFineTune, in); err == nil {
		t.Fatal("first attempt should fail")
	}
	// What the server hands the retry: the last heartbeat of the dead attempt
	// (step 25, last checkpoint at step 20).
	env.SetHeartbeatDetails(TrainProgress{Step: 25, TotalSteps: 30, CheckpointURI: "runs/r/train/step-20", CheckpointStep: 20})
	v, err := env.ExecuteActivity(workflows.ActivityFineTune, in)
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.FineTuneOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	if out.ResumedFromStep != 20 || tr.started[1] != 20 || out.Steps != 30 || out.Examples != 1 {
		t.Fatalf("out = %+v, started = %v", out, tr.started)
	}
}

func TestNonRetryableErrors(t *testing.T) {
	blobs := &MemBlobs{}
	env := newEnv(&Activities{Blobs: blobs, Trainer: &resumingTrainer{badCkpt: true, blobs: blobs}})
	lab := persist(t, env, workflows.PersistLabelsInput{RunID: "r", Round: 1, OutputPrefix: "runs/r",
		Decisions: []workflows.LabelDecision{{ItemID: "a", Label: "x"}}})
	empty := persist(t, env, workflows.PersistLabelsInput{RunID: "e", Round: 1, OutputPrefix: "runs/e",
		Decisions: []workflows.LabelDecision{{ItemID: "a"}}})
	tests := []struct {
		name     string
		activity string
		in       any
		want     string
	}{
		{"bad checkpoint", workflows.ActivityFineTune, workflows.FineTuneInput{BaseModelURI: "base", LabelSetURI: lab.LabelSetURI}, "bad checkpoint"},
		{"missing label set", workflows.ActivityFineTune, workflows.FineTuneInput{LabelSetURI: "nope"}, "bad data"},
		{"no examples", workflows.ActivityFineTune, workflows.FineTuneInput{LabelSetURI: empty.LabelSetURI}, "no labelled example"},
		{"empty checkpoint", workflows.ActivityUploadCheckpoint, workflows.UploadCheckpointInput{CheckpointURI: "ckpt/none", OutputPrefix: "runs/r", Name: "round-0001"}, "no files under"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.ExecuteActivity(tc.activity, tc.in)
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a non-retryable error containing %q", err, tc.want)
			}
		})
	}
}

func TestUploadCheckpointIdempotent(t *testing.T) {
	ctx := context.Background()
	blobs := &MemBlobs{}
	for _, f := range []string{"config.json", "model.safetensors"} {
		_ = blobs.Put(ctx, "tmp/ckpt/"+f, []byte(f))
	}
	env := newEnv(&Activities{Blobs: blobs})
	in := workflows.UploadCheckpointInput{CheckpointURI: "tmp/ckpt", OutputPrefix: "runs/r", Name: "round-0001", Promote: true}
	for i := 0; i < 2; i++ {
		if _, err := env.ExecuteActivity(workflows.ActivityUploadCheckpoint, in); err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := blobs.List(ctx, "runs/r/models/")
	want := "runs/r/models/current.json,runs/r/models/round-0001/config.json,runs/r/models/round-0001/model.safetensors"
	if strings.Join(keys, ",") != want {
		t.Fatalf("keys %v", keys)
	}
	v, err := env.ExecuteActivity(workflows.ActivityResolveRun, workflows.ResolveRunInput{OutputPrefix: "runs/r"})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.ResolveRunOutput
	_ = v.Get(&res)
	if res.ModelURI != "runs/r/models/round-0001" || res.LabelSetURI != "" {
		t.Fatalf("resolve = %+v", res)
	}
}

// flakyBlobs fails every Get of a key under failPrefix with a transient
// error (the store did not answer) while failing is set.
type flakyBlobs struct {
	*MemBlobs
	failPrefix string
	failing    bool
}

func (f *flakyBlobs) Get(ctx context.Context, key string) ([]byte, error) {
	if f.failing && strings.HasPrefix(key, f.failPrefix) {
		return nil, fmt.Errorf("get %s: dial tcp 127.0.0.1:9000: connection refused", key)
	}
	return f.MemBlobs.Get(ctx, key)
}

// TestFineTuneLabelSetErrors: a transient store error while loading the
// label set is retried (not bad data); a missing or corrupt label set is
// final.
func TestFineTuneLabelSetErrors(t *testing.T) {
	blobs := &flakyBlobs{MemBlobs: &MemBlobs{}, failPrefix: "runs/r/labels/"}
	tr := &resumingTrainer{blobs: blobs}
	env := newEnv(&Activities{Blobs: blobs, Trainer: tr})
	lab := persist(t, env, workflows.PersistLabelsInput{RunID: "r", Round: 1, OutputPrefix: "runs/r",
		Decisions: []workflows.LabelDecision{{ItemID: "a", Text: "a [MASK]", Labels: []string{"x"}, Label: "x"}}})
	if err := blobs.Put(context.Background(), "runs/bad/labels/set-0001.json", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		uri       string
		failing   bool
		retryable bool
		want      string
	}{
		{"store unavailable", lab.LabelSetURI, true, true, "connection refused"},
		{"missing label set", "runs/r/labels/set-0009.json", false, false, "bad data"},
		{"corrupt label set", "runs/bad/labels/set-0001.json", false, false, "bad data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blobs.failing = tc.failing
			_, err := env.ExecuteActivity(workflows.ActivityFineTune, workflows.FineTuneInput{BaseModelURI: "base", LabelSetURI: tc.uri, OutputPrefix: "runs/r/train"})
			var appErr *temporal.ApplicationError
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if nonRetryable := errors.As(err, &appErr) && appErr.NonRetryable(); nonRetryable == tc.retryable {
				t.Fatalf("error %v: non-retryable=%v, want retryable=%v", err, nonRetryable, tc.retryable)
			}
		})
	}
	// Once the store answers again, the same input trains.
	blobs.failing = false
	if _, err := env.ExecuteActivity(workflows.ActivityFineTune, workflows.FineTuneInput{BaseModelURI: "base", LabelSetURI: lab.LabelSetURI, OutputPrefix: "runs/r/train"}); err != nil {
		t.Fatalf("after the store came back: %v", err)
	}
}

// TestLabelSetReadsListsAndOldFiles: labels persisted as lists load as
// lists; a round file written before lists (joined Label only) loads with
// Answers nil, for the trainer to split.
func TestLabelSetReadsListsAndOldFiles(t *testing.T) {
	ctx := context.Background()
	blobs := &MemBlobs{}
	env := newEnv(&Activities{Blobs: blobs})
	old := `{"run_id":"r","round":1,"decisions":[{"item_id":"o","text":"[MASK] and [MASK]","label":"salt | pepper","votes":{"salt | pepper":2},"answers":2}],"raw":[]}`
	if err := blobs.Put(ctx, "runs/r/labels/round-0001.json", []byte(old)); err != nil {
		t.Fatal(err)
	}
	if err := blobs.Put(ctx, "runs/r/labels/set-0001.json", []byte(`{"run_id":"r","round":1,"rounds":["runs/r/labels/round-0001.json"]}`)); err != nil {
		t.Fatal(err)
	}
	agr := 0.5
	out := persist(t, env, workflows.PersistLabelsInput{RunID: "r", Round: 2, OutputPrefix: "runs/r", PrevLabelSet: "runs/r/labels/set-0001.json",
		Decisions: []workflows.LabelDecision{{ItemID: "n", Text: "[MASK] or [MASK]", Labels: []string{"cat", "a | b"}, Label: "cat | a | b"}},
		Dropped:   7, Agreement: &workflows.Agreement{Items: 1, Answers: 2, Pairs: 1, PairwiseAgreement: 1, Alpha: &agr}})
	set, err := LoadLabelSet(ctx, blobs, out.LabelSetURI)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Examples) != 2 {
		t.Fatalf("examples %+v", set.Examples)
	}
	if ex := set.Examples[0]; ex.Answers != nil || ex.Label != "salt | pepper" {
		t.Errorf("old example %+v, want the joined label and no list", ex)
	}
	if ex := set.Examples[1]; strings.Join(ex.Answers, ",") != "cat,a | b" {
		t.Errorf("new example %+v, want the list as persisted", ex)
	}
	var r RoundLabels
	if err := getJSON(ctx, blobs, "runs/r/labels/round-0002.json", &r); err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 7 || r.Agreement == nil || *r.Agreement.Alpha != 0.5 {
		t.Errorf("round file dropped=%d agreement=%+v", r.Dropped, r.Agreement)
	}
}
