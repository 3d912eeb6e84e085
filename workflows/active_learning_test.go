package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

func TestThreeRoundsWithSimulatedAnnotators(t *testing.T) {
	l := newLab(30)
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 3
	cfg.Strategy = "entropy=0.67,random=0.33"
	cfg.ForgettingEvalURI = "mem://general"
	var outs []*outcome
	res, runs := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		// Annotators show up a day into each round.
		env.RegisterDelayedCallback(func() { answerAll(t, env, &outs, "ann-a", "ann-b") }, 24*time.Hour)
	})
	mustAccept(t, outs)
	if runs != 3 || res.Rounds != 3 {
		t.Fatalf("runs=%d rounds=%d, want 3 and 3", runs, res.Rounds)
	}
	if res.StopReason != "max rounds reached" {
		t.Errorf("stop reason %q", res.StopReason)
	}
	if res.ModelURI != "mem://models/round-0003" {
		t.Errorf("final model %q, want the round-3 checkpoint", res.ModelURI)
	}
	if res.LabelsTotal != 9 {
		t.Errorf("labels total %d, want 9", res.LabelsTotal)
	}
	seen := map[string]int{}
	for i, p := range l.persisted {
		if p.Round != i+1 || len(p.Decisions) != 3 {
			t.Fatalf("persist %d: round %d with %d decisions", i, p.Round, len(p.Decisions))
		}
		if len(p.Raw) != 6 {
			t.Errorf("round %d: %d raw answers, want 6", p.Round, len(p.Raw))
		}
		for _, d := range p.Decisions {
			seen[d.ItemID]++
			if d.Label != "cat" || d.Answers != 2 || d.Tie {
				t.Errorf("round %d item %s: %+v", p.Round, d.ItemID, d)
			}
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("item %s selected in %d rounds", id, n)
		}
	}
	for i, h := range res.History {
		if h.EndedBy != "quorum" || !h.Promoted || h.Round != i+1 {
			t.Errorf("history[%d] = %+v", i, h)
		}
	}
	// Fine-tunes chain from the last promoted model and run on the GPU queue
	// (queue asserted via the options in trainOptions; here the base URIs).
	wantBase := []string{"mem://base", "mem://models/round-0001", "mem://models/round-0002"}
	for i, tr := range l.trained {
		if tr.BaseModelURI != wantBase[i] {
			t.Errorf("fine-tune %d from %s, want %s", i, tr.BaseModelURI, wantBase[i])
		}
	}
	// Every shard scored in every round: 3 rounds x 3 shards.
	if len(l.scored) != 9 {
		t.Errorf("%d shard scorings, want 9", len(l.scored))
	}
	// The version marker is taken: the forgetting set was evaluated.
	for _, e := range l.evaluated {
		if e.ForgettingEvalURI != "mem://general" {
			t.Errorf("evaluate without the forgetting set: %+v", e)
		}
	}
}

