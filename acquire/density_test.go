package acquire

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// densityCands are three items worked by hand: a and b point the same way,
// c is orthogonal to them; the embeddings are not unit length on purpose.
//
//	unit vectors a = b = (1, 0), c = (0, 1); their mean (2/3, 1/3)
//	pool similarity: a = b = 2/3, c = 1/3
//	entropy:         a = 1, b = 0.5, c = 1.8
func densityCands() []Candidate {
	return []Candidate{
		{ID: "a", Entropy: 1, Margin: 0.5, Embedding: []float32{3, 0}},
		{ID: "b", Entropy: 0.5, Margin: 0.1, Embedding: []float32{0.5, 0}},
		{ID: "c", Entropy: 1.8, Margin: 0.9, Embedding: []float32{0, 2}},
	}
}

func TestDensitySelect(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		spec   string
		opts   SelectOptions
		ids    []string
		scores []float64
	}{
		// entropy × similarity: a 1·2/3, c 1.8·1/3 = 0.6, b 0.5·2/3.
		// (Plain entropy would take c first.)
		{"density", "density", SelectOptions{}, []string{"a", "c", "b"}, []float64{2.0 / 3, 0.6, 1.0 / 3}},
		// beta 2: a 4/9, b 0.5·4/9 = 2/9, c 1.8/9 = 0.2.
		{"beta 2", "density(beta=2)", SelectOptions{}, []string{"a", "b", "c"}, []float64{4.0 / 9, 2.0 / 9, 0.2}},
		// margin, oriented 1 − margin: a 0.5·2/3, b 0.9·2/3 = 0.6, c 0.1/3.
		{"margin", "density(by=margin)", SelectOptions{}, []string{"b", "a", "c"}, []float64{0.6, 1.0 / 3, 0.1 / 3}},
		// Excluding b: the reference is a and c, mean (1/2, 1/2):
		// a 1·1/2, c 1.8·1/2 = 0.9.
		{"exclude", "density", SelectOptions{Exclude: NewIDSet("b")}, []string{"c", "a"}, []float64{0.9, 0.5}},
		// Target (0, 5) and (0, 1): unit mean (0, 1): only c is similar;
		// a and b score 0 and tie, broken by ID.
		{"target", "target", SelectOptions{Target: [][]float32{{0, 5}, {0, 1}}}, []string{"c", "a", "b"}, []float64{1.8, 0, 0}},
		// Target (1, 1)/√2 and (1, 0): unit mean ((1/√2 + 1)/2, (1/√2)/2)
		// = (0.853553, 0.353553): a and b 0.853553, c 0.353553;
		// scores a 0.853553, b 0.426777, c 1.8·0.353553 = 0.636396.
		{"target mixed", "target", SelectOptions{Target: [][]float32{{1, 1}, {2, 0}}}, []string{"a", "c", "b"}, []float64{0.8535534, 0.6363961, 0.4267767}},
		// Target pointing away from every candidate: similarity clamps
		// at 0 (no negative base for the power).
		{"opposite target", "target(beta=0.5)", SelectOptions{Target: [][]float32{{-1, -1}}}, []string{"a", "b", "c"}, []float64{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			sel, err := s.Select(ctx, densityCands(), 3, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(sel), tt.ids) {
				t.Fatalf("selected %v, want %v", ids(sel), tt.ids)
			}
			for i, p := range sel {
				if math.Abs(p.Score-tt.scores[i]) > 1e-6 || p.Rank != i+1 || !strings.Contains(p.Reason, "similarity") {
					t.Errorf("pick %d = %+v, want score %v", i, p, tt.scores[i])
				}
			}
			// Order of the candidates does not matter.
			rev := densityCands()
			rev[0], rev[2] = rev[2], rev[0]
			again, err := s.Select(ctx, rev, 3, tt.opts)
			if err != nil || !reflect.DeepEqual(ids(again), tt.ids) {
				t.Errorf("reversed input: %v, %v", ids(again), err)
			}
		})
	}
}

