package activities

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/clozeloop/clozeloop/workflows"
)

// sortedTop is the straightforward top-m: sort everything, keep m.
func sortedTop(items []ScoredItem, strategies []string, m int, skip map[string]bool) map[string][]workflows.Candidate {
	top := map[string][]workflows.Candidate{}
	for _, s := range strategies {
		var cands []workflows.Candidate
		for _, it := range items {
			score, ok := it.Scores[s]
			if !ok || skip[it.ItemID] {
				continue
			}
			sugg := it.Suggestions
			if len(sugg) > 5 {
				sugg = sugg[:5]
			}
			cands = append(cands, workflows.Candidate{ItemID: it.ItemID, Text: it.Text, Score: score, Suggestions: sugg})
		}
		sort.SliceStable(cands, func(i, j int) bool {
			if cands[i].Score != cands[j].Score {
				return cands[i].Score > cands[j].Score
			}
			return cands[i].ItemID < cands[j].ItemID
		})
		if len(cands) > m {
			cands = cands[:m]
		}
		if len(cands) == 0 {
			cands = nil
		}
		top[s] = cands
	}
	return top
}

func TestTopCollectorMatchesSort(t *testing.T) {
	var items []ScoredItem
	for i := 0; i < 200; i++ {
		it := ScoredItem{ItemID: fmt.Sprintf("it-%03d", (i*37)%200), Text: fmt.Sprintf("text %d", i),
			Scores: map[string]float64{"entropy": float64((i * 13) % 17), "margin": float64(i%5) / 4}}
		if i%3 == 0 {
			it.Scores["kcenter"] = float64(i)
		}
		for j := 0; j < i%8; j++ {
			it.Suggestions = append(it.Suggestions, workflows.Suggestion{Token: fmt.Sprint(j), Prob: 1 / float64(j+1)})
		}
		items = append(items, it)
	}
	strategies := []string{"entropy", "margin", "kcenter", "bald"}
	tests := []struct {
		name string
		m    int
		skip map[string]bool
	}{
		{"m 1", 1, nil},
		{"m 10 with ties", 10, nil},
		{"m 10 with skips", 10, map[string]bool{"it-000": true, "it-037": true, "it-074": true}},
		{"m beyond the items", 500, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewTopCollector(strategies, tc.m, func(id string) bool { return tc.skip[id] })
			for _, it := range items {
				c.Add(it)
			}
			got, want := c.Top(), sortedTop(items, strategies, tc.m, tc.skip)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("collector and sort differ\n got %v\nwant %v", got, want)
			}
		})
	}
}

// streamingScorer writes its shard itself, as mlmengine does.
type streamingScorer struct {
	countingScorer
	blobs    Blobs
	streamed int
}

func (s *streamingScorer) ScoreShardTo(ctx context.Context, req ScoreRequest, key string, m int, progress func(done, total int)) (ShardResult, error) {
	s.streamed++
	items, err := s.ScoreShard(ctx, req, progress)
	if err != nil {
		return ShardResult{}, err
	}
	top := NewTopCollector(req.Strategies, m, req.Skip)
	for _, it := range items {
		top.Add(it)
	}
	if err := s.blobs.Put(ctx, key, encodeScores(items)); err != nil {
		return ShardResult{}, err
	}
	return ShardResult{Scored: len(items), Top: top.Top()}, nil
}

func TestScoreShardPrefersStreamingScorer(t *testing.T) {
	blobs := &MemBlobs{}
	sc := &streamingScorer{countingScorer: countingScorer{n: 20}, blobs: blobs}
	env := newEnv(&Activities{Blobs: blobs, Scorer: sc})
	in := workflows.ScoreShardInput{Shard: 1, NumShards: 2, Strategies: []string{"entropy"}, TopM: 2,
		Exclude: []string{"it-19"}, ScoresKey: "runs/r/rounds/0001/scores/shard-1.jsonl"}
	var outs [2]workflows.ScoreShardOutput
	for i := range outs {
		v, err := env.ExecuteActivity(workflows.ActivityScoreShard, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Get(&outs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if sc.streamed != 1 || sc.calls != 1 {
		t.Errorf("streamed %d times, scorer called %d times; want 1 and 1 (the second run reuses the file)", sc.streamed, sc.calls)
	}
	for i, out := range outs {
		var ids []string
		for _, c := range out.Top["entropy"] {
			ids = append(ids, c.ItemID)
		}
		if out.Scored != 9 || !reflect.DeepEqual(ids, []string{"it-17", "it-15"}) {
			t.Errorf("run %d: scored %d, top %v; want 9 and [it-17 it-15]", i, out.Scored, ids)
		}
	}
}
