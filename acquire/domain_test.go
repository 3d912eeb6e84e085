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

func TestDomainSelect(t *testing.T) {
	ctx := context.Background()
	cands := []Candidate{
		{ID: "a", Domain: 1, Entropy: 9},
		{ID: "b", Domain: 7.5},
		{ID: "c", Domain: -3},
		{ID: "d", Domain: 7.5},
		{ID: "e", Domain: 0, Entropy: math.NaN()}, // uncertainty plays no part
	}
	tests := []struct {
		name    string
		k       int
		exclude IDSet
		want    []string
	}{
		{"highest evidence first, ties by ID", 3, nil, []string{"b", "d", "a"}},
		{"all", 9, nil, []string{"b", "d", "a", "e", "c"}},
		{"excluded skipped", 2, NewIDSet("b"), []string{"d", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := Domain{}.Select(ctx, cands, tt.k, SelectOptions{Exclude: tt.exclude})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(sel); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for _, x := range sel {
				if x.Score != cands[x.Index].Domain || !strings.Contains(x.Reason, "domain evidence") {
					t.Errorf("selection %+v: score is not the evidence or reason %q", x, x.Reason)
				}
			}
		})
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		c := slices.Clone(cands)
		c[2].Domain = bad
		for _, s := range []Domain{{}, {Sample: true}} {
			if _, err := s.Select(ctx, c, 1, SelectOptions{}); err == nil || !strings.Contains(err.Error(), `candidate "c": domain evidence is`) {
				t.Errorf("%s with evidence %v: err = %v", s.Name(), bad, err)
			}
		}
	}
	if _, err := (Domain{Sample: true, Beta: -1}).Select(ctx, cands, 1, SelectOptions{}); err == nil || !strings.Contains(err.Error(), "positive") {
		t.Errorf("beta -1: err = %v", err)
	}
}

// TestDomainSample checks the weighted draw's probabilities: 50 items of
// evidence log 3 and 50 of evidence 0, so a single draw picks one of the
// first with probability 3^beta / (3^beta + 1).
func TestDomainSample(t *testing.T) {
	ctx := context.Background()
	var cands []Candidate
	for i := 0; i < 50; i++ {
		cands = append(cands, Candidate{ID: fmt.Sprintf("hi%02d", i), Domain: math.Log(3)}, Candidate{ID: fmt.Sprintf("lo%02d", i)})
	}
	tests := []struct {
		spec   string
		wantHi float64
	}{
		{"domain(by=random)", 0.75},
		{"domain(by=random,beta=0.5)", math.Sqrt(3) / (math.Sqrt(3) + 1)},
		{"domain(by=random,beta=2)", 0.9},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			const draws = 4000
			hi := 0
			for seed := int64(0); seed < draws; seed++ {
				sel, err := s.Select(ctx, cands, 1, SelectOptions{Seed: seed})
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(sel[0].ID, "hi") {
					hi++
				}
			}
			// 4 standard errors of a share over 4,000 draws is at most 0.032.
			if got := float64(hi) / draws; math.Abs(got-tt.wantHi) > 0.032 {
				t.Errorf("share of the heavier items %.3f, want %.3f", got, tt.wantHi)
			}
		})
	}
	// The draw is the seed's, whatever the input order, and it matches
	// LogWeightedDrawKey, so shards of a pool can each draw and merge.
	s := Domain{Sample: true}
	all, err := s.Select(ctx, cands, 10, SelectOptions{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(cands)
	slices.Reverse(rev)
	again, err := s.Select(ctx, rev, 10, SelectOptions{Seed: 5})
	if err != nil || !reflect.DeepEqual(ids(again), ids(all)) {
		t.Errorf("reversed input drew %v (%v), want %v", ids(again), err, ids(all))
	}
	for _, x := range all {
		if want := LogWeightedDrawKey(5, x.ID, cands[x.Index].Domain); x.Score != want || !strings.Contains(x.Reason, "weighted random draw (seed 5)") {
			t.Errorf("pick %+v: score want %v", x, want)
		}
	}
}
