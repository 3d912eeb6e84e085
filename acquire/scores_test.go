package acquire

import (
	"math"
	"strings"
	"testing"
)

const tol = 1e-12

func near(a, b, eps float64) bool { return math.Abs(a-b) <= eps }

func TestProbScores(t *testing.T) {
	ln2 := math.Log(2)
	tests := []struct {
		name string
		p    []float64
		want Scores
	}{
		{"half-quarter-quarter", []float64{0.5, 0.25, 0.25}, Scores{LeastConfidence: 0.5, Margin: 0.25, Entropy: 1.5 * ln2}},
		{"certain with zeros (0 log 0 = 0)", []float64{0, 1, 0}, Scores{LeastConfidence: 0, Margin: 1, Entropy: 0}},
		{"uniform 4", []float64{0.25, 0.25, 0.25, 0.25}, Scores{LeastConfidence: 0.75, Margin: 0, Entropy: 2 * ln2}},
		{"unsorted", []float64{0.1, 0.2, 0.7}, Scores{LeastConfidence: 0.3, Margin: 0.5,
			Entropy: -(0.1*math.Log(0.1) + 0.2*math.Log(0.2) + 0.7*math.Log(0.7))}},
		{"single", []float64{1}, Scores{LeastConfidence: 0, Margin: 1, Entropy: 0}},
		{"tied top", []float64{0.4, 0.4, 0.2}, Scores{LeastConfidence: 0.6, Margin: 0,
			Entropy: -(0.8*math.Log(0.4) + 0.2*math.Log(0.2))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ProbScores(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got.LeastConfidence, tc.want.LeastConfidence, tol) || !near(got.Margin, tc.want.Margin, tol) || !near(got.Entropy, tc.want.Entropy, tol) {
				t.Errorf("ProbScores(%v) = %+v, want %+v", tc.p, got, tc.want)
			}
			// float32 input gives the same within float32 rounding
			p32 := make([]float32, len(tc.p))
			for i, v := range tc.p {
				p32[i] = float32(v)
			}
			g32, err := ProbScores(p32)
			if err != nil {
				t.Fatal(err)
			}
			if !near(g32.Entropy, tc.want.Entropy, 1e-6) || !near(g32.Margin, tc.want.Margin, 1e-6) {
				t.Errorf("float32: %+v, want %+v", g32, tc.want)
			}
			// logits = log p give the same scores through the softmax
			logits := make([]float64, len(tc.p))
			for i, v := range tc.p {
				logits[i] = math.Log(v) + 3 // shift invariance
			}
			gl, err := LogitScores(logits)
			if err != nil {
				t.Fatal(err)
			}
			if !near(gl.LeastConfidence, tc.want.LeastConfidence, 1e-12) || !near(gl.Margin, tc.want.Margin, 1e-12) || !near(gl.Entropy, tc.want.Entropy, 1e-12) {
				t.Errorf("LogitScores = %+v, want %+v", gl, tc.want)
			}
		})
	}
}