func TestWaitForLabels(t *testing.T) {
	tests := []struct {
		name           string
		minLabels      int
		maxExtensions  int
		answers        map[time.Duration]int // when -> how many items get both answers
		close          time.Duration
		wantEndedBy    string
		wantExtensions int
		stillOpenAt    time.Duration
		closedBy       time.Duration
	}{
		{name: "quorum after two days", minLabels: 2, answers: map[time.Duration]int{50 * time.Hour: 3},
			wantEndedBy: "quorum", stillOpenAt: 49 * time.Hour, closedBy: 51 * time.Hour},
		{name: "deadline with the minimum", minLabels: 2, answers: map[time.Duration]int{10 * time.Hour: 2},
			wantEndedBy: "deadline", stillOpenAt: 71 * time.Hour, closedBy: 73 * time.Hour},
		{name: "extension below the minimum", minLabels: 2, answers: map[time.Duration]int{10 * time.Hour: 1, 80 * time.Hour: 1},
			wantEndedBy: "deadline", wantExtensions: 1, stillOpenAt: 95 * time.Hour, closedBy: 97 * time.Hour},
		{name: "extensions exhausted", minLabels: 3, maxExtensions: 2, answers: map[time.Duration]int{10 * time.Hour: 1},
			wantEndedBy: "deadline-below-minimum", wantExtensions: 2, stillOpenAt: 119 * time.Hour, closedBy: 121 * time.Hour},
		{name: "closed early", minLabels: 2, answers: map[time.Duration]int{1 * time.Hour: 1}, close: 5 * time.Hour,
			wantEndedBy: "closed", stillOpenAt: 4 * time.Hour, closedBy: 6 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(20)
			cfg := baseConfig()
			cfg.MinLabels = tc.minLabels
			cfg.Extension = ExtensionPolicy{Extend: Duration(24 * time.Hour), MaxExtensions: tc.maxExtensions}
			var outs []*outcome
			var started, closedAt time.Time
			res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
				started = env.Now()
				// The round closes when PersistLabels starts (the
				// callbacks below stop once the run completes, so they
				// alone would not notice a round that closed early).
				l.onPersist = func() {
					if closedAt.IsZero() {
						closedAt = env.Now()
					}
				}
				for at, n := range tc.answers {
					env.RegisterDelayedCallback(func() {
						b := batchOf(t, env)
						for _, it := range b.Items {
							if it.Answers > 0 {
								continue
							}
							if n == 0 {
								break
							}
							n--
							for _, a := range []string{"ann-a", "ann-b"} {
								outs = append(outs, submit(env, LabelSubmission{Round: b.Round, Annotator: a, Answers: []Answer{{ItemID: it.ItemID, Answer: "cat"}}}))
							}
						}
					}, at)
				}
				if tc.close > 0 {
					env.RegisterDelayedCallback(func() {
						env.UpdateWorkflow(CloseRound, "", &testsuite.TestUpdateCallback{
							OnAccept: func() {}, OnReject: func(err error) { t.Errorf("close rejected: %v", err) },
							OnComplete: func(any, error) {},
						}, CloseRequest{Round: 1, Reason: "enough"})
					}, tc.close)
				}
				env.RegisterDelayedCallback(func() {
					if st := statusOf(t, env); st.Phase != PhaseLabeling {
						t.Errorf("at %v phase %s, want labeling", tc.stillOpenAt, st.Phase)
					}
				}, tc.stillOpenAt)
				env.RegisterDelayedCallback(func() {
					if st := statusOf(t, env); st.Phase == PhaseLabeling {
						t.Errorf("at %v still labeling", tc.closedBy)
					}
				}, tc.closedBy)
			})
			mustAccept(t, outs)
			if open := closedAt.Sub(started); open <= tc.stillOpenAt || open > tc.closedBy {
				t.Errorf("the round closed %v after the start, want after %v and by %v", open, tc.stillOpenAt, tc.closedBy)
			}
			h := res.History[0]
			if h.EndedBy != tc.wantEndedBy || h.Extensions != tc.wantExtensions {
				t.Errorf("ended by %q with %d extensions, want %q with %d", h.EndedBy, h.Extensions, tc.wantEndedBy, tc.wantExtensions)
			}
			if len(l.trained) != 1 {
				t.Errorf("%d fine-tunes, want 1", len(l.trained))
			}
		})
	}
}