func TestDensityErrors(t *testing.T) {
	ctx := context.Background()
	noEmb := densityCands()
	noEmb[1].Embedding = nil
	tests := []struct {
		name, spec string
		cands      []Candidate
		opts       SelectOptions
		want       string
	}{
		{"no target", "target", densityCands(), SelectOptions{}, "no target embeddings"},
		{"target dims", "target", densityCands(), SelectOptions{Target: [][]float32{{1, 2, 3}}}, "3 dimensions"},
		{"target NaN", "target", densityCands(), SelectOptions{Target: [][]float32{{float32(math.NaN()), 1}}}, "component 0"},
		{"no embedding", "density", noEmb, SelectOptions{}, "no embedding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mustParse(t, tt.spec).Select(ctx, tt.cands, 2, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCentroidHelpers(t *testing.T) {
	// (3, 4) has unit vector (0.6, 0.8); (0, 0) counts as zero.
	c := UnitCentroid([][]float32{{3, 4}, {0, 0}, {1, 0}})
	want := []float64{(0.6 + 1) / 3, 0.8 / 3}
	for i := range want {
		if math.Abs(c[i]-want[i]) > 1e-12 {
			t.Fatalf("UnitCentroid = %v, want %v", c, want)
		}
	}
	// (0, 2) · centroid / 2 = 0.8/3.
	if s := CentroidSimilarity([]float32{0, 2}, c); math.Abs(s-0.8/3) > 1e-12 {
		t.Errorf("similarity %v, want %v", s, 0.8/3)
	}
	if s := CentroidSimilarity([]float32{0, 0}, c); s != 0 {
		t.Errorf("zero vector similarity %v", s)
	}
	if UnitCentroid(nil) != nil {
		t.Error("centroid of nothing")
	}
	for _, tt := range []struct{ u, sim, beta, want float64 }{
		{2, 0.5, 1, 1}, {2, 0.5, 2, 0.5}, {2, -0.5, 1, 0}, {0, 0.9, 1, 0}, {3, 0.25, 0.5, 1.5},
	} {
		if got := DensityScore(tt.u, tt.sim, tt.beta); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("DensityScore(%v, %v, %v) = %v, want %v", tt.u, tt.sim, tt.beta, got, tt.want)
		}
	}
}

func TestDensitySample(t *testing.T) {
	ctx := context.Background()
	// Embeddings at angle 0 and 60° from the target (1, 0): similarity 1
	// for "near*" and 0.5 for "far*"; "off" points away (similarity < 0,
	// weight 0).
	var cands []Candidate
	for i := 0; i < 50; i++ {
		cands = append(cands,
			Candidate{ID: fmt.Sprintf("near%02d", i), Entropy: 0, Embedding: []float32{2, 0}},
			Candidate{ID: fmt.Sprintf("far%02d", i), Entropy: 9, Embedding: []float32{1, float32(math.Sqrt(3))}})
	}
	cands = append(cands, Candidate{ID: "off", Entropy: 9, Embedding: []float32{-1, 0}})
	target := [][]float32{{1, 0}}
	tests := []struct {
		spec string
		// wantNear is the expected share of "near" items among single
		// draws: w_near / (w_near + w_far) = 1 / (1 + 0.5^beta).
		wantNear float64
	}{
		{"target(by=random)", 1 / 1.5},
		{"target(by=random,beta=2)", 1 / 1.25},
		{"target(by=random,beta=8)", 1 / (1 + math.Pow(0.5, 8))},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			const draws = 4000
			near := 0
			for seed := int64(0); seed < draws; seed++ {
				sel, err := s.Select(ctx, cands, 1, SelectOptions{Seed: seed, Target: target})
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(sel[0].ID, "near") {
					near++
				}
				if sel[0].ID == "off" {
					t.Fatalf("seed %d drew the zero-weight item", seed)
				}
			}
			// 4 standard errors of a share over 4,000 draws is at most 0.032.
			if got := float64(near) / draws; math.Abs(got-tt.wantNear) > 0.032 {
				t.Errorf("near share %.3f, want %.3f", got, tt.wantNear)
			}
		})
	}

	s := mustParse(t, "target(by=random,beta=2)")
	opts := SelectOptions{Seed: 7, Target: target, Exclude: NewIDSet("near00")}
	all, err := s.Select(ctx, cands, len(cands), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(cands)-1 || all[len(all)-1].ID != "off" {
		t.Fatalf("a full draw has %d items ending in %q; want %d ending in the zero-weight item", len(all), all[len(all)-1].ID, len(cands)-1)
	}
	for i, p := range all {
		if p.ID == "near00" || p.Rank != i+1 || math.IsInf(p.Score, 0) || math.IsNaN(p.Score) || !strings.Contains(p.Reason, "weighted random draw (seed 7)") {
			t.Fatalf("pick %d = %+v", i, p)
		}
	}
	rev := slices.Clone(cands)
	slices.Reverse(rev)
	again, err := s.Select(ctx, rev, 10, opts)
	if err != nil || !reflect.DeepEqual(ids(again), ids(all[:10])) {
		t.Errorf("reversed input drew %v (%v), want %v", ids(again), err, ids(all[:10]))
	}
	// Uncertainty plays no part: entropy NaN is not an error here.
	nan := []Candidate{{ID: "x", Entropy: math.NaN(), Embedding: []float32{1, 0}}}
	if _, err := s.Select(ctx, nan, 1, SelectOptions{Target: target}); err != nil {
		t.Errorf("NaN entropy: %v", err)
	}
}

