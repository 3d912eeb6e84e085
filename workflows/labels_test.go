package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// TestSkipScopes: an annotator's skip excludes only that annotator from the
// item (answers already given stay, others still answer); a lead's skip
// for everyone removes the item.
func TestSkipScopes(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.Quorum = 2
	var selfAnswer, otherAnswer *outcome
	var mid BatchView
	res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() {
			b := batchOf(t, env)
			x, y := b.Items[0].ItemID, b.Items[1].ItemID
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: 1, Annotator: "ann-a", Answers: []Answer{{ItemID: x, Answers: []string{"cat"}}}})
			// ann-a skips x for themselves: their answer stays.
			env.SignalWorkflow(SignalSkip, ItemNote{Round: 1, ItemID: x, Annotator: "ann-a", Reason: "unsure"})
			// ann-b skips y for themselves, before answering anything.
			env.SignalWorkflow(SignalSkip, ItemNote{Round: 1, ItemID: y, Annotator: "ann-b", Scope: ScopeSelf})
			// A lead removes the third item for everyone.
			env.SignalWorkflow(SignalSkip, ItemNote{Round: 1, ItemID: b.Items[2].ItemID, Annotator: "lead", Scope: ScopeAll})
			env.SignalWorkflow(SignalSkip, ItemNote{Round: 1, ItemID: y, Annotator: "ann-c", Scope: "everyone"})
		}, time.Hour)
		env.RegisterDelayedCallback(func() {
			mid = batchOf(t, env)
			y := mid.Items[1].ItemID
			selfAnswer = submit(env, LabelSubmission{Round: 1, Annotator: "ann-b", Answers: []Answer{{ItemID: y, Answers: []string{"dog"}}}})
			otherAnswer = submit(env, LabelSubmission{Round: 1, Annotator: "ann-c", Answers: []Answer{{ItemID: y, Answers: []string{"dog"}}}})
			env.SignalWorkflow(CloseRound, CloseRequest{Round: 1})
		}, 2*time.Hour)
	})
	if selfAnswer.rejected == nil || !strings.Contains(selfAnswer.rejected.Error(), `annotator "ann-b" skipped item`) {
		t.Errorf("answer after one's own skip: %+v, want rejected", selfAnswer)
	}
	mustAccept(t, []*outcome{otherAnswer})
	if got := mid.Items[0]; got.Skipped || got.Answers != 1 || strings.Join(got.SkippedBy, ",") != "ann-a" {
		t.Errorf("self-skipped item in the batch: %+v", got)
	}
	if got := mid.Items[1]; got.Skipped || strings.Join(got.SkippedBy, ",") != "ann-b" {
		t.Errorf("item skipped by ann-b: %+v", got)
	}
	if !mid.Items[2].Skipped {
		t.Errorf("item skipped for everyone: %+v", mid.Items[2])
	}
	d := l.persisted[0].Decisions
	if d[0].Label != "cat" || d[0].Skipped || d[1].Label != "dog" || d[1].Skipped || !d[2].Skipped {
		t.Errorf("decisions %+v", d)
	}
	var badScope bool
	for _, r := range l.persisted[0].Raw {
		if r.Via == "skip" && strings.Contains(r.Rejected, `unknown skip scope "everyone"`) {
			badScope = true
		}
	}
	if !badScope {
		t.Errorf("a skip with an unknown scope was not recorded as rejected: %+v", l.persisted[0].Raw)
	}
	if h := res.History[0]; h.Labeled != 2 || h.Skipped != 1 {
		t.Errorf("history %+v", h)
	}
}

// TestRoundWithoutLabels: a round closed with no labels ends that round,
// not the run; the next round selects other items. A close with EndRun
// ends the run.
func TestRoundWithoutLabels(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 3
	var batches [][]string
	res, runs := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() {
			b := batchOf(t, env)
			var ids []string
			for _, it := range b.Items {
				ids = append(ids, it.ItemID)
			}
			batches = append(batches, ids)
			switch run {
			case 0: // nobody answers; a cross-site close with no labels
				env.SignalWorkflow(CloseRound, CloseRequest{Round: b.Round})
			case 1:
				answerAll(t, env, new([]*outcome), "ann-a")
				env.RegisterDelayedCallback(func() {
					env.SignalWorkflow(CloseRound, CloseRequest{Round: b.Round, EndRun: true, Reason: "lead ends the run"})
				}, time.Minute)
			}
		}, time.Hour)
	})
	if runs != 2 || res.Rounds != 2 {
		t.Fatalf("runs=%d rounds=%d, want 2 and 2", runs, res.Rounds)
	}
	if h := res.History[0]; h.Labeled != 0 || h.EndedBy != "closed" || h.Promoted {
		t.Errorf("round 1 = %+v", h)
	}
	if !strings.Contains(res.StopReason, "closed round 2") {
		t.Errorf("stop reason %q, want the end_run close", res.StopReason)
	}
	for _, a := range batches[0] {
		for _, b := range batches[1] {
			if a == b {
				t.Errorf("item %s of the empty round selected again straight away", a)
			}
		}
	}
	if len(l.trained) != 1 || l.trained[0].Round != 2 {
		t.Errorf("fine-tunes %+v, want one, for round 2", l.trained)
	}
}