func TestBadUpdatesRejected(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.MinLabels = 1
	type badCase struct {
		name string
		s    LabelSubmission
		want string
		out  *outcome
	}
	var good *outcome
	var bad []*badCase
	var closeErr error
	received := -1
	chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() {
			b := batchOf(t, env)
			first := b.Items[0].ItemID
			good = submit(env, LabelSubmission{Round: 1, Annotator: "ann-a", Answers: []Answer{{ItemID: first, Answer: "cat"}}})
		}, time.Hour)
		env.RegisterDelayedCallback(func() {
			b := batchOf(t, env)
			first, second := b.Items[0].ItemID, b.Items[1].ItemID
			bad = []*badCase{
				{name: "unknown item", s: LabelSubmission{Round: 1, Annotator: "ann-b", Answers: []Answer{{ItemID: "nope", Answer: "cat"}}}, want: `unknown item id "nope"`},
				{name: "wrong round", s: LabelSubmission{Round: 2, Annotator: "ann-b", Answers: []Answer{{ItemID: first, Answer: "cat"}}}, want: "wrong round"},
				{name: "empty answer", s: LabelSubmission{Round: 1, Annotator: "ann-b", Answers: []Answer{{ItemID: first, Answer: "  "}}}, want: "empty answer"},
				{name: "annotator already counted", s: LabelSubmission{Round: 1, Annotator: "ann-a", Answers: []Answer{{ItemID: first, Answer: "dog"}}}, want: `annotator "ann-a" already answered`},
				{name: "no annotator", s: LabelSubmission{Round: 1, Answers: []Answer{{ItemID: first, Answer: "dog"}}}, want: "annotator is required"},
				{name: "no answers", s: LabelSubmission{Round: 1, Annotator: "ann-b"}, want: "no answers"},
				{name: "item twice", s: LabelSubmission{Round: 1, Annotator: "ann-b", Answers: []Answer{{ItemID: second, Answer: "a"}, {ItemID: second, Answer: "b"}}}, want: "appears twice"},
			}
			for _, c := range bad {
				c.out = submit(env, c.s)
			}
			env.UpdateWorkflow(CloseRound, "", &testsuite.TestUpdateCallback{
				OnAccept:   func() {},
				OnReject:   func(err error) { closeErr = err },
				OnComplete: func(any, error) {},
			}, CloseRequest{Round: 7})
		}, 2*time.Hour)
		env.RegisterDelayedCallback(func() { received = statusOf(t, env).LabelsReceived }, 3*time.Hour)
	})
	mustAccept(t, []*outcome{good})
	for _, c := range bad {
		if c.out.rejected == nil || !strings.Contains(c.out.rejected.Error(), c.want) {
			t.Errorf("%s: rejected=%v failed=%v, want a rejection containing %q", c.name, c.out.rejected, c.out.failed, c.want)
		}
	}
	if closeErr == nil || !strings.Contains(closeErr.Error(), "wrong round") {
		t.Errorf("CloseRound for round 7: %v, want a wrong-round rejection", closeErr)
	}
	if received != 1 {
		t.Errorf("labels received %d, want 1 (rejected updates count nothing)", received)
	}
	if n := len(l.persisted[0].Raw); n != 1 {
		t.Errorf("%d raw answers persisted, want 1 (rejected updates never reach the workflow state)", n)
	}
}

