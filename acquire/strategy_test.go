package acquire

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func ids(sel []Selection) []string {
	out := make([]string, len(sel))
	for i, s := range sel {
		out[i] = s.ID
	}
	return out
}

func mustParse(t testing.TB, spec string) Strategy {
	t.Helper()
	s, err := Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%q): %v", spec, err)
	}
	return s
}

// small is a hand-made pool: ranks per measure are easy to read off.
func small() []Candidate {
	return []Candidate{
		{ID: "a", LeastConfidence: 0.1, Margin: 0.8, Entropy: 0.3, BALD: 0.05, Surprisal: 9, Embedding: []float32{1, 0}},
		{ID: "b", LeastConfidence: 0.7, Margin: 0.05, Entropy: 2.0, BALD: 0.01, Surprisal: 1, Embedding: []float32{0, 1}},
		{ID: "c", LeastConfidence: 0.5, Margin: 0.2, Entropy: 2.5, BALD: 0.40, Surprisal: 5, Embedding: []float32{-1, 0}},
		{ID: "d", LeastConfidence: 0.6, Margin: 0.05, Entropy: 1.0, BALD: 0.20, Surprisal: 7, Embedding: []float32{0, -1}},
	}
}

func TestUncertaintyStrategies(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		spec    string
		k       int
		exclude []string
		want    []string
		score0  float64
	}{
		{"least-confidence", 2, nil, []string{"b", "d"}, 0.7},
		{"lc", 4, nil, []string{"b", "d", "c", "a"}, 0.7},
		// b and d tie on margin 0.05: broken by ID.
		{"margin", 3, nil, []string{"b", "d", "c"}, 0.95},
		{"margin", 2, []string{"b"}, []string{"d", "c"}, 0.95},
		{"entropy", 2, nil, []string{"c", "b"}, 2.5},
		{"bald", 1, nil, []string{"c"}, 0.4},
		{"surprisal", 2, nil, []string{"a", "d"}, 9},
		// k larger than the pool returns everything eligible.
		{"entropy", 10, []string{"c", "zz"}, []string{"b", "d", "a"}, 2.0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/k=%d/ex=%v", tc.spec, tc.k, tc.exclude), func(t *testing.T) {
			sel, err := mustParse(t, tc.spec).Select(ctx, small(), tc.k, SelectOptions{Exclude: NewIDSet(tc.exclude...)})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(sel); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("selected %v, want %v", got, tc.want)
			}
			if !near(sel[0].Score, tc.score0, 1e-12) {
				t.Errorf("score of first = %v, want %v", sel[0].Score, tc.score0)
			}
			for i, s := range sel {
				if s.Rank != i+1 || small()[s.Index].ID != s.ID || s.Reason == "" {
					t.Errorf("selection %d = %+v", i, s)
				}
			}
		})
	}
}

