package dataset

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestDomainScorer(t *testing.T) {
	target := []string{"and the lord said unto moses", "the lord spake unto aaron [MASK]"}
	corpus := []string{
		"he stood at the [MASK] of the stage",
		"his cries were [MASK]",
		"and the lord said unto [MASK]",
		"the [MASK] said it was late",
	}
	d, err := NewDomainScorer(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range corpus {
		d.Add(c)
	}
	// Worked by hand: the target has unto 2 of 11 words; the corpus unto
	// 1 of 20; vocabulary: the target's 8 words, plus the corpus words
	// not in it (he stood at of stage his cries were it was late = 11),
	// plus 1. "unto": log((½·2/11 + ½·pc)/pc) with pc = 2/(20+20).
	// "stage", not in the target: log(½).
	pc := 2.0 / (20 + 20)
	want := (2*math.Log((0.5*2/11+0.5*pc)/pc) + math.Log(0.5)) / 3
	if got := d.Score("unto [MASK] UNTO stage"); math.Abs(got-want) > 1e-12 {
		t.Errorf("Score(unto unto stage) = %v, want %v", got, want)
	}
	if got := d.Evidence("unto [MASK] UNTO stage"); math.Abs(got-3*want) > 1e-12 {
		t.Errorf("Evidence(unto unto stage) = %v, want %v (Score × 3 words)", got, 3*want)
	}
	// A word neither model has seen counts like any word the target
	// lacks.
	if got := d.Score("zebra"); math.Abs(got-math.Log(0.5)) > 1e-12 {
		t.Errorf("Score(zebra) = %v, want log(1/2)", got)
	}
	tests := []struct {
		higher, lower string
	}{
		{"the lord spake unto moses", "he stood at the stage"},
		{"and the lord said unto [MASK]", "his cries were [MASK]"},
		{"aaron", "late"},
		// Rare off-target words do not outrank the target's words.
		{"said unto moses", "stood cries late"},
	}
	for _, tt := range tests {
		if h, l := d.Score(tt.higher), d.Score(tt.lower); !(h > l) {
			t.Errorf("Score(%q) = %v is not above Score(%q) = %v", tt.higher, h, tt.lower, l)
		}
	}
	// Evidence adds up: a long target-like text outranks a short one with
	// a higher mean, which Score ranks the other way.
	long, short := "and the lord said unto moses and the lord spake unto aaron at the stage", "unto"
	if !(d.Score(short) > d.Score(long)) || !(d.Evidence(long) > d.Evidence(short)) {
		t.Errorf("Score %v/%v, Evidence %v/%v (long/short): want the short text first by Score, the long one by Evidence",
			d.Score(long), d.Score(short), d.Evidence(long), d.Evidence(short))
	}
	for _, empty := range []string{"", "[MASK] [MASK]", " . , "} {
		if s := d.Score(empty); !math.IsInf(s, -1) {
			t.Errorf("Score(%q) = %v, want -Inf", empty, s)
		}
		if e := d.Evidence(empty); e != 0 {
			t.Errorf("Evidence(%q) = %v, want 0", empty, e)
		}
	}
	if _, err := NewDomainScorer([]string{"[MASK] .", ""}); err == nil || !strings.Contains(err.Error(), "no word") {
		t.Errorf("wordless target sample: err = %v", err)
	}
}

func TestTopShare(t *testing.T) {
	inf := math.Inf(-1)
	tests := []struct {
		name   string
		scores []float64
		share  float64
		keep   []bool
	}{
		{"half", []float64{3, 1, 4, 2}, 0.5, []bool{true, false, true, false}},
		{"rounds up", []float64{3, 1, 4, 2}, 0.3, []bool{true, false, true, false}},
		{"at least one", []float64{3, 1, 4, 2}, 0.01, []bool{false, false, true, false}},
		{"all", []float64{3, 1, 4, 2}, 1, []bool{true, true, true, true}},
		{"ties in stream order", []float64{2, 5, 2, 2, 1}, 0.4, []bool{true, true, false, false, false}},
		{"never wordless", []float64{inf, 1, inf}, 1, []bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := NewTopShare(tt.scores, tt.share)
			if err != nil {
				t.Fatal(err)
			}
			for pass := 0; pass < 2; pass++ {
				kept := 0
				for i, s := range tt.scores {
					if got := ts.Keep(s); got != tt.keep[i] {
						t.Errorf("pass %d: Keep(score %v, text %d) = %v, want %v", pass, s, i, got, tt.keep[i])
					}
					if tt.keep[i] {
						kept++
					}
				}
				if kept != ts.Kept {
					t.Errorf("Kept = %d, a pass keeps %d", ts.Kept, kept)
				}
				ts.Reset()
			}
		})
	}
	for _, tt := range []struct {
		scores []float64
		share  float64
		want   string
	}{
		{[]float64{1}, 0, "within (0, 1]"},
		{[]float64{1}, 1.5, "within (0, 1]"},
		{[]float64{1}, math.NaN(), "within (0, 1]"},
		{[]float64{inf}, 0.5, "none of the 1 texts"},
		{nil, 0.5, "none of the 0 texts"},
	} {
		if _, err := NewTopShare(tt.scores, tt.share); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewTopShare(%v, %v): err = %v, want %q", tt.scores, tt.share, err, tt.want)
		}
	}
}

// TestDomainScorerSmallSample: a target sample much smaller than the
// corpus still picks the target-like texts, not the texts of rare words
// (which add-one smoothing alone would rank first: every word the sample
// lacks would look as likely in the target as the rarest corpus word).
func TestDomainScorerSmallSample(t *testing.T) {
	target := []string{
		"and the lord said unto moses", "thou shalt not [MASK] unto thee",
		"and god saw the light", "the lord is my [MASK]",
	}
	var corpus []string
	for i := 0; i < 900; i++ {
		corpus = append(corpus, fmt.Sprintf("a w%da w%db [MASK]", i, i))
	}
	like := map[string]bool{}
	for i := 0; i < 100; i++ {
		s := fmt.Sprintf("and the lord spake unto v%d , saying [MASK]", i)
		corpus = append(corpus, s)
		like[s] = true
	}
	d, err := NewDomainScorer(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range corpus {
		d.Add(c)
	}
	scores := make([]float64, len(corpus))
	for i, c := range corpus {
		scores[i] = d.Score(c)
	}
	top, err := NewTopShare(scores, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i, c := range corpus {
		if top.Keep(scores[i]) && like[c] {
			hits++
		}
	}
	if hits != 100 {
		t.Errorf("the top 10%% holds %d of the 100 target-like texts, want all", hits)
	}
}