// TestMinLabelsLoweredForSmallLastBatch: the pool's last batch is smaller
// than min_labels; the deadline ends the round without extensions.
func TestMinLabelsLoweredForSmallLastBatch(t *testing.T) {
	l := newLab(5) // rounds of 3 and 2 items
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 2
	cfg.MinLabels = 3
	cfg.Quorum = 2
	cfg.Extension = ExtensionPolicy{Extend: Duration(24 * time.Hour), MaxExtensions: 4}
	res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() { answerAll(t, env, new([]*outcome), "ann-a") }, time.Hour)
	})
	if len(res.History) != 2 {
		t.Fatalf("history %+v", res.History)
	}
	if h := res.History[1]; h.Items != 2 || h.EndedBy != "deadline" || h.Extensions != 0 {
		t.Errorf("last round = %+v, want 2 items ended by the deadline without extensions", h)
	}
}

// TestLateAnswersDuringPersist: answers and flags that arrive while a
// round's labels are being persisted reach a later PersistLabels.
func TestLateAnswersDuringPersist(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.Quorum = 1
	var env0 *testsuite.TestWorkflowEnvironment
	sent := false
	l.onPersist = func() {
		if sent || env0 == nil {
			return
		}
		sent = true
		env0.SignalWorkflow(SignalLabels, LabelSubmission{Round: 1, Annotator: "slow", Answers: []Answer{{ItemID: itemID(1), Answers: []string{"while-persisting"}}}})
		env0.SignalWorkflow(SignalFlag, ItemNote{Round: 1, ItemID: itemID(1), Annotator: "slow", Reason: "flag while persisting"})
	}
	chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env0 = env
		env.RegisterDelayedCallback(func() { answerAll(t, env, new([]*outcome), "ann-a") }, time.Hour)
	})
	found := map[string]bool{}
	for _, p := range l.persisted[1:] {
		for _, r := range p.Late {
			found[strings.Join(r.Answers, ",")+r.Answer] = true
		}
	}
	if !found["while-persisting"] || !found["flag while persisting"] {
		t.Errorf("late records persisted later: %v (persists %+v)", found, l.persisted)
	}
}

// TestRunIDInUse: a new run with a run id whose labels exist fails at its
// first step with a clear error and writes nothing.
func TestRunIDInUse(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	l := newLab(10)
	l.resolved = &ResolveRunOutput{LabelSetURI: "runs/run-1/labels/set-0002.json"}
	l.register(env)
	env.ExecuteWorkflow(ActiveLearningName, baseConfig())
	err := env.GetWorkflowError()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != "RunIDInUse" || !strings.Contains(err.Error(), `run id "run-1" is already used`) {
		t.Fatalf("error %v, want RunIDInUse", err)
	}
	if len(l.persisted) != 0 || len(l.scored) != 0 {
		t.Errorf("the refused run still scored %d shards and persisted %d rounds", len(l.scored), len(l.persisted))
	}
}

// TestHubModelPinned: a run whose starting model is a Hub reference asks
// ResolveRun to pin it, and scores (and would train) with the pinned
// commit from then on, as Status reports.
func TestHubModelPinned(t *testing.T) {
	tests := []struct {
		name, model, pinned, want string
	}{
		{"hub branch pinned", "hf://org/tiny", "hf://org/tiny@0123abcd", "hf://org/tiny@0123abcd"},
		{"S3 key unchanged", "models/start", "", "models/start"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			l := newLab(10)
			l.resolved = &ResolveRunOutput{PinnedModelURI: tc.pinned}
			l.register(env)
			cfg := baseConfig()
			cfg.ModelURI = tc.model
			var st Status
			env.RegisterDelayedCallback(func() {
				v, err := env.QueryWorkflow(QueryStatus)
				if err != nil {
					t.Error(err)
					return
				}
				if err := v.Get(&st); err != nil {
					t.Error(err)
				}
			}, time.Minute)
			env.ExecuteWorkflow(ActiveLearningName, cfg)
			if len(l.resolveIn) == 0 || l.resolveIn[0].ModelURI != tc.model {
				t.Fatalf("ResolveRun inputs %+v, want the configured model %s", l.resolveIn, tc.model)
			}
			if len(l.scored) == 0 {
				t.Fatal("nothing scored")
			}
			for _, in := range l.scored {
				if in.ModelURI != tc.want {
					t.Errorf("scored with %s, want %s", in.ModelURI, tc.want)
				}
			}
			if st.ModelURI != tc.want {
				t.Errorf("status model %q, want %q", st.ModelURI, tc.want)
			}
		})
	}
}

