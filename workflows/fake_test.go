package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// lab is an in-memory stand-in for the model engine and the store: the
// activities' behaviour the workflow depends on (exclusion of labelled
// items, label-set growth, metrics per model), recorded for assertions.
type lab struct {
	mu        sync.Mutex
	poolSize  int
	labelSets map[string][]string
	scored    []ScoreShardInput
	persisted []PersistLabelsInput
	trained   []FineTuneInput
	evaluated []EvaluateInput
	uploads   []UploadCheckpointInput
	// accuracy of a checkpoint by its URI (default: base 0.5, round N 0.5+0.1N).
	accuracy map[string]float64
	// hooks run inside the named activity (used to deliver signals while the
	// workflow is busy).
	onFineTune, onUpload, onPersist func()
	// promotedElsewhere makes the promotion of the checkpoint named by the
	// key lose to another workflow that promoted the model of the value.
	promotedElsewhere map[string]string
	// resolved is what ResolveRun answers when set.
	resolved *ResolveRunOutput
	// resolveIn records ResolveRun's inputs.
	resolveIn []ResolveRunInput
}

func newLab(poolSize int) *lab {
	return &lab{poolSize: poolSize, labelSets: map[string][]string{}, accuracy: map[string]float64{}}
}

func itemID(i int) string { return fmt.Sprintf("it-%03d", i) }

func (l *lab) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(ActiveLearning, workflow.RegisterOptions{Name: ActiveLearningName})
	env.RegisterWorkflowWithOptions(Retrain, workflow.RegisterOptions{Name: RetrainName})
	env.RegisterActivityWithOptions(l.ScoreShard, activity.RegisterOptions{Name: ActivityScoreShard})
	env.RegisterActivityWithOptions(l.PersistLabels, activity.RegisterOptions{Name: ActivityPersistLabels})
	env.RegisterActivityWithOptions(l.FineTune, activity.RegisterOptions{Name: ActivityFineTune})
	env.RegisterActivityWithOptions(l.Evaluate, activity.RegisterOptions{Name: ActivityEvaluate})
	env.RegisterActivityWithOptions(l.UploadCheckpoint, activity.RegisterOptions{Name: ActivityUploadCheckpoint})
	env.RegisterActivityWithOptions(l.ResolveRun, activity.RegisterOptions{Name: ActivityResolveRun})
}

func (l *lab) ScoreShard(ctx context.Context, in ScoreShardInput) (ScoreShardOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.scored = append(l.scored, in)
	skip := map[string]bool{}
	for _, id := range l.labelSets[in.LabelSetURI] {
		skip[id] = true
	}
	for _, id := range in.Exclude {
		skip[id] = true
	}
	out := ScoreShardOutput{Shard: in.Shard, ScoresKey: in.ScoresKey, Top: map[string][]Candidate{}}
	for _, strat := range in.Strategies {
		var cands []Candidate
		for i := in.Shard; i < l.poolSize; i += in.NumShards {
			id := itemID(i)
			if skip[id] {
				continue
			}
			score := float64((i*37+len(strat)*11)%101) / 100
			cands = append(cands, Candidate{ItemID: id, Text: "the [MASK] of " + id, Score: score, Suggestions: []Suggestion{
				{Token: "cat", Prob: 0.4}, {Token: "dog", Prob: 0.2}, {Token: "cow", Prob: 0.1}, {Token: "hen", Prob: 0.1}, {Token: "owl", Prob: 0.1}, {Token: "elk", Prob: 0.05},
			}})
		}
		sort.Slice(cands, func(a, b int) bool {
			if cands[a].Score != cands[b].Score {
				return cands[a].Score > cands[b].Score
			}
			return cands[a].ItemID < cands[b].ItemID
		})
		out.Scored = len(cands)
		if len(cands) > in.TopM {
			cands = cands[:in.TopM]
		}
		out.Top[strat] = cands
	}
	return out, nil
}

func (l *lab) PersistLabels(ctx context.Context, in PersistLabelsInput) (PersistLabelsOutput, error) {
	l.mu.Lock()
	hook := l.onPersist
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.persisted = append(l.persisted, in)
	set := append([]string(nil), l.labelSets[in.PrevLabelSet]...)
	for _, d := range in.Decisions {
		if d.Label != "" || d.Skipped {
			set = append(set, d.ItemID)
		}
	}
	uri := fmt.Sprintf("mem://labels/upto-%04d", in.Round)
	l.labelSets[uri] = set
	return PersistLabelsOutput{LabelSetURI: uri, Labeled: len(set)}, nil
}

func (l *lab) FineTune(ctx context.Context, in FineTuneInput) (FineTuneOutput, error) {
	l.mu.Lock()
	l.trained = append(l.trained, in)
	hook := l.onFineTune
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	return FineTuneOutput{CheckpointURI: fmt.Sprintf("mem://train/%04d", in.Round), Steps: 10, FinalLoss: 1.5, Examples: 3}, nil
}

func (l *lab) Evaluate(ctx context.Context, in EvaluateInput) (EvaluateOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evaluated = append(l.evaluated, in)
	acc, ok := l.accuracy[in.ModelURI]
	if !ok {
		var round int
		if _, err := fmt.Sscanf(in.ModelURI, "mem://train/%d", &round); err == nil {
			acc = 0.5 + 0.1*float64(round)
		} else {
			acc = 0.5
		}
	}
	out := EvaluateOutput{Metrics: map[string]float64{"accuracy": acc}}
	if in.ForgettingEvalURI != "" {
		out.Forgetting = map[string]float64{"accuracy": 0.9}
	}
	return out, nil
}

