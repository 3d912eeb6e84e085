package rss

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Status
		wantErr string
	}{
		{"linux status", "Name:\tgo\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nRssAnon:\t  512 kB\nRssFile:\t  256 kB\nThreads:\t4\n",
			Status{RSS: 1 << 20, HWM: 2 << 20, File: 256 << 10}, ""},
		{"kernel without RssFile", "VmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n", Status{RSS: 1 << 20, HWM: 2 << 20}, ""},
		{"bad RssFile", "VmRSS:\t 10 kB\nVmHWM:\t 10 kB\nRssFile:\t 1 MB\n", Status{}, "want \"<number> kB\""},
		{"missing HWM", "VmRSS:\t 10 kB\n", Status{}, "no VmRSS or VmHWM"},
		{"bad unit", "VmRSS:\t 10 MB\nVmHWM:\t 10 kB\n", Status{}, "want \"<number> kB\""},
		{"bad number", "VmRSS:\t x kB\nVmHWM:\t 10 kB\n", Status{}, "not a size"},
		{"empty", "", Status{}, "no VmRSS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatus(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseStatus = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSelfAndResetPeak(t *testing.T) {
	st, err := Self()
	if err != nil {
		t.Skipf("no /proc/self/status here: %v", err)
	}
	if st.RSS <= 0 || st.HWM < st.RSS {
		t.Fatalf("Self = %+v: want 0 < RSS <= HWM", st)
	}
	if err := ResetPeak(); err != nil {
		t.Skipf("clear_refs not writable here: %v", err)
	}
	after, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	// After a reset the peak is close to the current RSS (the process may
	// have grown a little since).
	if after.HWM > after.RSS+(64<<20) {
		t.Fatalf("after ResetPeak: %+v", after)
	}
}

func TestWritePool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pool.jsonl")
	words := []string{"alpha", "beta", "gamma"}
	if err := WritePool(path, 500, words, 3); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := dataset.NewItemReader(f, path, dataset.Options{})
	n, masks := 0, map[int]int{}
	for r.Next() {
		it := r.Record()
		w := strings.Fields(it.Text)
		if len(w) < MinWords || len(w) > MaxWords {
			t.Fatalf("item %s has %d words", it.ID, len(w))
		}
		masks[strings.Count(it.Text, dataset.MaskToken)]++
		n++
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 500 || masks[1] == 0 || masks[2] == 0 || masks[1]+masks[2] != 500 {
		t.Fatalf("%d items, mask counts %v: want 500 items with one or two masks, both kinds", n, masks)
	}
	if err := WritePool(path, 0, words, 1); err == nil {
		t.Fatal("WritePool with no items succeeded")
	}
}

func TestValidate(t *testing.T) {
	short := mlm.TinyConfig(100)
	short.MaxPositionEmbeddings = 32
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"negative items", Config{Items: -1}, false},
		{"one mark", Config{Marks: 1}, false},
		{"too few positions", Config{Model: short}, false},
		{"negative threads", Config{Threads: -2}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestRunTiny scores a few hundred items with a tiny model through the
// real engine and checks the samples.
func TestRunTiny(t *testing.T) {
	c := mlm.TinyConfig(300)
	c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize = 32, 2, 64
	res, err := Run(context.Background(), Config{Items: 300, Model: c, Threads: 1, ChunkSize: 32, WorkDir: t.TempDir(), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scored != 300 || len(res.Samples) != 10 {
		t.Fatalf("scored %d with %d samples, want 300 and 10", res.Scored, len(res.Samples))
	}
	for i, s := range res.Samples {
		if s.Items != 32*(i+1) && !(i == 9 && s.Items == 300) {
			t.Errorf("sample %d at %d items", i, s.Items)
		}
		// The process maps libtorch, so part of its RSS is file pages.
		if s.RSSMiB <= 0 || s.HWMMiB < s.RSSMiB-1 || s.FileMiB <= 0 || s.FileMiB > s.RSSMiB || s.ItemsPerSec <= 0 {
			t.Errorf("sample %d = %+v", i, s)
		}
	}
	if res.From.Items != 64 || res.ThresholdMiB <= 0 || res.PeakMiB <= 0 {
		t.Errorf("verdict fields: from %+v, threshold %v, peak %v", res.From, res.ThresholdMiB, res.PeakMiB)
	}
	t.Logf("growth %.1f MiB (%.1f%%), heap %.2f MiB, %.0f B/item, %.0f items/s", res.GrowthMiB, res.GrowthPct,
		res.HeapGrowthMiB, res.HeapBytesPerItem, res.ItemsPerSec)
}

func TestVerdict(t *testing.T) {
	mk := func(items int, rss, heap float64) Sample {
		return Sample{Items: items, RSSMiB: rss, GoHeapMiB: heap, HWMMiB: rss}
	}
	tests := []struct {
		name     string
		samples  []Sample
		wantFrom int
		wantFlat bool
		growth   float64
	}{
		// trend over (20, 410), (30, 412), (100, 415): slope 210/3800 MiB per item, times 80 items.
		{"flat", []Sample{mk(10, 400, 10), mk(20, 410, 10), mk(30, 412, 10), mk(100, 415, 10)}, 20, true, 80 * 210.0 / 3800},
		{"grows", []Sample{mk(10, 400, 10), mk(20, 400, 10), mk(60, 430, 40), mk(100, 460, 70)}, 20, false, 60},
		{"above 32 MiB on a large process", []Sample{mk(20, 1000, 0), mk(100, 1040, 0)}, 20, false, 40},
		// swings of the Go collector, the last sample high: no trend.
		{"swings", []Sample{mk(20, 400, 10), mk(40, 425, 10), mk(60, 395, 10), mk(80, 390, 10), mk(100, 425, 10)}, 20, true, 80 * 300.0 / 4000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Items: 100, Samples: tc.samples}
			r.verdict()
			if r.From.Items != tc.wantFrom || r.Flat != tc.wantFlat || math.Abs(r.GrowthMiB-tc.growth) > 1e-9 {
				t.Fatalf("from %d flat %v growth %v; want %d %v %v", r.From.Items, r.Flat, r.GrowthMiB, tc.wantFrom, tc.wantFlat, tc.growth)
			}
		})
	}
}

// TestRunTrainTiny runs the training memory bench on a tiny model: every
// sample is taken, the verdict fields are set, and a bad configuration is
// refused.
func TestRunTrainTiny(t *testing.T) {
	c := mlm.TinyConfig(300)
	c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize = 32, 2, 64
	res, err := RunTrain(context.Background(), TrainConfig{Steps: 40, Batch: 2, TrimEvery: 16, Model: c, Threads: 1, Marks: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unit != "steps" || res.Scored != 40 || len(res.Samples) != 4 {
		t.Fatalf("unit %q, %d steps, %d samples; want steps, 40, 4", res.Unit, res.Scored, len(res.Samples))
	}
	for i, s := range res.Samples {
		if s.Items != 10*(i+1) || s.RSSMiB <= 0 || s.CHeapMiB <= 0 || s.ItemsPerSec <= 0 {
			t.Errorf("sample %d = %+v", i, s)
		}
	}
	if res.From.Items != 10 || res.ThresholdMiB <= 0 || res.PeakMiB <= 0 {
		t.Errorf("verdict fields: from %+v, threshold %v, peak %v", res.From, res.ThresholdMiB, res.PeakMiB)
	}
	for _, bad := range []TrainConfig{{Steps: -1}, {Batch: -2}, {TrimEvery: -1}, {Marks: 1}} {
		if _, err := RunTrain(context.Background(), bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
