package mlm

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/clozeloop/clozeloop/bench/torchref"
)

// benchTrainStep measures fine-tuning steps with Model.BenchTrain (forward
// with dropout, cross-entropy at the masks, backward, gradient clipping,
// AdamW) on batch × length tokens and reports tokens/s.
func benchTrainStep(b *testing.B, cfg Config, batch, length int) {
	m, err := New(cfg, nil, Options{Device: "cpu", Threads: runtime.NumCPU(), Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ResetTimer()
	res, err := m.BenchTrain(context.Background(), batch, length, BenchOptions{MinRuns: b.N})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.TokensPerSec, "tokens/s")
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
