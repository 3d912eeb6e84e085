package mlm

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

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
