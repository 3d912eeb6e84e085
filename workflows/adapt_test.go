package workflows

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// adaptFake stands in for the Adapt activity and records its calls.
type adaptFake struct {
	l   *lab
	mu  sync.Mutex
	in  []AdaptInput
	q   []string // the task queue of each call
	pre []int    // shard scorings done before each call
	err error    // returned instead of a result when set
}

func (a *adaptFake) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivityWithOptions(a.Adapt, activity.RegisterOptions{Name: ActivityAdapt})
}

func (a *adaptFake) Adapt(ctx context.Context, in AdaptInput) (AdaptOutput, error) {
	a.l.mu.Lock()
	scored := len(a.l.scored)
	a.l.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.in = append(a.in, in)
	a.q = append(a.q, activity.GetInfo(ctx).TaskQueue)
	a.pre = append(a.pre, scored)
	if a.err != nil {
		return AdaptOutput{}, a.err
	}
	return AdaptOutput{CheckpointURI: in.OutputPrefix + "/model", Steps: in.Settings.Steps, FinalLoss: 2.5, Texts: 30, Sequences: 30}, nil
}

func adaptConfig() RunConfig {
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 2
	cfg.Quorum = 1
	cfg.ForgettingEvalURI = "mem://general"
	cfg.Adapt = &AdaptSettings{Steps: 500, LearningRate: 5e-4, BatchSize: 64, SeqLen: 64, MaskProb: 0.15, Seed: 1}
	return cfg
}

// TestAdaptationPhase runs a two-round run with the adaptation phase: it
// runs once, on the GPU queue, before round 1 scores the pool; its model is
// what round 1 scores and fine-tunes from and the current model round 1's
// candidate is compared with; it does not run again after continue-as-new.
func TestAdaptationPhase(t *testing.T) {
	l := newLab(20)
	l.accuracy["runs/run-1/adapt/model"] = 0.55
	a := &adaptFake{l: l}
	cfg := adaptConfig()
	var outs []*outcome
	res, runs := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		a.register(env)
		env.RegisterDelayedCallback(func() { answerAll(t, env, &outs, "ann-a") }, time.Hour)
	})
	mustAccept(t, outs)
	if runs != 2 || res.Rounds != 2 {
		t.Fatalf("runs=%d rounds=%d, want 2 and 2", runs, res.Rounds)
	}
	if len(a.in) != 1 {
		t.Fatalf("%d adapt calls, want 1 (first run only)", len(a.in))
	}
	want := AdaptInput{RunID: "run-1", BaseModelURI: "mem://base", PoolURI: "mem://pool", OutputPrefix: "runs/run-1/adapt", Settings: *cfg.Adapt}
	if !reflect.DeepEqual(a.in[0], want) {
		t.Errorf("adapt input %+v, want %+v (no target sample without target_share)", a.in[0], want)
	}
	if a.q[0] != GPUTaskQueue || a.pre[0] != 0 {
		t.Errorf("adapt ran on %q after %d shard scorings, want %q before any", a.q[0], a.pre[0], GPUTaskQueue)
	}
	if up := l.uploads[0]; up.Name != "adapted" || !up.Promote || up.CheckpointURI != "runs/run-1/adapt/model" {
		t.Errorf("first upload %+v, want the adapted model, promoted", up)
	}
	const adapted = "mem://models/adapted"
	for _, s := range l.scored[:cfg.PoolShards] {
		if s.ModelURI != adapted {
			t.Errorf("round 1 shard %d scored with %s, want %s", s.Shard, s.ModelURI, adapted)
		}
	}
	if l.trained[0].BaseModelURI != adapted {
		t.Errorf("round 1 fine-tuned from %s, want %s", l.trained[0].BaseModelURI, adapted)
	}
	// Evaluated: the starting and the adapted model once each (in the
	// phase), then one candidate per round; never the current model again.
	var evaluated []string
	for _, e := range l.evaluated {
		evaluated = append(evaluated, e.ModelURI)
		if e.ForgettingEvalURI != "mem://general" {
			t.Errorf("evaluation without the forgetting set: %+v", e)
		}
	}
	if len(evaluated) != 4 || evaluated[2] != "mem://train/0001" || evaluated[3] != "mem://train/0002" ||
		!(evaluated[0] == "mem://base" && evaluated[1] == "runs/run-1/adapt/model" || evaluated[1] == "mem://base" && evaluated[0] == "runs/run-1/adapt/model") {
		t.Errorf("evaluated %v, want the base and the adapted model, then the two candidates", evaluated)
	}
	ad := res.Adaptation
	if ad == nil {
		t.Fatal("result has no adaptation record")
	}
	if ad.ModelURI != adapted || ad.BaseModelURI != "mem://base" || ad.Steps != 500 || ad.Texts != 30 ||
		ad.BaseMetrics["accuracy"] != 0.5 || ad.Metrics["accuracy"] != 0.55 || ad.Forgetting["accuracy"] != 0.9 {
		t.Errorf("adaptation record %+v", ad)
	}
	if note := res.History[0].PromotionNote; !strings.Contains(note, "vs current 0.5500") {
		t.Errorf("round 1 promotion note %q, want a comparison with the adapted model's 0.55", note)
	}
}

