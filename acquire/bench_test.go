package acquire

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchPool returns n candidates with random scores and d-dimensional embeddings.
func benchPool(n, d int) []Candidate {
	r := rand.New(rand.NewPCG(9, 9))
	emb := make([]float32, n*d) // one backing array
	for i := range emb {
		emb[i] = r.Float32()*2 - 1
	}
	pool := make([]Candidate, n)
	for i := range pool {
		pool[i] = Candidate{
			ID: fmt.Sprintf("item-%07d", i), LeastConfidence: r.Float64(), Margin: r.Float64(),
			Entropy: r.Float64() * 5, BALD: r.Float64(), Surprisal: r.Float64() * 10,
			Embedding: emb[i*d : (i+1)*d : (i+1)*d],
		}
	}
	return pool
}

// BenchmarkSelect100k measures Select on a 100k-candidate pool with k = 100
// and 128-dimensional embeddings (kcenter works on its default cap of 10k).
func BenchmarkSelect100k(b *testing.B) {
	pool := benchPool(100_000, 128)
	labelled := make([][]float32, 200)
	for i := range labelled {
		labelled[i] = pool[i].Embedding
	}
	exclude := NewIDSet()
	for i := range 200 {
		exclude[pool[i].ID] = struct{}{}
	}
	for _, spec := range []string{"random", "least-confidence", "margin", "entropy", "bald", "surprisal",
		"hybrid", "entropy:0.8,random:0.2", "kcenter(metric=cosine,cap=2000)", "kcenter"} {
		b.Run(spec, func(b *testing.B) {
			s, err := Parse(spec)
			if err != nil {
				b.Fatal(err)
			}
			opts := SelectOptions{Seed: 1, Exclude: exclude, Labelled: labelled}
			b.ReportAllocs()
			for b.Loop() {
				sel, err := s.Select(context.Background(), pool, 100, opts)
				if err != nil || len(sel) != 100 {
					b.Fatalf("%d items, %v", len(sel), err)
				}
			}
		})
	}
}

// BenchmarkMerge merges 16 shards' top 1,000 into the global top 1,000.
func BenchmarkMerge(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	shards := make([][]Scored, 16)
	for s := range shards {
		shards[s] = make([]Scored, 1000)
		for i := range shards[s] {
			shards[s][i] = Scored{ID: fmt.Sprintf("s%d-%d", s, i), Score: r.Float64()}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Merge(1000, shards...); err != nil {
			b.Fatal(err)
		}
	}
}