// TestWeightedDrawKeyMergesShards draws 10 of 101 items three ways: with
// Density's weighted sample over the whole pool, and with the largest
// WeightedDrawKey keys of each of three shards merged, as the workflow's
// shards do; both give the same items. Weight 0 gets the lowest key.
func TestWeightedDrawKeyMergesShards(t *testing.T) {
	var cands []Candidate
	target := [][]float32{{1, 0}}
	for i := 0; i < 100; i++ {
		a := (10 + 0.8*float64(i)) * math.Pi / 180 // 10° to 89°: similarity cos a, below 1, so the whole-pool draw rescales it
		cands = append(cands, Candidate{ID: fmt.Sprintf("i%03d", i), Embedding: []float32{float32(math.Cos(a)), float32(math.Sin(a))}})
	}
	cands = append(cands, Candidate{ID: "off", Embedding: []float32{-1, 0}})
	const k, beta, seed = 10, TargetDrawBeta, 3
	whole, err := Density{Target: true, Sample: true, Beta: beta}.Select(context.Background(), cands, k, SelectOptions{Seed: seed, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	centroid := UnitCentroid(target)
	var merged []entry
	for shard := 0; shard < 3; shard++ {
		var keys []entry
		for i := shard; i < len(cands); i += 3 {
			sim := CentroidSimilarity(cands[i].Embedding, centroid)
			keys = append(keys, entry{score: WeightedDrawKey(seed, cands[i].ID, sim, beta), id: cands[i].ID})
		}
		merged = append(merged, topEntries(len(keys), k, func(i int) entry { return keys[i] })...)
	}
	merged = topEntries(len(merged), k, func(i int) entry { return merged[i] })
	var got []string
	for _, e := range merged {
		got = append(got, e.id)
	}
	if want := ids(whole); !reflect.DeepEqual(got, want) {
		t.Errorf("merged shard draw %v, whole-pool draw %v", got, want)
	}
	if k := WeightedDrawKey(seed, "off", -1, beta); k != -math.MaxFloat64 {
		t.Errorf("zero-weight key %v, want -MaxFloat64", k)
	}
	if k := WeightedDrawKey(seed, "i000", 0.98, beta); math.IsInf(k, 0) || k == -math.MaxFloat64 {
		t.Errorf("key of similarity 0.98 is %v, want a finite key above the zero-weight one", k)
	}
}

// TestWeightedDrawKeyLargeBeta checks that keys keep their order where the
// weight sim^beta itself underflows: similarity 0.2 against 0.1 at beta
// 500 (weights 1e-350 and 1e-500, both 0 in float64) must still rank the
// more similar item first for almost every draw, as its weight is 2^500
// times larger, and distinct items must not tie.
func TestWeightedDrawKeyLargeBeta(t *testing.T) {
	const beta = 500
	ahead := 0
	for i := 0; i < 200; i++ {
		hi := WeightedDrawKey(int64(i), "a", 0.2, beta)
		lo := WeightedDrawKey(int64(i), "b", 0.1, beta)
		if hi == lo {
			t.Fatalf("seed %d: keys tie at %v", i, hi)
		}
		if hi > lo {
			ahead++
		}
	}
	if ahead != 200 {
		t.Errorf("the 2^500 times heavier item ranked first in %d of 200 draws, want all", ahead)
	}
}