func TestProbScoresErrors(t *testing.T) {
	tests := []struct {
		name string
		p    []float64
		want string
	}{
		{"empty", nil, "empty"},
		{"negative", []float64{1.5, -0.5}, "entry 1"},
		{"nan", []float64{math.NaN(), 1}, "entry 0"},
		{"inf", []float64{math.Inf(1), 0}, "entry 0"},
		{"sum", []float64{0.5, 0.4}, "sum to 0.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ProbScores(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestLogitScores(t *testing.T) {
	// Large logits must not overflow; -Inf entries have probability 0.
	got, err := LogitScores([]float32{1000, 1000, float32(math.Inf(-1))})
	if err != nil {
		t.Fatal(err)
	}
	want := Scores{LeastConfidence: 0.5, Margin: 0, Entropy: math.Log(2)}
	if !near(got.LeastConfidence, want.LeastConfidence, tol) || !near(got.Margin, want.Margin, tol) || !near(got.Entropy, want.Entropy, 1e-12) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	one, err := LogitScores([]float64{-2})
	if err != nil || one.Margin != 1 || one.LeastConfidence != 0 || one.Entropy != 0 {
		t.Errorf("single logit: %+v, %v", one, err)
	}
	for _, bad := range [][]float64{nil, {math.NaN()}, {math.Inf(1), 0}, {math.Inf(-1), math.Inf(-1)}} {
		if _, err := LogitScores(bad); err == nil {
			t.Errorf("LogitScores(%v): no error", bad)
		}
	}
}

func TestTopKScores(t *testing.T) {
	// Full distribution given as top-k: exact.
	full, err := TopKScores([]float64{0.25, 0.5, 0.25}, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !near(full.Entropy, 1.5*math.Log(2), tol) || !near(full.Margin, 0.25, tol) || !near(full.LeastConfidence, 0.5, tol) {
		t.Errorf("full: %+v", full)
	}
	// Unnormalised weights with the partition sum; rest 0.2 spread over 4 tokens
	// of 0.05 each: exact when the rest is uniform.
	p := []float64{0.5, 0.3, 0.05, 0.05, 0.05, 0.05}
	want, _ := ProbScores(p)
	got, err := TopKScores([]float32{10, 6}, 20, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !near(got.Entropy, want.Entropy, 1e-9) || !near(got.Margin, 0.2, 1e-9) || !near(got.LeastConfidence, 0.5, 1e-9) {
		t.Errorf("uniform rest: got %+v, want %+v", got, want)
	}
	// Non-uniform rest: an upper bound.
	q := []float64{0.5, 0.3, 0.19, 0.01}
	exact, _ := ProbScores(q)
	ub, err := TopKScores(q[:2], 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if ub.Entropy < exact.Entropy {
		t.Errorf("top-k entropy %v below exact %v", ub.Entropy, exact.Entropy)
	}
	bad := []struct {
		top   []float64
		total float64
		vocab int
	}{
		{nil, 1, 3}, {[]float64{0.5}, 1, 3}, {[]float64{0.5, 0.4}, 1, 1}, {[]float64{0.7, 0.6}, 1, 5},
		{[]float64{0.5, 0.4}, 0, 5}, {[]float64{0.5, math.NaN()}, 1, 5},
	}
	for _, b := range bad {
		if _, err := TopKScores(b.top, b.total, b.vocab); err == nil {
			t.Errorf("TopKScores(%v, %v, %d): no error", b.top, b.total, b.vocab)
		}
	}
}

func TestBALDScore(t *testing.T) {
	ln2 := math.Log(2)
	tests := []struct {
		name    string
		samples [][]float64
		want    float64
	}{
		{"disagreeing certain samples", [][]float64{{1, 0}, {0, 1}}, ln2},
		{"identical samples", [][]float64{{0.3, 0.7}, {0.3, 0.7}, {0.3, 0.7}}, 0},
		{"one sample", [][]float64{{0.5, 0.5}}, 0},
		// mean (0.75, 0.25): H = -(.75 ln .75 + .25 ln .25); samples H = 0 and ln 2.
		{"mixed", [][]float64{{1, 0}, {0.5, 0.5}}, -(0.75*math.Log(0.75) + 0.25*math.Log(0.25)) - ln2/2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BALDScore(tc.samples)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tc.want, tol) {
				t.Errorf("BALD = %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range [][][]float64{nil, {{}}, {{0.5, 0.5}, {1}}, {{0.5, math.NaN()}}, {{-1, 2}}} {
		if _, err := BALDScore(bad); err == nil {
			t.Errorf("BALDScore(%v): no error", bad)
		}
	}
}

func TestAggregate(t *testing.T) {
	masks := []Scores{
		{LeastConfidence: 0.2, Margin: 0.6, Entropy: 1, BALD: 0.1},
		{LeastConfidence: 0.6, Margin: 0.1, Entropy: 2, BALD: 0.3},
	}
	tests := []struct {
		agg  Aggregation
		want Scores
	}{
		{AggregateMean, Scores{LeastConfidence: 0.4, Margin: 0.35, Entropy: 1.5, BALD: 0.2}},
		// max = most uncertain mask per measure: smallest margin.
		{AggregateMax, Scores{LeastConfidence: 0.6, Margin: 0.1, Entropy: 2, BALD: 0.3}},
	}
	for _, tc := range tests {
		t.Run(tc.agg.String(), func(t *testing.T) {
			got, err := Aggregate(masks, tc.agg)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got.LeastConfidence, tc.want.LeastConfidence, tol) || !near(got.Margin, tc.want.Margin, tol) ||
				!near(got.Entropy, tc.want.Entropy, tol) || !near(got.BALD, tc.want.BALD, tol) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			agg, err := ParseAggregation(tc.agg.String())
			if err != nil || agg != tc.agg {
				t.Errorf("ParseAggregation(%q) = %v, %v", tc.agg, agg, err)
			}
		})
	}
	if _, err := Aggregate(nil, AggregateMean); err == nil {
		t.Error("no masks: no error")
	}
	if _, err := Aggregate(masks, Aggregation(9)); err == nil {
		t.Error("bad aggregation: no error")
	}
	if _, err := Aggregate([]Scores{{Entropy: math.NaN()}}, AggregateMax); err == nil {
		t.Error("NaN: no error")
	}
	if _, err := ParseAggregation("median"); err == nil || !strings.Contains(err.Error(), "mean, max") {
		t.Errorf("ParseAggregation(median) err = %v", err)
	}
}

func TestScoreHelpersDoNotAllocate(t *testing.T) {
	p := make([]float32, 30522)
	for i := range p {
		p[i] = 1 / float32(len(p))
	}
	samples := [][]float32{p, p, p}
	masks := []Scores{{}, {}}
	allocs := testing.AllocsPerRun(5, func() {
		_, _ = ProbScores(p)
		_, _ = LogitScores(p)
		_, _ = TopKScores(p[:5], 1, len(p))
		_, _ = BALDScore(samples)
		_, _ = Aggregate(masks, AggregateMax)
	})
	if allocs != 0 {
		t.Errorf("score helpers allocate %v times per call", allocs)
	}
}

func BenchmarkProbScores(b *testing.B) {
	p := make([]float32, 30522)
	for i := range p {
		p[i] = 1 / float32(len(p))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ProbScores(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLogitScores(b *testing.B) {
	l := make([]float32, 30522)
	for i := range l {
		l[i] = float32(i%97) / 10
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LogitScores(l); err != nil {
			b.Fatal(err)
		}
	}
}
