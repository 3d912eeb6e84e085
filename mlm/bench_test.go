package mlm

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/torchrt"
)

// BenchmarkScore measures pool scoring throughput (items/s) on random-weight
// models with 2 libtorch threads: the bert-base sized config at batch 32 ×
// length 32 (target ≥ 16 items/s on the reference machine; PyTorch eager
// does 13 with logits at every position, 16 at the mask only) and a mix of
// lengths 8–64 bucketed by length, and the tiny config.
func BenchmarkScore(b *testing.B) {
	cases := []struct {
		name     string
		cfg      Config
		min, max int
	}{
		{"base/len32", BERTBaseConfig(), 32, 32},
		{"base/len8-64", BERTBaseConfig(), 8, 64},
		{"tiny/len32", TinyConfig(30522), 32, 32},
		{"tiny/len8-64", TinyConfig(30522), 8, 64},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			tok, err := SyntheticTokenizer(c.cfg.VocabSize)
			if err != nil {
				b.Fatal(err)
			}
			m, err := New(c.cfg, tok, Options{Device: "cpu", Threads: 2, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			items := SyntheticItems(128, c.min, c.max, c.cfg.VocabSize, 7)
			opts := ScoreOptions{BatchSize: 32, TopK: 5}
			if _, err := m.Score(context.Background(), items[:32], opts, nil); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Score(context.Background(), items, opts, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(items)*b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// TestForwardFLOPs checks the formula against bench_ref.py's forward_flops
// for bert-base at batch 32 × length 32 (figures the script printed), and
// ModernBERT-base's gated MLP (22 × (2·1024·(4·768² + 3·768·1152) +
// 4·32·32²·768) worked by hand).
func TestForwardFLOPs(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		headRows  int
		enc, head float64
	}{
		{"every position", BERTBaseConfig(), 32 * 32, 175.15413504e9, 224.3690496e9 - 175.15413504e9},
		{"mask only", BERTBaseConfig(), 32, 175.15413504e9, 176.69210112e9 - 175.15413504e9},
		{"modernbert", ModernBERTBaseConfig(), 32, 228.103028736e9, 2 * 32 * (768*768 + 768*50368)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, head := ForwardFLOPs(tc.cfg, 32, 32, tc.headRows)
			if math.Abs(enc-tc.enc) > 1 || math.Abs(head-tc.head) > 1e3 {
				t.Errorf("ForwardFLOPs = %.0f, %.0f; want %.0f, %.0f", enc, head, tc.enc, tc.head)
			}
		})
	}
}

func TestSyntheticItemsOfLengths(t *testing.T) {
	tok, err := SyntheticTokenizer(300)
	if err != nil {
		t.Fatal(err)
	}
	lengths := []int{3, 8, 17, 64}
	items := SyntheticItemsOfLengths(lengths, 300, 5)
	again := SyntheticItemsOfLengths(lengths, 300, 5)
	for i, it := range items {
		enc, err := tok.Encode(it.Text)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc.IDs) != lengths[i] || strings.Count(it.Text, "[MASK]") != 1 {
			t.Errorf("item %d %q: %d tokens, %d masks; want %d tokens, 1 mask", i, it.Text, len(enc.IDs), strings.Count(it.Text, "[MASK]"), lengths[i])
		}
		if again[i] != it {
			t.Errorf("item %d differs between calls", i)
		}
	}
}

// TestBenchRuns runs the benchmark loops briefly on a small model: they
// report positive rates, honour the run bounds and reject bad input.
func TestBenchRuns(t *testing.T) {
	cfg := TinyConfig(300)
	cfg.NumHiddenLayers, cfg.HiddenSize, cfg.IntermediateSize = 1, 32, 64
	tok, err := SyntheticTokenizer(cfg.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, tok, Options{Device: "cpu", Threads: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	items := SyntheticItemsOfLengths([]int{5, 9, 12}, cfg.VocabSize, 1)
	r, err := m.BenchScoreRuns(ctx, items, ScoreOptions{BatchSize: 2}, BenchOptions{MinRuns: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Items != 3 || r.Tokens != 26 || r.Runs != 3 || !(r.ItemsPerSec > 0) || r.TokensPerSec != r.ItemsPerSec*26/3 && math.Abs(r.TokensPerSec-r.ItemsPerSec*26/3) > 1e-6*r.TokensPerSec {
		t.Errorf("score result %+v", r)
	}
	tr, err := m.BenchTrain(ctx, 2, 8, BenchOptions{MinRuns: 2, MaxTime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Items != 2 || tr.Tokens != 16 || tr.Runs != 2 || !(tr.TokensPerSec > 0) || !(tr.Loss > 0) {
		t.Errorf("train result %+v", tr)
	}
	bad := []struct {
		name string
		run  func() error
	}{
		{"no items", func() error { _, err := m.BenchScoreRuns(ctx, nil, ScoreOptions{}, BenchOptions{}); return err }},
		{"no mask", func() error {
			_, err := m.BenchScoreRuns(ctx, []ScoreItem{{ID: "x", Text: "w7 w8"}}, ScoreOptions{}, BenchOptions{})
			return err
		}},
		{"short train", func() error { _, err := m.BenchTrain(ctx, 2, 2, BenchOptions{}); return err }},
		{"long train", func() error { _, err := m.BenchTrain(ctx, 2, 1000, BenchOptions{}); return err }},
	}
	for _, tc := range bad {
		if err := tc.run(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// rssKiB returns the resident set size of this process.
func rssKiB(t testing.TB) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// TestScoreMemoryFlat scores many batches and checks that no tensor is
// left behind and that resident memory does not grow with the pool.
func TestScoreMemoryFlat(t *testing.T) {
	m := newTestModel(t, 4)
	items := make([]ScoreItem, 128)
	for i := range items {
		items[i] = ScoreItem{ID: fmt.Sprint(i), Text: strings.Repeat("the cat sat on the mat . ", 1+i%3) + "it is [MASK] and [MASK] ."}
	}
	opts := ScoreOptions{BatchSize: 16, Embeddings: true, MCDropout: 2}
	run := func() {
		if _, err := m.Score(context.Background(), items, opts, nil); err != nil {
			t.Fatal(err)
		}
		debug.FreeOSMemory()
	}
	run()
	// With the collector off, no finalizer can free a leaked tensor, so
	// the live-tensor count shows whether Score drops all it creates.
	old := debug.SetGCPercent(-1)
	tensors := len(ts.ExistingTensors)
	if _, err := m.Score(context.Background(), items, opts, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(ts.ExistingTensors); n != tensors {
		t.Errorf("%d live tensors after scoring, %d before: intermediate tensors leak", n, tensors)
	}
	debug.SetGCPercent(old)
	// Resident memory and the C heap in use, over the second half of a
	// run of passes. Before inPlace, gotch's in-place ops leaked every
	// tensor they touched: about 450 KiB per forward pass of this model,
	// 43 MiB over these 96 passes. What remains is gotch's unfreed 32-byte
	// output pointer of every op, about 4 KiB per forward pass.
	const passes = 8
	forwards := (passes / 2) * (len(items) / opts.BatchSize) * (1 + opts.MCDropout)
	var rss []int
	var heap []torchrt.CHeap
	for i := 0; i < passes; i++ {
		run()
		rss = append(rss, rssKiB(t))
		heap = append(heap, torchrt.CHeapStats())
	}
	half := passes/2 - 1
	rssGrowth := rss[passes-1] - rss[half]
	inUseGrowth := int64(heap[passes-1].InUse) - int64(heap[half].InUse)
	t.Logf("RSS per pass (KiB): %v", rss)
	t.Logf("over the last %d forward passes: RSS %+d KiB, C heap in use %+d KiB (%.1f KiB per forward)",
		forwards, rssGrowth, inUseGrowth>>10, float64(inUseGrowth)/1024/float64(forwards))
	if rssGrowth > 8<<10 {
		t.Errorf("RSS grew by %d KiB over %d forward passes (%d KiB each)", rssGrowth, forwards, rssGrowth/forwards)
	}
	if heap[0] != (torchrt.CHeap{}) && inUseGrowth/int64(forwards) > 16<<10 {
		t.Errorf("C heap in use grew by %d bytes per forward pass", inUseGrowth/int64(forwards))
	}
}
