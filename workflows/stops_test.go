package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

// Time-skipping tests of how a run ends and of the branches that decide
// what model users get: every stop reason, the not-promoted branch and a
// tie under a quorum. They use the lab fake of fake_test.go, where the
// candidate of round N scores accuracy 0.5+0.1N unless lab.accuracy says
// otherwise, and the base model 0.5.

// vote is one annotator's answer to one item of the open round.
func vote(env *testsuite.TestWorkflowEnvironment, round int, annotator, item, answer string) *outcome {
	return submit(env, LabelSubmission{Round: round, Annotator: annotator, Answers: []Answer{{ItemID: item, Answer: answer}}})
}

// annotateEveryRound has two annotators answer every item of each round a
// day after it opens.
func annotateEveryRound(t *testing.T, outs *[]*outcome) func(env *testsuite.TestWorkflowEnvironment, run int) {
	return func(env *testsuite.TestWorkflowEnvironment, run int) {
		env.RegisterDelayedCallback(func() { answerAll(t, env, outs, "ann-a", "ann-b") }, 24*time.Hour)
	}
}

func promotedOf(h []RoundMetrics) []bool {
	out := make([]bool, len(h))
	for i, m := range h {
		out[i] = m.Promoted
	}
	return out
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNotPromotedKeepsCurrentModel: round 1's candidate (0.4) is worse than
// the base model (0.5), so it is uploaded without promotion, the run keeps
// the base model, round 2 fine-tunes from the base model again and is
// compared with the base model's 0.5, and its candidate (0.7) is promoted.
func TestNotPromotedKeepsCurrentModel(t *testing.T) {
	l := newLab(30)
	l.accuracy["mem://train/0001"] = 0.4
	cfg := baseConfig()
	cfg.Budget.MaxRounds = 2
	cfg.Promotion.MinDelta = 0.01
	var outs []*outcome
	res, _ := chain(t, cfg, l, annotateEveryRound(t, &outs))
	mustAccept(t, outs)
	if res.Rounds != 2 || res.StopReason != "max rounds reached" {
		t.Fatalf("rounds %d, stop %q", res.Rounds, res.StopReason)
	}
	if got := promotedOf(res.History); !equalBools(got, []bool{false, true}) {
		t.Errorf("promoted per round %v, want [false true]", got)
	}
	h1 := res.History[0]
	if h1.ModelURI != "mem://base" || !strings.Contains(h1.PromotionNote, "below min delta") {
		t.Errorf("round 1: model %q, note %q; want the base model kept and the reason", h1.ModelURI, h1.PromotionNote)
	}
	if len(l.uploads) != 2 || l.uploads[0].Promote || !l.uploads[1].Promote {
		t.Fatalf("uploads %+v; want round 1 uploaded without promotion, round 2 promoted", l.uploads)
	}
	if l.uploads[1].ExpectedCurrentURI != "mem://base" {
		t.Errorf("round 2 promotion expects current %q, want the base model", l.uploads[1].ExpectedCurrentURI)
	}
	if len(l.trained) != 2 || l.trained[1].BaseModelURI != "mem://base" {
		t.Errorf("fine-tunes %+v; round 2 must start from the base model", l.trained)
	}
	// The base model is evaluated once; round 2 is compared with its 0.5.
	if n := countEvaluated(l, "mem://base"); n != 1 {
		t.Errorf("base model evaluated %d times, want 1", n)
	}
	if h2 := res.History[1]; !strings.Contains(h2.PromotionNote, "vs current 0.5000") {
		t.Errorf("round 2 note %q, want a comparison with the base model's 0.5", h2.PromotionNote)
	}
	if res.ModelURI != "mem://models/round-0002" {
		t.Errorf("final model %q", res.ModelURI)
	}
}

func countEvaluated(l *lab, uri string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evaluated {
		if e.ModelURI == uri {
			n++
		}
	}
	return n
}

// TestStopReasons runs until each stop criterion ends the run and checks
// the reason, the number of rounds and what was labelled and promoted.
func TestStopReasons(t *testing.T) {
	tests := []struct {
		name       string
		pool       int
		accuracy   map[string]float64
		setup      func(*RunConfig)
		wantReason string
		wantRounds int
		wantLabels int
		promoted   []bool
		batchSizes []int // items selected per round
		finalModel string
	}{
		{
			name:  "label budget",
			pool:  30,
			setup: func(c *RunConfig) { c.Budget = Budget{MaxLabels: 5} },
			// Round 2 selects only the 2 labels left in the budget.
			wantReason: "label budget spent", wantRounds: 2, wantLabels: 5,
			promoted: []bool{true, true}, batchSizes: []int{3, 2}, finalModel: "mem://models/round-0002",
		},
		{
			name:     "target metric",
			pool:     30,
			accuracy: map[string]float64{"mem://train/0001": 0.65, "mem://train/0002": 0.72},
			setup:    func(c *RunConfig) { c.Budget = Budget{MaxRounds: 10}; c.Stop.TargetMetric = 0.7 },
			// Round 1's 0.65 is below the target; round 2's 0.72 reaches it.
			wantReason: "target accuracy 0.7 reached", wantRounds: 2, wantLabels: 6,
			promoted: []bool{true, true}, batchSizes: []int{3, 3}, finalModel: "mem://models/round-0002",
		},
		{
			name:     "target metric counts only promoted models",
			pool:     30,
			accuracy: map[string]float64{"mem://train/0001": 0.75, "mem://train/0002": 0.85},
			setup: func(c *RunConfig) {
				c.Budget = Budget{MaxRounds: 10}
				c.Stop.TargetMetric = 0.7
				c.Promotion.MinDelta = 0.3
			},
			// Round 1's 0.75 gains only 0.25 over 0.5 and is not promoted,
			// so the target is not reached; round 2's 0.85 is.
			wantReason: "target accuracy 0.7 reached", wantRounds: 2, wantLabels: 6,
			promoted: []bool{false, true}, batchSizes: []int{3, 3}, finalModel: "mem://models/round-0002",
		},
		{
			name:     "patience",
			pool:     30,
			accuracy: map[string]float64{"mem://train/0001": 0.6, "mem://train/0002": 0.55, "mem://train/0003": 0.58},
			setup:    func(c *RunConfig) { c.Budget = Budget{MaxRounds: 10}; c.Stop.Patience = 2 },
			// Rounds 2 and 3 do not beat round 1's 0.6.
			wantReason: "no promotion for 2 rounds", wantRounds: 3, wantLabels: 9,
			promoted: []bool{true, false, false}, batchSizes: []int{3, 3, 3}, finalModel: "mem://models/round-0001",
		},
		{
			name:  "pool exhausted",
			pool:  4,
			setup: func(c *RunConfig) { c.Budget = Budget{MaxRounds: 10}; c.MinLabels = 1 },
			// 3 items, then the last one, then nothing is left to select.
			wantReason: "pool exhausted: no unlabelled item left to select", wantRounds: 2, wantLabels: 4,
			promoted: []bool{true, true}, batchSizes: []int{3, 1}, finalModel: "mem://models/round-0002",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(tc.pool)
			for k, v := range tc.accuracy {
				l.accuracy[k] = v
			}
			cfg := baseConfig()
			tc.setup(&cfg)
			var outs []*outcome
			res, _ := chain(t, cfg, l, annotateEveryRound(t, &outs))
			mustAccept(t, outs)
			if res.StopReason != tc.wantReason {
				t.Errorf("stop reason %q, want %q", res.StopReason, tc.wantReason)
			}
			if res.Rounds != tc.wantRounds || res.LabelsTotal != tc.wantLabels {
				t.Errorf("%d rounds, %d labels; want %d and %d", res.Rounds, res.LabelsTotal, tc.wantRounds, tc.wantLabels)
			}
			if got := promotedOf(res.History); !equalBools(got, tc.promoted) {
				t.Errorf("promoted per round %v, want %v", got, tc.promoted)
			}
			var sizes []int
			for _, p := range l.persisted {
				sizes = append(sizes, len(p.Decisions))
			}
			if len(sizes) != len(tc.batchSizes) {
				t.Fatalf("persisted rounds with %v items, want %v", sizes, tc.batchSizes)
			}
			for i := range sizes {
				if sizes[i] != tc.batchSizes[i] {
					t.Errorf("persisted rounds with %v items, want %v", sizes, tc.batchSizes)
					break
				}
			}
			if len(l.trained) != tc.wantRounds {
				t.Errorf("%d fine-tunes, want one per round (%d)", len(l.trained), tc.wantRounds)
			}
			if res.ModelURI != tc.finalModel {
				t.Errorf("final model %q, want %q", res.ModelURI, tc.finalModel)
			}
		})
	}
}

