package workflows

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRoundValidate(t *testing.T) {
	r := newRound(2, 2, []Candidate{{ItemID: "a"}, {ItemID: "b"}})
	r.open = true
	r.apply(LabelSubmission{Round: 2, Annotator: "p", Answers: []Answer{{ItemID: "a", Answer: "x"}}}, "update", time.Time{})
	r.skipped["b"] = true
	closed := newRound(3, 1, []Candidate{{ItemID: "a"}})
	tests := []struct {
		name string
		r    *round
		s    LabelSubmission
		want string
	}{
		{"no round", nil, LabelSubmission{Round: 1}, "no round is open"},
		{"closed round", closed, LabelSubmission{Round: 3, Annotator: "p", Answers: []Answer{{ItemID: "a", Answer: "x"}}}, "round 3 is closed"},
		{"wrong round", r, LabelSubmission{Round: 1, Annotator: "p"}, "wrong round"},
		{"unknown item", r, LabelSubmission{Round: 2, Annotator: "q", Answers: []Answer{{ItemID: "z", Answer: "x"}}}, "unknown item id"},
		{"empty answer", r, LabelSubmission{Round: 2, Annotator: "q", Answers: []Answer{{ItemID: "a", Answer: ""}}}, "empty answer"},
		{"already counted", r, LabelSubmission{Round: 2, Annotator: "p", Answers: []Answer{{ItemID: "a", Answer: "y"}}}, "already answered"},
		{"skipped item", r, LabelSubmission{Round: 2, Annotator: "q", Answers: []Answer{{ItemID: "b", Answer: "y"}}}, "was skipped"},
		{"valid", r, LabelSubmission{Round: 2, Annotator: "q", Answers: []Answer{{ItemID: "a", Answer: "y"}}}, ""},
	}
	for _, tc := range tests {
		err := tc.r.validate(tc.s)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestMajority(t *testing.T) {
	tests := []struct {
		votes map[string]int
		label string
		tie   bool
	}{
		{map[string]int{"cat": 2, "dog": 1}, "cat", false},
		{map[string]int{"dog": 1, "cat": 1}, "cat", true},
		{map[string]int{"b": 1, "a": 1, "c": 2}, "c", false},
		{map[string]int{"only": 1}, "only", false},
	}
	for _, tc := range tests {
		l, tie := majority(tc.votes)
		if l != tc.label || tie != tc.tie {
			t.Errorf("majority(%v) = %q, %v; want %q, %v", tc.votes, l, tie, tc.label, tc.tie)
		}
	}
}

func TestParseStrategyAndSplit(t *testing.T) {
	tests := []struct {
		in    string
		k     int
		quota []int
		err   string
	}{
		{"entropy", 5, []int{5}, ""},
		{"entropy=0.7,random=0.3", 10, []int{7, 3}, ""},
		{"margin=1,kcenter=1,random=1", 4, []int{2, 1, 1}, ""},
		{"density=1,target=1", 4, []int{2, 2}, ""},
		{"entropy,entropy", 1, nil, "twice"},
		{"bald", 1, []int{1}, ""},
		{"vibes", 1, nil, "unknown strategy"},
		{"random=-1", 1, nil, "positive"},
		{"", 1, nil, "empty"},
	}
	for _, tc := range tests {
		shares, err := ParseStrategy(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseStrategy(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseStrategy(%q): %v", tc.in, err)
		}
		q := splitK(shares, tc.k)
		sum := 0
		for i := range q {
			sum += q[i]
			if q[i] != tc.quota[i] {
				t.Errorf("splitK(%q, %d) = %v, want %v", tc.in, tc.k, q, tc.quota)
				break
			}
		}
		if sum != tc.k {
			t.Errorf("splitK(%q, %d) sums to %d", tc.in, tc.k, sum)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var c struct{ D Duration }
	for in, want := range map[string]time.Duration{`{"D":"72h"}`: 72 * time.Hour, `{"D":90}`: 90 * time.Second} {
		if err := json.Unmarshal([]byte(in), &c); err != nil || c.D.D() != want {
			t.Errorf("%s -> %v, %v; want %v", in, c.D.D(), err, want)
		}
	}
	if err := json.Unmarshal([]byte(`{"D":"soon"}`), &c); err == nil {
		t.Error("bad duration accepted")
	}
	b, _ := json.Marshal(Duration(time.Hour))
	if string(b) != `"1h0m0s"` {
		t.Errorf("marshal = %s", b)
	}
}

func TestDecide(t *testing.T) {
	m := func(v float64) map[string]float64 { return map[string]float64{"accuracy": v} }
	tests := []struct {
		name      string
		rule      PromotionRule
		cand, cur EvaluateOutput
		promote   bool
	}{
		{"better", PromotionRule{MinDelta: 0.01}, EvaluateOutput{Metrics: m(0.8)}, EvaluateOutput{Metrics: m(0.7)}, true},
		{"below delta", PromotionRule{MinDelta: 0.2}, EvaluateOutput{Metrics: m(0.8)}, EvaluateOutput{Metrics: m(0.7)}, false},
		{"no current", PromotionRule{}, EvaluateOutput{Metrics: m(0.8)}, EvaluateOutput{}, true},
		{"forgot too much", PromotionRule{ForgettingTolerance: 0.05}, EvaluateOutput{Metrics: m(0.8), Forgetting: m(0.6)}, EvaluateOutput{Metrics: m(0.7), Forgetting: m(0.9)}, false},
		{"lower is better", PromotionRule{Metric: "loss", LowerIsBetter: true}, EvaluateOutput{Metrics: map[string]float64{"loss": 1}}, EvaluateOutput{Metrics: map[string]float64{"loss": 2}}, true},
		{"missing metric", PromotionRule{Metric: "f1"}, EvaluateOutput{Metrics: m(0.8)}, EvaluateOutput{Metrics: m(0.7)}, false},
	}
	for _, tc := range tests {
		if got, note := Decide(tc.rule, tc.cand, tc.cur); got != tc.promote {
			t.Errorf("%s: promote=%v (%s), want %v", tc.name, got, note, tc.promote)
		}
	}
}
