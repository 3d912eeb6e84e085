package sim

import (
	"math"
	"testing"
)

func TestSignTestP(t *testing.T) {
	tests := []struct {
		wins, losses int
		want         float64
	}{
		{5, 0, 0.0625},               // 2 · (1/2)^5
		{0, 5, 0.0625},               // symmetric
		{4, 1, 0.375},                // 2 · (1 + 5)/32
		{3, 2, 1},                    // 2 · (1 + 5 + 10)/32 = 1
		{6, 1, 0.125},                // 2 · (1 + 7)/128
		{10, 0, 0.001953125},         // 2/1024
		{8, 2, 0.109375},             // 2 · (1 + 10 + 45)/1024
		{0, 0, 1},                    // no untied pair
		{1, 0, 1},                    // 2 · 1/2
		{20, 0, 1.9073486328125e-06}, // 2/2^20
	}
	for _, tt := range tests {
		if got := SignTestP(tt.wins, tt.losses); math.Abs(got-tt.want) > 1e-6*tt.want {
			t.Errorf("SignTestP(%d, %d) = %v, want %v", tt.wins, tt.losses, got, tt.want)
		}
	}
}

func TestBootstrapMeanCI(t *testing.T) {
	tests := []struct {
		name   string
		x      []float64
		lo, hi [2]float64 // bounds on the interval's ends
	}{
		// Every resample of a constant has the same mean.
		{"constant", []float64{0.2, 0.2, 0.2}, [2]float64{0.2, 0.2}, [2]float64{0.2, 0.2}},
		// Resample means of {0, 1} are 0, 1/2 or 1 with probabilities
		// 1/4, 1/2, 1/4: the 2.5 % and 97.5 % quantiles are 0 and 1.
		{"two points", []float64{0, 1}, [2]float64{0, 0}, [2]float64{1, 1}},
		// Five wins of 0.01..0.05: the mean 0.03; a resample's mean is
		// within [0.01, 0.05], and P(mean ≤ 0.014) = P(4 or 5 draws of
		// 0.01, rest ≤ 0.02 …) is well under 2.5 %, so the ends lie
		// strictly inside and around the mean.
		{"five positive", []float64{0.01, 0.02, 0.03, 0.04, 0.05}, [2]float64{0.014, 0.026}, [2]float64{0.034, 0.046}},
		// One value: the resamples are all that value.
		{"single", []float64{-0.3}, [2]float64{-0.3, -0.3}, [2]float64{-0.3, -0.3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := BootstrapMeanCI(tt.x, 0.95, 10000, 7)
			if lo < tt.lo[0]-1e-12 || lo > tt.lo[1]+1e-12 || hi < tt.hi[0]-1e-12 || hi > tt.hi[1]+1e-12 {
				t.Errorf("CI [%v, %v], want low in %v and high in %v", lo, hi, tt.lo, tt.hi)
			}
			lo2, hi2 := BootstrapMeanCI(tt.x, 0.95, 10000, 7)
			if lo2 != lo || hi2 != hi {
				t.Error("same seed, different interval")
			}
		})
	}
	if lo, hi := BootstrapMeanCI(nil, 0.95, 100, 1); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Error("empty input does not give NaN")
	}
}

func TestPaired(t *testing.T) {
	d, err := Paired([]int64{1, 2, 3, 4}, []float64{0.5, 0.4, 0.3, 0.2}, []float64{0.1, 0.4, 0.1, 0.3}, BootstrapOptions{Resamples: 1000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Diffs 0.4, 0, 0.2, −0.1: mean 0.125, 2 wins, 1 loss, 1 tie, p = 1.
	if d.Wins != 2 || d.Losses != 1 || d.Ties != 1 || math.Abs(d.Mean-0.125) > 1e-12 || d.SignP != 1 {
		t.Errorf("Paired = %+v", d)
	}
	if !(d.CILow >= -0.1 && d.CILow <= d.Mean && d.CIHigh >= d.Mean && d.CIHigh <= 0.4) {
		t.Errorf("CI [%v, %v] not within the diffs around the mean", d.CILow, d.CIHigh)
	}
	if _, err := Paired([]int64{1}, []float64{1, 2}, []float64{1}, BootstrapOptions{}); err == nil {
		t.Error("mismatched lengths accepted")
	}
}

func TestFreqRanksAndBought(t *testing.T) {
	gold := map[string][]string{
		"a": {"the"}, "b": {"The"}, "c": {"the"}, // "the" ×3: rank 1
		"d": {"dog", "cat"}, "e": {"dog"}, // dog ×2: rank 2
		"f": {"cat"}, // cat ×2: rank 2 too
		"g": {"emu"}, // emu ×1: rank 4
	}
	ranks := FreqRanks(gold)
	want := map[string]int{"the": 1, "dog": 2, "cat": 2, "emu": 4}
	for w, r := range want {
		if ranks[w] != r {
			t.Errorf("rank of %q = %d, want %d", w, ranks[w], r)
		}
	}
	items := []Item{
		{ID: "d", Text: "a [MASK] and a [MASK] ran", Source: "x"}, // 4 context words
		{ID: "g", Text: "an [MASK].", Source: "y"},                // 1 ("[MASK]." is a blank)
	}
	pieces := func(text string, answers []string) []int {
		n := make([]int, len(answers))
		for i, w := range answers {
			n[i] = map[string]int{"dog": 1, "cat": 1, "emu": 2}[w]
		}
		return n
	}
	b := describeBought(items, gold, ranks, pieces)
	// Answers dog, cat, emu: one of three multi-piece; ranks (2+2+4)/3.
	if b.Items != 2 || b.ContextWords != 2.5 || math.Abs(b.MultiPiece-1.0/3) > 1e-12 ||
		math.Abs(b.FreqRank-8.0/3) > 1e-12 || b.Sources["x"] != 0.5 || b.Sources["y"] != 0.5 {
		t.Errorf("bought = %+v", b)
	}
	m := meanBought([]Bought{b, {Items: 4, ContextWords: 0.5, Sources: map[string]float64{"x": 1}}})
	if m.Items != 3 || m.ContextWords != 1.5 || m.Sources["x"] != 0.75 || m.Sources["y"] != 0.25 {
		t.Errorf("mean = %+v", m)
	}
}