// TestTieUnderQuorum: with a quorum of 2, two annotators who disagree on
// an item close it by quorum with a tie (the smaller answer as label,
// counted in the round's ties); with a quorum of 3, two votes against one
// decide without a tie.
func TestTieUnderQuorum(t *testing.T) {
	tests := []struct {
		name      string
		quorum    int
		votes     []string // per annotator, for the first item; the others all say "cat"
		wantLabel string
		wantTie   bool
	}{
		{"two disagree", 2, []string{"owl", "hen"}, "hen", true},
		{"two against one", 3, []string{"dog", "cat", "dog"}, "dog", false},
		{"three-way", 3, []string{"owl", "elk", "hen"}, "elk", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(20)
			cfg := baseConfig()
			cfg.Quorum = tc.quorum
			var outs []*outcome
			var first string
			res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
				env.RegisterDelayedCallback(func() {
					b := batchOf(t, env)
					first = b.Items[0].ItemID
					for a, v := range tc.votes {
						ann := string(rune('a' + a))
						outs = append(outs, vote(env, b.Round, "ann-"+ann, first, v))
						for _, it := range b.Items[1:] {
							outs = append(outs, vote(env, b.Round, "ann-"+ann, it.ItemID, "cat"))
						}
					}
				}, 24*time.Hour)
			})
			mustAccept(t, outs)
			if len(res.History) != 1 || res.History[0].EndedBy != "quorum" {
				t.Fatalf("history %+v, want one round ended by quorum", res.History)
			}
			wantTies := 0
			if tc.wantTie {
				wantTies = 1
			}
			if res.History[0].Ties != wantTies {
				t.Errorf("round ties %d, want %d", res.History[0].Ties, wantTies)
			}
			if len(l.persisted) != 1 {
				t.Fatalf("%d persisted rounds", len(l.persisted))
			}
			for _, d := range l.persisted[0].Decisions {
				switch {
				case d.ItemID == first:
					if d.Label != tc.wantLabel || d.Tie != tc.wantTie || d.Answers != len(tc.votes) {
						t.Errorf("disputed item %+v, want label %q, tie %v, %d answers", d, tc.wantLabel, tc.wantTie, len(tc.votes))
					}
				case d.Label != "cat" || d.Tie:
					t.Errorf("item %+v, want a clear cat", d)
				}
			}
		})
	}
}