// TestMaskCountAndAgreement: an answer with the wrong number of blanks is
// refused by the Update with the reason and recorded as rejected from a
// signal; Status and History carry the round's agreement.
func TestMaskCountAndAgreement(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.Quorum = 3
	var wrong *outcome
	var st Status
	res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() {
			b := batchOf(t, env)
			id := b.Items[0].ItemID
			if b.Items[0].Masks != 1 {
				t.Errorf("batch item masks %d, want 1", b.Items[0].Masks)
			}
			wrong = submit(env, LabelSubmission{Round: 1, Annotator: "ann-a", Answers: []Answer{{ItemID: id, Answers: []string{"a", "b", "c"}}}})
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: 1, Annotator: "ann-b", Answers: []Answer{{ItemID: id, Answers: []string{"a", "b", "c"}}}})
			// Items: Dog/dog agree, cat/owl disagree, hen/hen agree.
			for i, pair := range [][2]string{{"Dog", "dog"}, {"cat", "owl"}, {"hen", "hen"}} {
				it := b.Items[i].ItemID
				env.SignalWorkflow(SignalLabels, LabelSubmission{Round: 1, Annotator: "ann-c", Answers: []Answer{{ItemID: it, Answers: []string{pair[0]}}}})
				env.SignalWorkflow(SignalLabels, LabelSubmission{Round: 1, Annotator: "ann-d", Answers: []Answer{{ItemID: it, Answer: pair[1]}}})
			}
		}, time.Hour)
		env.RegisterDelayedCallback(func() {
			st = statusOf(t, env)
			env.SignalWorkflow(CloseRound, CloseRequest{Round: 1})
		}, 90*time.Minute)
	})
	if wrong.rejected == nil || !strings.Contains(wrong.rejected.Error(), "has 1 blank(s) ([MASK]) but the answer has 3") {
		t.Errorf("update with 3 answers for 1 blank: %+v, want rejected", wrong)
	}
	var rejected int
	for _, r := range l.persisted[0].Raw {
		if r.Annotator == "ann-b" && strings.Contains(r.Rejected, "but the answer has 3") && len(r.Answers) == 3 {
			rejected++
		}
	}
	if rejected != 1 {
		t.Errorf("signal with 3 answers for 1 blank: %d rejected records, want 1", rejected)
	}
	// Values dog,dog | cat,owl | hen,hen: n=6, n_dog=2, n_hen=2, n_cat=n_owl=1;
	// Σ_u (m²−Σn²)/(m−1) = 0+2+0 = 2; α = 1 − 5·2/(36−10) = 8/13.
	for name, a := range map[string]*Agreement{"status": st.Agreement, "history": res.History[0].Agreement, "persisted": l.persisted[0].Agreement} {
		if a == nil || a.Items != 3 || a.Pairs != 3 || a.Alpha == nil || fmt.Sprintf("%.6f", *a.Alpha) != fmt.Sprintf("%.6f", 8.0/13) ||
			fmt.Sprintf("%.6f", a.PairwiseAgreement) != fmt.Sprintf("%.6f", 2.0/3) {
			t.Errorf("%s agreement %+v, want 3 items, alpha 8/13, pairwise 2/3", name, a)
		}
	}
}

