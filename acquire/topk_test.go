package acquire

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestTopKTable(t *testing.T) {
	tests := []struct {
		name   string
		k      int
		pushes []Scored
		want   []Scored
	}{
		{"fewer than k", 3, []Scored{{"a", 1}, {"b", 2}}, []Scored{{"b", 2}, {"a", 1}}},
		{"ties by ID", 2, []Scored{{"z", 1}, {"y", 1}, {"x", 1}}, []Scored{{"x", 1}, {"y", 1}}},
		{"keeps best", 2, []Scored{{"a", 1}, {"b", 5}, {"c", 3}, {"d", 4}}, []Scored{{"b", 5}, {"d", 4}}},
		{"repeated ID keeps max", 2, []Scored{{"a", 1}, {"a", 9}, {"b", 2}, {"a", 3}}, []Scored{{"a", 9}, {"b", 2}}},
		{"evicted ID pushed again lower", 1, []Scored{{"a", 1}, {"b", 2}, {"a", 0.5}}, []Scored{{"b", 2}}},
		{"negative scores", 2, []Scored{{"a", -3}, {"b", -1}, {"c", -2}}, []Scored{{"b", -1}, {"c", -2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := NewTopK(tc.k)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.pushes {
				if err := tk.Push(p.ID, p.Score); err != nil {
					t.Fatal(err)
				}
			}
			if got := tk.Result(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := NewTopK(0); err == nil {
		t.Error("NewTopK(0): no error")
	}
	tk, _ := NewTopK(2)
	for _, bad := range []Scored{{"", 1}, {"a", math.NaN()}, {"b", math.Inf(1)}} {
		if err := tk.Push(bad.ID, bad.Score); err == nil {
			t.Errorf("Push(%v): no error", bad)
		}
	}
	if tk.Len() != 0 {
		t.Errorf("bad pushes were kept: %v", tk.Result())
	}
}

// TestMergeMatchesGlobalSort splits random items over shards, keeps each
// shard's top k with a TopK, merges, and compares with sorting everything.
func TestMergeMatchesGlobalSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := r.IntN(500)
		shardsN := 1 + r.IntN(6)
		k := 1 + r.IntN(40)
		all := make([]Scored, n)
		for i := range all {
			all[i] = Scored{ID: fmt.Sprintf("id%04d", i), Score: float64(r.IntN(50))} // many ties
		}
		tops := make([]*TopK, shardsN)
		for s := range tops {
			tops[s], _ = NewTopK(k)
		}
		for _, it := range all {
			if err := tops[r.IntN(shardsN)].Push(it.ID, it.Score); err != nil {
				t.Fatal(err)
			}
		}
		shards := make([][]Scored, shardsN)
		for s, tk := range tops {
			shards[s] = tk.Result()
		}
		// A retried shard appears twice: must not duplicate.
		shards = append(shards, shards[0])
		got, err := Merge(k, shards...)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(all, func(i, j int) bool {
			if all[i].Score != all[j].Score {
				return all[i].Score > all[j].Score
			}
			return all[i].ID < all[j].ID
		})
		want := all[:min(k, n)]
		if len(want) == 0 {
			want = []Scored{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: merge = %v, want %v", trial, got, want)
		}
	}
	if _, err := Merge(0); err == nil {
		t.Error("Merge(0): no error")
	}
	if _, err := Merge(2, []Scored{{"a", 1}}, []Scored{{"b", math.NaN()}}); err == nil || !strings.Contains(err.Error(), "shard 1 item 0") {
		t.Errorf("Merge with NaN: err = %v", err)
	}
}