func TestDuplicateAnswersCountedOnce(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.Quorum = 2
	var dup *outcome
	res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() {
			b := batchOf(t, env)
			id := b.Items[0].ItemID
			s := LabelSubmission{Round: 1, Annotator: "ann-a", Answers: []Answer{{ItemID: id, Answer: "cat"}}}
			env.SignalWorkflow(SignalLabels, s)
			env.SignalWorkflow(SignalLabels, s) // the same answer again
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: 1, Annotator: "ann-a", Answers: []Answer{{ItemID: id, Answer: "dog"}}})
			dup = submit(env, s)
		}, time.Hour)
		env.RegisterDelayedCallback(func() {
			b := batchOf(t, env)
			id := b.Items[0].ItemID
			if got := b.Items[0]; got.Answers != 1 {
				t.Errorf("item has %d counted answers, want 1", got.Answers)
			}
			// Skip one item, flag another; close the round.
			env.SignalWorkflow(SignalSkip, ItemNote{Round: 1, ItemID: b.Items[1].ItemID, Annotator: "ann-b", Reason: "ambiguous", Scope: ScopeAll})
			env.SignalWorkflow(SignalFlag, ItemNote{Round: 1, ItemID: id, Annotator: "ann-b", Reason: "typo"})
			env.SignalWorkflow(CloseRound, CloseRequest{Round: 1})
		}, 2*time.Hour)
	})
	if dup == nil || dup.rejected == nil || !strings.Contains(dup.rejected.Error(), "already answered") {
		t.Errorf("update repeating a counted answer: %+v, want rejected", dup)
	}
	p := l.persisted[0]
	counted := 0
	for _, r := range p.Raw {
		if r.Via == "signal" && r.Counted {
			counted++
		}
	}
	if counted != 1 {
		t.Errorf("%d counted answers, want 1", counted)
	}
	if len(p.Raw) != 5 { // 3 label signals + skip + flag
		t.Errorf("%d raw records, want 5: %+v", len(p.Raw), p.Raw)
	}
	d := p.Decisions
	if d[0].Label != "cat" || d[0].Answers != 1 || !d[0].Flagged || d[0].FlagReasons[0] != "ann-b: typo" {
		t.Errorf("decision 0 = %+v", d[0])
	}
	if !d[1].Skipped || d[1].Label != "" {
		t.Errorf("decision 1 = %+v", d[1])
	}
	if res.History[0].EndedBy != "closed" || res.History[0].Skipped != 1 || res.History[0].Flagged != 1 {
		t.Errorf("history = %+v", res.History[0])
	}
}

// TestSignalsAroundContinueAsNew delivers signals while the round is being
// trained and uploaded (after it closed, before continue-as-new) and at the
// start of the next run; every one of them reaches a PersistLabels.
func TestSignalsAroundContinueAsNew(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 2
	cfg.Quorum = 1
	var outs []*outcome
	res, runs := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		round := run + 1
		l.onFineTune = func() {
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: round, Annotator: "late-1", Answers: []Answer{{ItemID: itemID(1), Answer: "late-ft"}}})
		}
		l.onUpload = func() {
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: round, Annotator: "late-2", Answers: []Answer{{ItemID: itemID(2), Answer: "late-up"}}})
			env.SignalWorkflow(SignalFlag, ItemNote{Round: round, ItemID: itemID(2), Reason: "late flag"})
		}
		// Early: arrives before the next round's batch exists.
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: round, Annotator: "early", Answers: []Answer{{ItemID: itemID(3), Answer: "early"}}})
		}, 0)
		env.RegisterDelayedCallback(func() { answerAll(t, env, &outs, "ann-a") }, time.Hour)
	})
	mustAccept(t, outs)
	if runs != 2 || res.Rounds != 2 {
		t.Fatalf("runs=%d rounds=%d", runs, res.Rounds)
	}
	got := map[string]int{}
	for _, p := range l.persisted {
		for _, r := range append(append([]RawAnswer(nil), p.Raw...), p.Late...) {
			got[r.Annotator+"/"+r.Answer+strings.Join(r.Answers, ",")]++
		}
	}
	for _, want := range []string{"late-1/late-ft", "late-2/late-up", "early/early", "/late flag"} {
		if got[want] != 2 { // once per run
			t.Errorf("%s persisted %d times, want 2 (one per run): %v", want, got[want], got)
		}
	}
	// The final run persisted its late answers in a last PersistLabels.
	if last := l.persisted[len(l.persisted)-1]; len(last.Late) == 0 || len(last.Decisions) != 0 {
		t.Errorf("last persist = %+v, want the late answers only", last)
	}
}

func TestInvalidConfigFailsFast(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	newLab(1).register(env)
	cfg := baseConfig()
	cfg.Strategy = "vibes"
	env.ExecuteWorkflow(ActiveLearningName, cfg)
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), `unknown strategy "vibes"`) {
		t.Fatalf("error %v, want unknown strategy", err)
	}
}