// TestAdaptationPhaseStatus checks the phase the Status query reports while
// the adaptation runs, and the record it reports afterwards.
func TestAdaptationPhaseStatus(t *testing.T) {
	l := newLab(20)
	a := &adaptFake{l: l}
	cfg := adaptConfig()
	cfg.Budget.MaxRounds = 1
	var during, after Status
	chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		a.register(env)
		env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
			if info.ActivityType.Name == ActivityAdapt {
				during = statusOf(t, env)
			}
		})
		env.RegisterDelayedCallback(func() {
			after = statusOf(t, env)
			answerAll(t, env, new([]*outcome), "ann-a")
		}, time.Hour)
	})
	if during.Phase != PhaseAdapting || during.Round != 1 || during.ModelURI != "mem://base" || during.Adaptation != nil {
		t.Errorf("status during the adaptation = %+v, want phase %q in round 1 with the starting model", during, PhaseAdapting)
	}
	if after.Phase != PhaseLabeling || after.Adaptation == nil || after.ModelURI != "mem://models/adapted" {
		t.Errorf("status in round 1 = %+v, want labeling with the adapted model and its record", after)
	}
}

// TestAdaptationTargetShare: with adapt.target_share the adaptation gets
// the run's target sample to choose its corpus by.
func TestAdaptationTargetShare(t *testing.T) {
	l := newLab(20)
	a := &adaptFake{l: l}
	cfg := adaptConfig()
	cfg.Budget.MaxRounds = 1
	cfg.TargetURI = "mem://target"
	cfg.Adapt.TargetShare = 0.2
	chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		a.register(env)
		env.RegisterDelayedCallback(func() { answerAll(t, env, new([]*outcome), "ann-a") }, time.Hour)
	})
	if len(a.in) != 1 || a.in[0].TargetURI != "mem://target" || a.in[0].Settings.TargetShare != 0.2 {
		t.Fatalf("adapt inputs %+v, want one with the target sample and share", a.in)
	}
}