// TestWorstCaseClientLoad sends what no honest client sends, within the
// hook's 1 MiB body limit per message: 2,500 long answers for one item in
// one signal and from 2,500 annotators, as many oversized Updates, 500
// flags, skips and deadline extensions with long reasons, answers for
// unknown items and 3,000 late answers. The workflow keeps running, a
// round takes at most MaxLeadExtensionsPerRound extensions, and every
// PersistLabels input and the continue-as-new input stay under 256 KiB.
func TestWorstCaseClientLoad(t *testing.T) {
	l := newLab(40)
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 2
	cfg.BatchSize = 10
	cfg.Quorum = 3
	long := strings.Repeat("x", 400)
	reason := strings.Repeat("r", 2000)
	var upd []*outcome
	res, runs := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		round := run + 1
		l.onFineTune = func() {
			// Late answers for the closed round, 3,000 of them.
			for i := range 30 {
				var answers []Answer
				for j := range 100 {
					answers = append(answers, Answer{ItemID: fmt.Sprintf("late-%d-%d", i, j), Answers: []string{long, long}})
				}
				env.SignalWorkflow(SignalLabels, LabelSubmission{Round: round, Annotator: long, Answers: answers})
			}
		}
		// The test environment queues at most 1,000 messages per callback:
		// the flood comes in slices of 500, a minute apart.
		var b BatchView
		env.RegisterDelayedCallback(func() {
			b = batchOf(t, env)
			var many []Answer
			for range 2500 {
				many = append(many, Answer{ItemID: b.Items[0].ItemID, Answers: []string{long}})
			}
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: round, Annotator: "flood", Answers: many})
			for i := range 50 {
				upd = append(upd, submit(env, LabelSubmission{Round: round, Annotator: fmt.Sprintf("upd-%02d", i), Answers: []Answer{{ItemID: b.Items[1].ItemID, Answers: []string{long}}}}))
			}
			var unknown []Answer
			for i := range 2500 {
				unknown = append(unknown, Answer{ItemID: fmt.Sprintf("%s-%d", long, i), Answers: []string{long}})
			}
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: round, Annotator: "ghost", Answers: unknown})
		}, time.Hour)
		for slice := range 5 {
			env.RegisterDelayedCallback(func() {
				for i := slice * 500; i < (slice+1)*500; i++ {
					env.SignalWorkflow(SignalLabels, LabelSubmission{Round: round, Annotator: fmt.Sprintf("bot-%04d", i), Answers: []Answer{{ItemID: b.Items[0].ItemID, Answers: []string{long + fmt.Sprint(i)}}}})
				}
			}, time.Hour+time.Duration(slice+1)*time.Minute)
		}
		for slice := range 2 {
			env.RegisterDelayedCallback(func() {
				for i := slice * 250; i < (slice+1)*250; i++ {
					it := b.Items[i%len(b.Items)].ItemID
					env.SignalWorkflow(SignalFlag, ItemNote{Round: round, ItemID: it, Annotator: fmt.Sprintf("%s-f-%d", long[:100], i), Reason: reason})
					env.SignalWorkflow(SignalSkip, ItemNote{Round: round, ItemID: it, Annotator: fmt.Sprintf("%s-s-%d", long[:100], i), Reason: reason})
					env.SignalWorkflow(ExtendRound, ExtendRequest{Round: round, Extend: Duration(time.Minute), Reason: reason})
				}
			}, time.Hour+time.Duration(slice+10)*time.Minute)
		}
		env.RegisterDelayedCallback(func() { answerAll(t, env, &upd, "ann-a", "ann-b", "ann-c") }, 2*time.Hour)
	})
	if runs != 2 || res.Rounds != 2 {
		t.Fatalf("runs=%d rounds=%d, want the run to go on to 2 rounds", runs, res.Rounds)
	}
	for _, h := range res.History {
		if h.LeadExtensions != MaxLeadExtensionsPerRound {
			t.Errorf("round %d took %d extensions from 500 requests, want the bound %d", h.Round, h.LeadExtensions, MaxLeadExtensionsPerRound)
		}
	}
	const bound = 256 << 10
	for _, p := range l.persisted {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("PersistLabels round %d: %d bytes, %d raw, %d late, %d dropped", p.Round, len(data), len(p.Raw), len(p.Late), p.Dropped)
		if len(data) > bound {
			t.Errorf("PersistLabels input of round %d is %d bytes, over %d", p.Round, len(data), bound)
		}
		if p.Dropped == 0 {
			t.Errorf("round %d: nothing counted as dropped", p.Round)
		}
	}
	// The continue-as-new input (carried late answers and history).
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	l2 := newLab(20)
	l2.register(env)
	l2.onFineTune = func() {
		for i := range 30 {
			var answers []Answer
			for j := range 100 {
				answers = append(answers, Answer{ItemID: fmt.Sprintf("late-%d-%d", i, j), Answers: []string{long, long}})
			}
			env.SignalWorkflow(SignalLabels, LabelSubmission{Round: 1, Annotator: long, Answers: answers})
		}
	}
	cfg2 := baseConfig()
	cfg2.Budget.MaxRounds = 3
	cfg2.Quorum = 1
	env.RegisterDelayedCallback(func() { answerAll(t, env, &upd, "ann-a") }, time.Hour)
	env.ExecuteWorkflow(ActiveLearningName, cfg2)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next RunConfig
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, p := range can.Input.GetPayloads() {
		size += len(p.GetData())
	}
	t.Logf("continue-as-new input: %d bytes, %d late carried, %d dropped", size, len(next.Resume.Late), next.Resume.LateDropped)
	if size > bound || len(next.Resume.Late) != MaxLateRecords || next.Resume.LateDropped != 3000-MaxLateRecords {
		t.Errorf("continue-as-new input %d bytes with %d late and %d dropped", size, len(next.Resume.Late), next.Resume.LateDropped)
	}
	for i, o := range upd {
		if !o.done {
			t.Errorf("update %d never answered", i)
		}
	}
}