func TestRetrain(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	l := newLab(10)
	l.persisted = []PersistLabelsInput{{Round: 1}, {Round: 2}}
	l.accuracy["mem://models/round-0001"] = 0.6
	l.accuracy["mem://train/0000"] = 0.7
	env := s.NewTestWorkflowEnvironment()
	l.register(env)
	env.ExecuteWorkflow(RetrainName, RetrainConfig{RunID: "run-1", EvalURI: "mem://eval", From: "base", BaseModelURI: "mem://base"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res RetrainResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if !res.Promoted || res.BaseModelURI != "mem://base" || l.trained[0].LabelSetURI != "mem://labels/upto-0002" {
		t.Errorf("result %+v, trained %+v", res, l.trained)
	}
	if !strings.HasPrefix(res.ModelURI, "mem://models/retrain-") {
		t.Errorf("model %q", res.ModelURI)
	}
}

// A Retrain promotes a model while the loop trains round 2: the loop's
// promotion loses the compare-and-swap, the pointer is not overwritten, and
// round 3 continues from (and is compared with) the other model.
func TestPromotionLostToAnotherWorkflow(t *testing.T) {
	l := newLab(30)
	l.promotedElsewhere = map[string]string{"round-0002": "mem://models/retrain-x"}
	l.accuracy["mem://models/retrain-x"] = 0.75
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 3
	var outs []*outcome
	res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() { answerAll(t, env, &outs, "ann-a", "ann-b") }, time.Hour)
	})
	mustAccept(t, outs)
	if len(res.History) != 3 {
		t.Fatalf("history %+v", res.History)
	}
	if h := res.History[1]; h.Promoted || !strings.Contains(h.PromotionNote, "another workflow") || h.ModelURI != "mem://models/retrain-x" {
		t.Errorf("round 2 = %+v, want not promoted, the conflict noted, the other model current", h)
	}
	if !res.History[2].Promoted || res.ModelURI != "mem://models/round-0003" {
		t.Errorf("round 3 = %+v, final model %s", res.History[2], res.ModelURI)
	}
	wantExpected := []string{"mem://base", "mem://models/round-0001", "mem://models/retrain-x"}
	for i, up := range l.uploads {
		if !up.CheckCurrent || up.ExpectedCurrentURI != wantExpected[i] {
			t.Errorf("upload %d expects %q (check %t), want %q", i, up.ExpectedCurrentURI, up.CheckCurrent, wantExpected[i])
		}
	}
	if l.trained[2].BaseModelURI != "mem://models/retrain-x" {
		t.Errorf("round 3 fine-tuned from %s, want the other workflow's model", l.trained[2].BaseModelURI)
	}
	evaluatedOther := false
	for _, e := range l.evaluated {
		evaluatedOther = evaluatedOther || e.ModelURI == "mem://models/retrain-x"
	}
	if !evaluatedOther {
		t.Error("the other workflow's model was never evaluated as the new baseline")
	}
}

func TestRetrainLosesToActiveLearning(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	l := newLab(10)
	l.persisted = []PersistLabelsInput{{Round: 1}, {Round: 2}}
	l.accuracy["mem://models/round-0001"] = 0.6
	l.accuracy["mem://train/0000"] = 0.7
	env := s.NewTestWorkflowEnvironment()
	l.register(env)
	l.onUpload = func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.promotedElsewhere = map[string]string{}
		for _, up := range l.uploads {
			l.promotedElsewhere[up.Name] = "mem://models/round-0002"
		}
	}
	env.ExecuteWorkflow(RetrainName, RetrainConfig{RunID: "run-1", EvalURI: "mem://eval"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res RetrainResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Promoted || !strings.Contains(res.PromotionNote, "not promoted") || l.uploads[0].ExpectedCurrentURI != "mem://models/round-0001" {
		t.Errorf("result %+v, upload %+v", res, l.uploads[0])
	}
}