// TestNoAdaptationWithoutConfig: a run config without "adapt" never calls
// the activity and starts round 1 from the configured model, as before.
func TestNoAdaptationWithoutConfig(t *testing.T) {
	l := newLab(20)
	a := &adaptFake{l: l}
	cfg := adaptConfig()
	cfg.Adapt = nil
	var outs []*outcome
	res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		a.register(env)
		env.RegisterDelayedCallback(func() { answerAll(t, env, &outs, "ann-a") }, time.Hour)
	})
	mustAccept(t, outs)
	if len(a.in) != 0 || res.Adaptation != nil {
		t.Fatalf("adapt called %d times, record %+v; want neither", len(a.in), res.Adaptation)
	}
	if l.scored[0].ModelURI != "mem://base" || l.trained[0].BaseModelURI != "mem://base" || l.evaluated[0].ModelURI != "mem://base" {
		t.Errorf("round 1 scored %s, trained from %s, evaluated %s first; want the configured model", l.scored[0].ModelURI, l.trained[0].BaseModelURI, l.evaluated[0].ModelURI)
	}
	for _, up := range l.uploads {
		if up.Name == "adapted" {
			t.Errorf("upload of an adapted model without adaptation: %+v", up)
		}
	}
}

// TestAdaptationFailureFailsRun: a failed adaptation fails the run before
// any scoring, naming the phase.
func TestAdaptationFailureFailsRun(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	l := newLab(10)
	l.register(env)
	a := &adaptFake{l: l, err: temporal.NewNonRetryableApplicationError("corpus has no tokens", "BadData", nil)}
	a.register(env)
	env.ExecuteWorkflow(ActiveLearningName, adaptConfig())
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "adaptation of mem://base") {
		t.Fatalf("error %v, want the adaptation's", err)
	}
	if len(l.scored) != 0 {
		t.Errorf("%d shards scored after a failed adaptation", len(l.scored))
	}
}

func TestAdaptSettingsValidate(t *testing.T) {
	ok := AdaptSettings{Steps: 500, LearningRate: 5e-4, BatchSize: 64, SeqLen: 64, MaskProb: 0.15, Seed: 1}
	tests := []struct {
		name string
		edit func(a *AdaptSettings)
		want string // "" for valid
	}{
		{"example", func(a *AdaptSettings) {}, ""},
		{"defaults", func(a *AdaptSettings) { *a = AdaptSettings{Steps: 1} }, ""},
		{"text corpus and packing", func(a *AdaptSettings) { a.TextURI, a.Packing = "corpora/bible.txt", AdaptPackSequences }, ""},
		{"no steps", func(a *AdaptSettings) { a.Steps = 0 }, "adapt: steps must be between 1"},
		{"too many steps", func(a *AdaptSettings) { a.Steps = maxAdaptSteps + 1 }, "adapt: steps must be between 1"},
		{"negative lr", func(a *AdaptSettings) { a.LearningRate = -1e-4 }, "adapt: learning_rate"},
		{"lr 1", func(a *AdaptSettings) { a.LearningRate = 1 }, "adapt: learning_rate"},
		{"negative batch", func(a *AdaptSettings) { a.BatchSize = -1 }, "adapt: batch_size"},
		{"seq len 2", func(a *AdaptSettings) { a.SeqLen = 2 }, "adapt: seq_len"},
		{"mask prob 1", func(a *AdaptSettings) { a.MaskProb = 1 }, "adapt: mask_prob"},
		{"negative mask prob", func(a *AdaptSettings) { a.MaskProb = -0.1 }, "adapt: mask_prob"},
		{"unknown packing", func(a *AdaptSettings) { a.Packing = "zip" }, `adapt: packing must be "lines" or "pack"`},
		{"negative checkpoint interval", func(a *AdaptSettings) { a.CheckpointEvery = -1 }, "adapt: checkpoint_every"},
		{"spaces in text uri", func(a *AdaptSettings) { a.TextURI = " corpus.txt" }, "adapt: text_uri"},
		{"target share above 1", func(a *AdaptSettings) { a.TargetShare = 1.5 }, "adapt: target_share must be within [0, 1]"},
		{"negative target share", func(a *AdaptSettings) { a.TargetShare = -0.1 }, "adapt: target_share must be within [0, 1]"},
		{"target share without target_uri", func(a *AdaptSettings) { a.TargetShare = 0.2 }, "adapt: target_share needs target_uri"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			a := ok
			tc.edit(&a)
			cfg.Adapt = &a
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
