package acquire

import (
	"context"
	"math"
	"reflect"
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
