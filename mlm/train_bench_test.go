package mlm

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/bench/torchref"
)

// benchTrainItems returns batch sequences of length tokens with one
// labelled mask each, as torchref's train mode uses.
func benchTrainItems(batch, length, vocab int, seed uint64) []trainItem {
	rng := rand.New(rand.NewPCG(seed, 0))
	items := make([]trainItem, batch)
	for b := range items {
		ids := make([]int64, length)
		for i := range ids {
			ids[i] = int64(5 + rng.IntN(vocab-5))
		}
		ids[0], ids[length-1] = 2, 3
		p := 1 + rng.IntN(length-2)
		label := ids[p]
		ids[p] = 4
		items[b] = trainItem{ids: ids, pos: []int{p}, labels: []int64{label}}
	}
	return items
}

// benchTrainStep measures one fine-tuning step (forward with dropout,
// cross-entropy at the masks, backward, gradient clipping, AdamW) on
// batch × length tokens and reports tokens/s.
func benchTrainStep(b *testing.B, cfg Config, batch, length int) {
	m, err := New(cfg, nil, Options{Device: "cpu", Threads: runtime.NumCPU(), Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	items := benchTrainItems(batch, length, cfg.VocabSize, 1)
	if err := m.lock(); err != nil {
		b.Fatal(err)
	}
	defer m.unlock()
	if _, err := ts.GradSetEnabled(true); err != nil {
		b.Fatal(err)
	}
	opt, err := newAdamW(m.NamedParameters(), AdamWOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer opt.drop()
	step := func() {
		if _, _, err := m.microStep(items, 1, 1); err != nil {
			b.Fatal(err)
		}
		if err := m.optimizerStep(opt, 1e-4, 1); err != nil {
			b.Fatal(err)
		}
	}
	step() // warm-up
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.StopTimer()
	b.ReportMetric(float64(batch*length*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkTrainStep measures training throughput for the tiny default
// configuration (batch 32 × 32) and bert-base (batch 8 × 32), to be read
// beside BenchmarkTrainStepTorchRef.
func BenchmarkTrainStep(b *testing.B) {
	b.Run("tiny/b32xl32", func(b *testing.B) { benchTrainStep(b, TinyConfig(8000), 32, 32) })
	b.Run("bert-base/b8xl32", func(b *testing.B) { benchTrainStep(b, BERTBaseConfig(), 8, 32) })
}

// BenchmarkTrainStepTorchRef runs the PyTorch eager reference's train mode
// (bench/torchref, same shapes, mask-only head, AdamW with the same weight
// decay groups) on the same machine and reports its tokens/s. It is
// skipped when no python3 with torch is installed.
func BenchmarkTrainStepTorchRef(b *testing.B) {
	ctx := context.Background()
	py, _, err := torchref.FindPython(ctx)
	if err != nil {
		b.Skip(err)
	}
	tiny := TinyConfig(8000)
	for _, tc := range []struct {
		name          string
		model         torchref.Model
		batch, length int
	}{
		{"tiny/b32xl32", torchref.Model{Vocab: tiny.VocabSize, Hidden: tiny.HiddenSize, Layers: tiny.NumHiddenLayers,
			Heads: tiny.NumAttentionHeads, Intermediate: tiny.IntermediateSize, MaxPos: tiny.MaxPositionEmbeddings}, 32, 32},
		{"bert-base/b8xl32", torchref.BertBase(), 8, 32},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var last torchref.Result
			for range b.N {
				last, err = torchref.Run(ctx, torchref.Options{Python: py, Mode: torchref.ModeTrain, Model: tc.model,
					Batch: tc.batch, Length: tc.length, MaskOnly: true, Threads: runtime.NumCPU(), Runs: 3})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(last.TokensPerS, "tokens/s")
			b.ReportMetric(0, "ns/op")
			if os.Getenv("CLOZELOOP_BENCH_VERBOSE") != "" {
				b.Logf("torch %s, %d threads: %.1f ms per step", last.TorchVersion, last.Threads, last.MsPerBatch)
			}
		})
	}
}
