package topn

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

type item struct {
	score float64
	id    int
}

func better(a, b item) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.id < b.id
}

// TestKeeperMatchesSort checks the kept values against sorting everything
// and taking the first limit, for several limits and streams with ties.
func TestKeeperMatchesSort(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		limit int
	}{
		{"nothing kept", 50, 0},
		{"negative limit", 50, -3},
		{"fewer values than the limit", 5, 10},
		{"one", 100, 1},
		{"many with ties", 1000, 37},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			all := make([]item, tc.n)
			k := New(tc.limit, better)
			for i := range all {
				all[i] = item{score: float64(rng.IntN(20)), id: i}
				k.Push(all[i])
			}
			sort.Slice(all, func(i, j int) bool { return better(all[i], all[j]) })
			want := all[:max(0, min(tc.limit, tc.n))]
			if got := k.Sorted(); !slices.Equal(got, want) {
				t.Errorf("kept %v, want %v", got, want)
			}
			if k.Len() != len(want) || len(k.Items()) != len(want) || k.Limit() != tc.limit {
				t.Errorf("len %d items %d limit %d, want %d, %d, %d", k.Len(), len(k.Items()), k.Limit(), len(want), len(want), tc.limit)
			}
		})
	}
}

func TestAdmits(t *testing.T) {
	k := New(2, better)
	k.Push(item{5, 1})
	k.Push(item{3, 2})
	tests := []struct {
		v    item
		want bool
	}{
		{item{4, 3}, true},
		{item{3, 1}, true},  // same score, smaller id than the worst kept
		{item{3, 2}, false}, // equal to the worst kept
		{item{2, 0}, false},
	}
	for _, tc := range tests {
		if got := k.Admits(tc.v); got != tc.want {
			t.Errorf("Admits(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
}