func (l *lab) UploadCheckpoint(ctx context.Context, in UploadCheckpointInput) (UploadCheckpointOutput, error) {
	l.mu.Lock()
	l.uploads = append(l.uploads, in)
	hook := l.onUpload
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	l.mu.Lock()
	other := l.promotedElsewhere[in.Name]
	l.mu.Unlock()
	if in.Promote && in.CheckCurrent && other != "" {
		return UploadCheckpointOutput{ModelURI: "mem://models/" + in.Name, Conflict: "current.json names " + other + ": another workflow promoted it",
			CurrentModelURI: other}, nil
	}
	return UploadCheckpointOutput{ModelURI: "mem://models/" + in.Name, Promoted: in.Promote}, nil
}

func (l *lab) ResolveRun(ctx context.Context, in ResolveRunInput) (ResolveRunOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resolveIn = append(l.resolveIn, in)
	if l.resolved != nil {
		return *l.resolved, nil
	}
	last := ""
	for _, p := range l.persisted {
		last = fmt.Sprintf("mem://labels/upto-%04d", p.Round)
	}
	if last == "" {
		return ResolveRunOutput{}, nil
	}
	return ResolveRunOutput{ModelURI: "mem://models/round-0001", LabelSetURI: last}, nil
}

// chain runs ActiveLearning, following continue-as-new, until it completes;
// setup installs each run's simulated annotators.
func chain(t *testing.T, cfg RunConfig, l *lab, setup func(env *testsuite.TestWorkflowEnvironment, run int)) (*Result, int) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	for run := 0; run < 20; run++ {
		env := s.NewTestWorkflowEnvironment()
		l.register(env)
		if setup != nil {
			setup(env, run)
		}
		env.ExecuteWorkflow(ActiveLearningName, cfg)
		if !env.IsWorkflowCompleted() {
			t.Fatalf("run %d did not complete", run)
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			var next RunConfig
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				t.Fatalf("decode continue-as-new input: %v", err)
			}
			if next.Resume == nil {
				t.Fatalf("continue-as-new without carried state")
			}
			cfg = next
			continue
		}
		if err != nil {
			t.Fatalf("run %d failed: %v", run, err)
		}
		var res Result
		if err := env.GetWorkflowResult(&res); err != nil {
			t.Fatalf("decode result: %v", err)
		}
		return &res, run + 1
	}
	t.Fatal("too many runs")
	return nil, 0
}

func batchOf(t *testing.T, env *testsuite.TestWorkflowEnvironment) BatchView {
	t.Helper()
	v, err := env.QueryWorkflow(QueryBatch)
	if err != nil {
		t.Fatalf("query %s: %v", QueryBatch, err)
	}
	var b BatchView
	if err := v.Get(&b); err != nil {
		t.Fatalf("decode batch: %v", err)
	}
	return b
}

func statusOf(t *testing.T, env *testsuite.TestWorkflowEnvironment) Status {
	t.Helper()
	v, err := env.QueryWorkflow(QueryStatus)
	if err != nil {
		t.Fatalf("query %s: %v", QueryStatus, err)
	}
	var s Status
	if err := v.Get(&s); err != nil {
		t.Fatalf("decode status: %v", err)
	}
	return s
}

// outcome is what an Update eventually got (the test environment answers
// updates asynchronously, when the workflow next runs).
type outcome struct {
	done     bool
	rejected error
	failed   error
}

// submit sends an Update; its outcome fills in later.
func submit(env *testsuite.TestWorkflowEnvironment, s LabelSubmission) *outcome {
	o := &outcome{}
	env.UpdateWorkflow(UpdateSubmitLabels, "", &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { o.rejected, o.done = err, true },
		OnComplete: func(_ any, err error) { o.failed, o.done = err, true },
	}, s)
	return o
}

// mustAccept checks, at the end of a test, that every outcome was accepted.
func mustAccept(t *testing.T, outs []*outcome) {
	t.Helper()
	for i, o := range outs {
		if !o.done || o.rejected != nil || o.failed != nil {
			t.Errorf("update %d: done=%v rejected=%v failed=%v", i, o.done, o.rejected, o.failed)
		}
	}
}

// answerAll makes each annotator answer every item of the open batch.
func answerAll(t *testing.T, env *testsuite.TestWorkflowEnvironment, outs *[]*outcome, annotators ...string) {
	t.Helper()
	b := batchOf(t, env)
	for _, a := range annotators {
		var answers []Answer
		for _, it := range b.Items {
			answers = append(answers, Answer{ItemID: it.ItemID, Answer: it.Suggestions[0].Token})
		}
		*outs = append(*outs, submit(env, LabelSubmission{Round: b.Round, Annotator: a, Answers: answers}))
	}
}

func baseConfig() RunConfig {
	return RunConfig{
		RunID: "run-1", Dataset: "wiki-cloze", PoolURI: "mem://pool", PoolShards: 3, EvalURI: "mem://eval",
		ModelURI: "mem://base", Strategy: "entropy", BatchSize: 3, Quorum: 2,
		RoundDeadline: Duration(72 * time.Hour), MinLabels: 2,
		Budget: Budget{MaxRounds: 1},
	}
}