func TestMarginTieBreakIndependentOfOrder(t *testing.T) {
	ctx := context.Background()
	cands := []Candidate{{ID: "z", Margin: 0.1}, {ID: "m", Margin: 0.1}, {ID: "a", Margin: 0.1}, {ID: "q", Margin: 0.3}}
	for trial := range 5 {
		r := rand.New(rand.NewPCG(uint64(trial), 1))
		r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		sel, err := NewUncertainty(Margin).Select(ctx, cands, 3, SelectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(sel); !reflect.DeepEqual(got, []string{"a", "m", "z"}) {
			t.Fatalf("order %v: got %v", cands, got)
		}
	}
}

func TestRandomSeeded(t *testing.T) {
	ctx := context.Background()
	pool := make([]Candidate, 200)
	for i := range pool {
		pool[i] = Candidate{ID: fmt.Sprintf("item-%03d", i)}
	}
	pick := func(seed int64, cands []Candidate) []string {
		sel, err := Random{}.Select(ctx, cands, 20, SelectOptions{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return ids(sel)
	}
	a := pick(1, pool)
	rev := slices.Clone(pool)
	slices.Reverse(rev)
	if b := pick(1, rev); !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, reversed order: %v vs %v", a, b)
	}
	if c := pick(2, pool); reflect.DeepEqual(a, c) {
		t.Errorf("seeds 1 and 2 chose the same batch %v", a)
	}
	// Roughly uniform: over many seeds each item is chosen about 10 % of the time.
	counts := make(map[string]int)
	for seed := range int64(300) {
		for _, id := range pick(seed, pool) {
			counts[id]++
		}
	}
	for id, n := range counts {
		if n < 10 || n > 60 { // mean 30
			t.Errorf("item %s chosen %d times in 300 batches (mean 30)", id, n)
		}
	}
	if len(counts) < 190 {
		t.Errorf("only %d of 200 items were ever chosen", len(counts))
	}
}

func TestKCenter2D(t *testing.T) {
	ctx := context.Background()
	// Three tight clusters in the plane; k-center with L2 must take one per cluster.
	pts := map[string][2]float32{
		"a1": {0, 0}, "a2": {0.1, 0}, "a3": {0, 0.2},
		"b1": {10, 0}, "b2": {10.1, 0},
		"c1": {0, 10}, "c2": {0, 10.1},
	}
	var cands []Candidate
	for id, p := range pts {
		cands = append(cands, Candidate{ID: id, Embedding: []float32{p[0], p[1]}})
	}
	kc := KCenter{Metric: L2}
	sel, err := kc.Select(ctx, cands, 3, SelectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Centroid (2.886, 2.9): closest is a3 (0,0.2) at 3.95 (a2: 4.02, a1: 4.09).
	// Then farthest from a3: b2 (10.1,0) at hypot(10.1, 0.2) = 10.10 (b1: 10.00, c2: 9.9).
	// Then farthest from {a3, b2}: c2 (0,10.1) at 9.9 (c1: 9.8).
	want := []string{"a3", "b2", "c2"}
	if got := ids(sel); !reflect.DeepEqual(got, want) {
		t.Fatalf("kcenter chose %v, want %v", got, want)
	}
	if !near(sel[1].Score, math.Hypot(10.1, 0.2), 1e-5) || !near(sel[2].Score, 9.9, 1e-5) || sel[0].Score != 0 {
		t.Errorf("scores %v %v %v", sel[0].Score, sel[1].Score, sel[2].Score)
	}
	// With a labelled point in cluster b as a centre, the picks avoid b.
	sel, err = kc.Select(ctx, cands, 2, SelectOptions{Labelled: [][]float32{{10, 0.05}}})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(sel)
	sort.Strings(got)
	if got[0][0] != 'a' || got[1][0] != 'c' {
		t.Errorf("with labelled centre in b, chose %v", ids(sel))
	}
	// Cosine: direction only; (1,0) and (100,1) are near duplicates.
	cos := []Candidate{
		{ID: "x", Embedding: []float32{1, 0}}, {ID: "x-dup", Embedding: []float32{100, 1}},
		{ID: "y", Embedding: []float32{0, 1}},
	}
	sel, err = KCenter{}.Select(ctx, cos, 2, SelectOptions{Labelled: [][]float32{{1, 0.001}}})
	if err != nil {
		t.Fatal(err)
	}
	if ids(sel)[0] != "y" || !near(sel[0].Score, 1-0.001/math.Hypot(1, 0.001), 1e-6) {
		t.Errorf("cosine chose %v scores %v", ids(sel), sel[0].Score)
	}
}

func TestKCenterCapSample(t *testing.T) {
	ctx := context.Background()
	pool := make([]Candidate, 300)
	for i := range pool {
		pool[i] = Candidate{ID: fmt.Sprintf("p%d", i), Embedding: []float32{float32(i % 17), float32(i % 13), 1}}
	}
	kc := KCenter{Metric: L2, Cap: 50}
	a, err := kc.Select(ctx, pool, 10, SelectOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(pool)
	slices.Reverse(rev)
	b, err := kc.Select(ctx, rev, 10, SelectOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids(a), ids(b)) {
		t.Errorf("capped kcenter depends on order: %v vs %v", ids(a), ids(b))
	}
	// k above the cap still returns k items.
	c, err := kc.Select(ctx, pool, 80, SelectOptions{Seed: 3})
	if err != nil || len(c) != 80 {
		t.Errorf("k=80 > cap=50: got %d items, err %v", len(c), err)
	}
}

func TestHybridAvoidsNearDuplicates(t *testing.T) {
	ctx := context.Background()
	// The five most uncertain items are near duplicates of two texts.
	cands := []Candidate{
		{ID: "dup1", Entropy: 3.0, Embedding: []float32{1, 0, 0}},
		{ID: "dup2", Entropy: 2.9, Embedding: []float32{1, 0.01, 0}},
		{ID: "dup3", Entropy: 2.8, Embedding: []float32{1, 0, 0.01}},
		{ID: "twin1", Entropy: 2.7, Embedding: []float32{0, 1, 0}},
		{ID: "twin2", Entropy: 2.6, Embedding: []float32{0.01, 1, 0}},
		{ID: "other", Entropy: 2.5, Embedding: []float32{0, 0, 1}},
		{ID: "calm", Entropy: 0.1, Embedding: []float32{-1, -1, 0}},
	}
	ent, err := mustParse(t, "entropy").Select(ctx, cands, 3, SelectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ent); !reflect.DeepEqual(got, []string{"dup1", "dup2", "dup3"}) {
		t.Fatalf("entropy chose %v", got)
	}
	h := mustParse(t, "hybrid(by=entropy,factor=2)")
	sel, err := h.Select(ctx, cands, 3, SelectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Shortlist of 6 (excludes calm); first centre the most uncertain, then diverse.
	if got := ids(sel); !reflect.DeepEqual(got, []string{"dup1", "other", "twin1"}) {
		t.Errorf("hybrid chose %v, want [dup1 other twin1]", got)
	}
	if sel[1].Score != 2.5 {
		t.Errorf("hybrid score = %v, want the entropy 2.5", sel[1].Score)
	}
	// With dup1 labelled and a shortlist of all 6 others, hybrid avoids the
	// dup cluster: calm (cosine distance 1+1/√2 from dup1), then other and
	// twin1 tie at distance 1 and the ID decides.
	sel, err = mustParse(t, "hybrid(factor=3)").Select(ctx, cands, 2, SelectOptions{Exclude: NewIDSet("dup1"), Labelled: [][]float32{{1, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(sel); !reflect.DeepEqual(got, []string{"calm", "other"}) {
		t.Errorf("hybrid with dup1 labelled chose %v, want [calm other]", got)
	}
}

func TestMix(t *testing.T) {
	ctx := context.Background()
	m := mustParse(t, "entropy:0.8,random:0.2").(Mix)
	if q := m.Quotas(10); !reflect.DeepEqual(q, []int{8, 2}) {
		t.Errorf("quotas(10) = %v", q)
	}
	if q := m.Quotas(3); !reflect.DeepEqual(q, []int{2, 1}) {
		t.Errorf("quotas(3) = %v", q)
	}
	if q := mustParse(t, "entropy:1,margin:1,random:1").(Mix).Quotas(4); !reflect.DeepEqual(q, []int{2, 1, 1}) {
		t.Errorf("equal thirds of 4 = %v", q)
	}
	pool := make([]Candidate, 50)
	for i := range pool {
		pool[i] = Candidate{ID: fmt.Sprintf("i%02d", i), Entropy: float64(i)}
	}
	sel, err := m.Select(ctx, pool, 10, SelectOptions{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 10 {
		t.Fatalf("got %d items", len(sel))
	}
	for i, s := range sel[:8] {
		if want := fmt.Sprintf("i%02d", 49-i); s.ID != want || !strings.HasPrefix(s.Reason, "mix[entropy]") {
			t.Errorf("part 1 item %d = %+v, want %s", i, s, want)
		}
	}
	for _, s := range sel[8:] {
		if !strings.HasPrefix(s.Reason, "mix[random]") {
			t.Errorf("part 2 item %+v", s)
		}
	}
	// Shortfall: only 3 eligible, all returned once.
	sel, err = m.Select(ctx, pool[:5], 10, SelectOptions{Exclude: NewIDSet("i00", "i01")})
	if err != nil || len(sel) != 3 {
		t.Errorf("shortfall: %v, %v", ids(sel), err)
	}
}

func TestParse(t *testing.T) {
	for _, spec := range []string{
		"random", "least-confidence", "margin", "entropy", "bald", "surprisal", "kcenter", "hybrid",
		"kcenter(metric=l2,cap=500)", "hybrid(by=margin,factor=4,metric=l2)",
		"entropy:0.8,random:0.2", "hybrid(by=bald,factor=3,metric=cosine):3,random:1",
		"density", "target", "density(by=margin,beta=2)", "target(by=lc,beta=0.5)", "density:0.5,random:0.5",
		"target(by=random,beta=8)", "density(by=random)",
		"domain", "domain(by=random)", "domain(by=random,beta=0.5)", "domain(by=random):0.5,entropy:0.5",
	} {
		s := mustParse(t, spec)
		again := mustParse(t, s.Name())
		if !reflect.DeepEqual(s, again) {
			t.Errorf("Parse(%q).Name() = %q does not round trip", spec, s.Name())
		}
	}
	if n := mustParse(t, "hybrid(factor=10)").Name(); n != "hybrid" {
		t.Errorf("default hybrid name = %q", n)
	}
	if n := mustParse(t, "target(by=entropy,beta=1)").Name(); n != "target" {
		t.Errorf("default target name = %q", n)
	}
	bad := map[string]string{
		"":                          "valid: random, least-confidence",
		"uncertainty":               "valid: random, least-confidence, margin, entropy, bald, kcenter, hybrid, surprisal, density, target, domain",
		"density(beta=0)":           "positive number",
		"density(beta=x)":           "positive number",
		"target(by=foo)":            "unknown measure",
		"density(cap=3)":            "unknown parameter",
		"entropy(x=1)":              "takes no parameters",
		"kcenter(metric=manhat)":    "valid: cosine, l2",
		"kcenter(cap=0)":            "positive integer",
		"hybrid(by=foo)":            "unknown measure",
		"hybrid(depth=2)":           "unknown parameter",
		"entropy:0.8,random:abc":    "not a number",
		"entropy:0.8,random:-1":     "positive number",
		"entropy:0.8,,random:0.2":   "empty term",
		"kcenter(metric=l2":         "unbalanced",
		"entropy:0.5,foo:0.5":       "unknown strategy \"foo\"",
		"domain(by=margin)":         "by=random only",
		"domain(beta=2)":            "add by=random",
		"domain(by=random,beta=-1)": "positive number",
		"domain(cap=1)":             "unknown parameter",
	}
	for spec, want := range bad {
		_, err := Parse(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) err = %v, want containing %q", spec, err, want)
		}
	}
}

func TestSelectValidation(t *testing.T) {
	ctx := context.Background()
	good := small()
	nanCands := small()
	nanCands[2].Entropy = math.NaN()
	dup := small()
	dup[3].ID = "a"
	noID := small()
	noID[1].ID = ""
	dims := small()
	dims[2].Embedding = []float32{1, 2, 3}
	noEmb := small()
	noEmb[0].Embedding = nil
	nanEmb := small()
	nanEmb[1].Embedding = []float32{float32(math.NaN()), 0}
	zero := small()
	zero[1].Embedding = []float32{0, 0}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		spec  string
		cands []Candidate
		k     int
		opts  SelectOptions
		want  string
	}{
		{"k zero", ctx, "entropy", good, 0, SelectOptions{}, "must be positive"},
		{"k negative", ctx, "random", good, -3, SelectOptions{}, "must be positive"},
		{"NaN entropy", ctx, "entropy", nanCands, 2, SelectOptions{}, `candidate "c": entropy is NaN`},
		{"NaN in unused field is fine for margin", ctx, "margin", nanCands, 2, SelectOptions{}, ""},
		{"NaN excluded is fine", ctx, "entropy", nanCands, 2, SelectOptions{Exclude: NewIDSet("c")}, ""},
		{"duplicate ID", ctx, "random", dup, 2, SelectOptions{}, `duplicate ID "a"`},
		{"empty ID", ctx, "margin", noID, 2, SelectOptions{}, "empty ID"},
		{"embedding dims", ctx, "kcenter", dims, 2, SelectOptions{}, "3 dimensions, others have 2"},
		{"labelled dims", ctx, "hybrid", good, 2, SelectOptions{Labelled: [][]float32{{1, 2, 3}}}, "labelled embedding 0 has 3 dimensions"},
		{"missing embedding", ctx, "kcenter", noEmb, 2, SelectOptions{}, `candidate "a": no embedding`},
		{"NaN embedding", ctx, "hybrid", nanEmb, 2, SelectOptions{}, `candidate "b": embedding: component 0 is NaN`},
		{"zero vector cosine", ctx, "kcenter", zero, 2, SelectOptions{}, `candidate "b": embedding: zero vector`},
		{"zero vector l2 fine", ctx, "kcenter(metric=l2)", zero, 2, SelectOptions{}, ""},
		{"cancelled", cancelled, "entropy", good, 2, SelectOptions{}, "context canceled"},
		{"mix part error", ctx, "entropy:1,kcenter:1", noEmb, 2, SelectOptions{}, "mix part 1 (kcenter)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := mustParse(t, tc.spec).Select(tc.ctx, tc.cands, tc.k, tc.opts)
			if tc.want == "" {
				if err != nil || len(sel) != 2 {
					t.Fatalf("got %v, %v; want 2 items", ids(sel), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

// randomPool builds n candidates with random scores (some ties) and 4-D embeddings.
func randomPool(r *rand.Rand, n int) []Candidate {
	pool := make([]Candidate, n)
	for i := range pool {
		pool[i] = Candidate{
			ID:              fmt.Sprintf("c%d", r.IntN(1<<30)) + fmt.Sprint(i),
			LeastConfidence: float64(r.IntN(5)) / 5,
			Margin:          float64(r.IntN(5)) / 5,
			Entropy:         r.Float64() * 3,
			BALD:            float64(r.IntN(3)),
			Surprisal:       r.NormFloat64(),
			Embedding:       []float32{r.Float32() + 0.1, r.Float32(), float32(r.IntN(2)), r.Float32()},
		}
	}
	return pool
}

// TestSelectProperties checks every strategy on random pools: never an
// excluded or duplicate ID, exactly min(k, eligible) items, ranks 1..n,
// indices pointing at the right candidates, and the same batch for a
// shuffled pool.
func TestSelectProperties(t *testing.T) {
	ctx := context.Background()
	specs := append(StrategyNames(), "kcenter(metric=l2,cap=7)", "hybrid(by=margin,factor=2,metric=l2)",
		"entropy:0.8,random:0.2", "kcenter:1,margin:2,hybrid:1")
	r := rand.New(rand.NewPCG(42, 7))
	for trial := range 40 {
		n := r.IntN(30)
		pool := randomPool(r, n)
		exclude := NewIDSet()
		for _, c := range pool {
			if r.IntN(4) == 0 {
				exclude[c.ID] = struct{}{}
			}
		}
		exclude["not-in-pool"] = struct{}{}
		var labelled [][]float32
		for range r.IntN(3) {
			labelled = append(labelled, []float32{r.Float32(), r.Float32(), 1, r.Float32()})
		}
		k := 1 + r.IntN(12)
		avail := 0
		for _, c := range pool {
			if !exclude.Has(c.ID) {
				avail++
			}
		}
		target := [][]float32{{r.Float32(), r.Float32(), 1, r.Float32()}, {1, 0, 0, r.Float32()}}
		opts := SelectOptions{Seed: int64(trial), Exclude: exclude, Labelled: labelled, Target: target}
		for _, spec := range specs {
			s := mustParse(t, spec)
			sel, err := s.Select(ctx, pool, k, opts)
			if err != nil {
				t.Fatalf("trial %d %s: %v", trial, spec, err)
			}
			if len(sel) != min(k, avail) {
				t.Fatalf("trial %d %s: %d items, want min(%d, %d)", trial, spec, len(sel), k, avail)
			}
			seen := map[string]bool{}
			for i, x := range sel {
				if exclude.Has(x.ID) || seen[x.ID] || x.Rank != i+1 || pool[x.Index].ID != x.ID || math.IsNaN(x.Score) || math.IsInf(x.Score, 0) {
					t.Fatalf("trial %d %s: bad selection %d %+v (excluded %v, dup %v)", trial, spec, i, x, exclude.Has(x.ID), seen[x.ID])
				}
				seen[x.ID] = true
			}
			shuffled := slices.Clone(pool)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again, err := s.Select(ctx, shuffled, k, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(sel), ids(again)) {
				t.Fatalf("trial %d %s: order dependent: %v vs %v", trial, spec, ids(sel), ids(again))
			}
		}
	}
}
