package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

// extendOutcome is what an ExtendRound Update got.
type extendOutcome struct {
	done     bool
	rejected error
	status   Status
}

func extendRound(t *testing.T, env *testsuite.TestWorkflowEnvironment, req ExtendRequest) *extendOutcome {
	t.Helper()
	o := &extendOutcome{}
	env.UpdateWorkflow(ExtendRound, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { o.rejected, o.done = err, true },
		OnComplete: func(v any, err error) {
			o.done = true
			if err != nil {
				t.Errorf("ExtendRound failed after acceptance: %v", err)
				return
			}
			if st, ok := v.(Status); ok {
				o.status = st
			}
		},
	}, req)
	return o
}

// TestExtendRound: a lead's ExtendRound Update moves the open round's
// deadline (Status shows it), the round ends at the new deadline and not
// at the old one; a signal extends too; bad requests are refused with the
// reason and change nothing.
func TestExtendRound(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig() // deadline 72h, min 2 labelled items
	var start time.Time
	var ok, bad []*extendOutcome
	var badReqs []ExtendRequest
	var afterUpdate, afterSignal, afterBad Status
	var outs []*outcome
	var closedAt time.Time
	res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() {
			start = env.Now()
			answerAll(t, env, &outs, "ann-a") // every item labelled once: the minimum is met
			ok = append(ok, extendRound(t, env, ExtendRequest{Round: 1, Extend: Duration(24 * time.Hour), Reason: "holiday"}))
		}, time.Hour)
		env.RegisterDelayedCallback(func() {
			afterUpdate = statusOf(t, env)
			env.SignalWorkflow(ExtendRound, ExtendRequest{Round: 1, Extend: Duration(2 * time.Hour)})
		}, 2*time.Hour)
		env.RegisterDelayedCallback(func() {
			afterSignal = statusOf(t, env)
			badReqs = []ExtendRequest{
				{Round: 1, Extend: 0},
				{Round: 1, Extend: Duration(-time.Hour)},
				{Round: 1, Extend: Duration(31 * 24 * time.Hour)},
				{Round: 2, Extend: Duration(time.Hour)},
			}
			for _, r := range badReqs {
				bad = append(bad, extendRound(t, env, r))
			}
			// Invalid signals are ignored.
			env.SignalWorkflow(ExtendRound, ExtendRequest{Round: 1, Extend: Duration(40 * 24 * time.Hour)})
			env.SignalWorkflow(ExtendRound, ExtendRequest{Round: 9, Extend: Duration(time.Hour)})
		}, 3*time.Hour)
		env.RegisterDelayedCallback(func() { afterBad = statusOf(t, env) }, 4*time.Hour)
		// The round closes when PersistLabels starts.
		l.onPersist = func() {
			if closedAt.IsZero() {
				closedAt = env.Now()
			}
		}
	})
	mustAccept(t, outs)
	if len(ok) != 1 || !ok[0].done || ok[0].rejected != nil {
		t.Fatalf("ExtendRound update: %+v", ok)
	}
	roundStart := start.Add(-time.Hour)
	// Not at the configured 72h, nor at 96h (after the update alone): at
	// 98h, the deadline both extensions made.
	if got := closedAt.Sub(roundStart); got != 98*time.Hour {
		t.Errorf("the round closed %v after it opened, want 98h (72h + 24h + 2h)", got)
	}
	if want := roundStart.Add(96 * time.Hour); !ok[0].status.Deadline.Equal(want) || ok[0].status.LeadExtensions != 1 {
		t.Errorf("update result deadline %v (lead extensions %d), want %v and 1", ok[0].status.Deadline, ok[0].status.LeadExtensions, want)
	}
	if want := roundStart.Add(96 * time.Hour); !afterUpdate.Deadline.Equal(want) || afterUpdate.Extensions != 1 || afterUpdate.LeadExtensions != 1 {
		t.Errorf("status after the update: deadline %v, extensions %d/%d; want %v, 1/1", afterUpdate.Deadline, afterUpdate.Extensions, afterUpdate.LeadExtensions, want)
	}
	if want := roundStart.Add(98 * time.Hour); !afterSignal.Deadline.Equal(want) || afterSignal.LeadExtensions != 2 {
		t.Errorf("status after the signal: deadline %v, lead extensions %d; want %v, 2", afterSignal.Deadline, afterSignal.LeadExtensions, want)
	}
	wants := []string{"positive duration", "positive duration", "longer than 720h0m0s", "wrong round"}
	for i, o := range bad {
		if !o.done || o.rejected == nil || !strings.Contains(o.rejected.Error(), wants[i]) {
			t.Errorf("ExtendRound %+v: done=%v rejected=%v, want a rejection with %q", badReqs[i], o.done, o.rejected, wants[i])
		}
	}
	if !afterBad.Deadline.Equal(afterSignal.Deadline) || afterBad.LeadExtensions != 2 {
		t.Errorf("refused extensions changed the round: deadline %v, lead extensions %d", afterBad.Deadline, afterBad.LeadExtensions)
	}
	h := res.History[0]
	if h.EndedBy != "deadline" || h.Extensions != 2 || h.LeadExtensions != 2 {
		t.Errorf("round 1 ended by %q with %d extensions (%d by leads), want deadline, 2, 2", h.EndedBy, h.Extensions, h.LeadExtensions)
	}
}

// TestExtendRoundBounds: a round takes at most MaxLeadExtensionsPerRound
// extensions; a closed round cannot be extended.
func TestExtendRoundBounds(t *testing.T) {
	l := newLab(20)
	cfg := baseConfig()
	cfg.MinLabels = 1
	var outs []*extendOutcome
	var afterClose *extendOutcome
	var st Status
	chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() {
			for range MaxLeadExtensionsPerRound + 1 {
				outs = append(outs, extendRound(t, env, ExtendRequest{Round: 1, Extend: Duration(time.Minute)}))
			}
		}, time.Hour)
		env.RegisterDelayedCallback(func() {
			st = statusOf(t, env)
			answerAll(t, env, new([]*outcome), "ann-a")
			env.SignalWorkflow(CloseRound, CloseRequest{Round: 1})
			afterClose = extendRound(t, env, ExtendRequest{Round: 1, Extend: Duration(time.Hour)})
		}, 2*time.Hour)
	})
	for i, o := range outs {
		switch {
		case i < MaxLeadExtensionsPerRound && (!o.done || o.rejected != nil):
			t.Errorf("extension %d: done=%v rejected=%v, want accepted", i+1, o.done, o.rejected)
		case i == MaxLeadExtensionsPerRound && (o.rejected == nil || !strings.Contains(o.rejected.Error(), "already extended 10 times")):
			t.Errorf("extension %d: rejected=%v, want refused (at most %d)", i+1, o.rejected, MaxLeadExtensionsPerRound)
		}
	}
	if st.LeadExtensions != MaxLeadExtensionsPerRound {
		t.Errorf("lead extensions %d, want %d", st.LeadExtensions, MaxLeadExtensionsPerRound)
	}
	if afterClose == nil || afterClose.rejected == nil || !strings.Contains(afterClose.rejected.Error(), "already closed") {
		t.Errorf("extension of a closed round: %+v, want refused", afterClose)
	}
}
