package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/bench/torchref"
	"github.com/clozeloop/clozeloop/mlm"
)

// benchMatmulRow is libtorch's matrix-multiply speed for one shape: from
// Go through gotch and from PyTorch.
type benchMatmulRow struct {
	Shape          string  `json:"shape"`
	Threads        int     `json:"threads"`
	GoGFLOPPerSec  float64 `json:"go_gflop_per_s"`
	TorchGFLOPPerS float64 `json:"torch_gflop_per_s,omitempty"`
}

// benchFlopsRow is the achieved GFLOP/s of the scoring forward of one
// model against the best matrix multiply at the same thread count.
type benchFlopsRow struct {
	Model   string `json:"model"`
	Threads int    `json:"threads"`
	Batch   int    `json:"batch"`
	Length  int    `json:"length"`
	// EncoderGFLOPPerItem and HeadGFLOPPerItem are mlm.ForwardFLOPs per
	// item (head at the mask only).
	EncoderGFLOPPerItem float64 `json:"encoder_gflop_per_item"`
	HeadGFLOPPerItem    float64 `json:"head_gflop_per_item"`
	GoItemsPerSec       float64 `json:"go_items_per_s"`
	// GoGFLOPPerSec is (encoder + head) FLOPs × items/s of mlm.Score;
	// GoPctOfMatmul its share of the fastest gotch matmul at these threads.
	GoGFLOPPerSec float64 `json:"go_gflop_per_s"`
	GoPctOfMatmul float64 `json:"go_pct_of_matmul_peak"`
	// The same for the PyTorch reference (head at the mask only).
	TorchGFLOPPerSec float64 `json:"torch_gflop_per_s,omitempty"`
	TorchPctOfMatmul float64 `json:"torch_pct_of_matmul_peak,omitempty"`
	// MatmulPeak is the fastest gotch matmul GFLOP/s at these threads.
	MatmulPeak float64 `json:"matmul_peak_gflop_per_s"`
}

// benchMatmulShapes are the bert-base feed-forward shapes and a square one.
func benchMatmulShapes(quick bool) []torchref.Shape {
	if quick {
		return []torchref.Shape{{M: 256, K: 256, N: 256}}
	}
	return []torchref.Shape{{M: 1024, K: 768, N: 3072}, {M: 1024, K: 3072, N: 768}, {M: 2048, K: 2048, N: 2048}}
}

func runBenchFlops(ctx context.Context, env *cmdEnv, args []string, h benchHeader) error {
	var c benchCommon
	fs := newFlagSet(env, "bench flops", "[--models small,bert-base] [--threads 1,2] [--batch 32] [--length 64] [--quick] [--no-torch] [--json]\n\n"+
		"Achieved GFLOP/s of the scoring forward (mlm.ForwardFLOPs: encoder matmuls and attention plus the\n"+
		"MLM head at the mask, the formula bench_ref.py uses) against libtorch's own matrix-multiply GFLOP/s\n"+
		"measured in the same run from Go through gotch (and from PyTorch): how close to the machine's limit.")
	c.register(fs)
	batch := fs.Int("batch", 32, "items per forward pass")
	length := fs.Int("length", 64, "tokens per item")
	minTime := fs.Duration("min-time", 2*time.Second, "least timed duration of each measurement")
	maxTime := fs.Duration("max-time", 15*time.Second, "cap on the timed duration of each measurement (after one run)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c.applyQuick(map[string]func(){
		"models": func() { c.models = "small" }, "threads": func() { c.threads = "1" },
		"batch": func() { *batch = 8 }, "length": func() { *length = 16 },
		"min-time": func() { *minTime = 50 * time.Millisecond }, "max-time": func() { *maxTime = time.Second },
	})
	if *batch < 1 || *length < 3 || *minTime < 0 || *maxTime < 0 {
		return usagef("--batch must be positive, --length at least 3, --min-time and --max-time not negative")
	}
	models, threads, err := c.lists()
	if err != nil {
		return err
	}
	timing := benchTiming{*minTime, *maxTime}
	shapes := benchMatmulShapes(c.quick)

	var mm []benchMatmulRow
	peak := map[int]float64{}
	for _, t := range threads {
		for _, s := range shapes {
			env.log.Info("bench flops: matmul", "shape", s.String(), "threads", t)
			var g float64
			if err := withThreads(t, func() error {
				var err error
				g, err = gotchMatmulGFLOPs(ctx, s, timing)
				return err
			}); err != nil {
				return fmt.Errorf("bench flops: matmul %s with %d threads: %w", s, t, err)
			}
			mm = append(mm, benchMatmulRow{Shape: s.String(), Threads: t, GoGFLOPPerSec: g})
			peak[t] = max(peak[t], g)
		}
		if h.torch() {
			env.log.Info("bench flops: PyTorch matmul", "threads", t)
			o := timing.ref(torchref.Options{Python: h.Python, Mode: torchref.ModeMatmul, Threads: t, Shapes: shapes})
			o.Runs = 3
			res, err := torchref.Run(ctx, o)
			if err != nil {
				return fmt.Errorf("bench flops: PyTorch matmul with %d threads: %w", t, err)
			}
			base := len(mm) - len(shapes)
			for i, r := range res.Matmul {
				if i < len(shapes) {
					mm[base+i].TorchGFLOPPerS = r.GFLOPPerS
				}
			}
		}
	}

	var rows []benchFlopsRow
	for _, bm := range models {
		if *length > bm.Cfg.MaxSequenceLength() {
			return usagef("--length %d is longer than %s's %d positions", *length, bm.Name, bm.Cfg.MaxSequenceLength())
		}
		tok, err := mlm.SyntheticTokenizer(bm.Cfg.VocabSize)
		if err != nil {
			return err
		}
		m, err := mlm.New(bm.Cfg, tok, mlm.Options{Device: "cpu", Threads: threads[0], Seed: benchSeed})
		if err != nil {
			return fmt.Errorf("bench flops: new %s model: %w", bm.Name, err)
		}
		items := mlm.SyntheticItems(*batch, *length, *length, bm.Cfg.VocabSize, benchSeed)
		enc, head := mlm.ForwardFLOPs(bm.Cfg, 1, *length, 1)
		perItem := enc + head
		for _, t := range threads {
			env.log.Info("bench flops: scoring", "model", bm.Name, "threads", t)
			var res mlm.BenchResult
			if err := withThreads(t, func() error {
				var err error
				res, err = m.BenchScoreRuns(ctx, items, mlm.ScoreOptions{BatchSize: *batch, TopK: 5}, timing.mlm())
				return err
			}); err != nil {
				m.Close()
				return fmt.Errorf("bench flops: score %s with %d threads: %w", bm.Name, t, err)
			}
			r := benchFlopsRow{Model: bm.Name, Threads: t, Batch: *batch, Length: *length,
				EncoderGFLOPPerItem: enc / 1e9, HeadGFLOPPerItem: head / 1e9, GoItemsPerSec: res.ItemsPerSec,
				GoGFLOPPerSec: perItem * res.ItemsPerSec / 1e9, MatmulPeak: peak[t]}
			r.GoPctOfMatmul = 100 * ratio(r.GoGFLOPPerSec, peak[t])
			if h.torch() {
				ref, err := torchref.RunGrid(ctx, timing.ref(torchref.Options{Python: h.Python, Model: refModel(bm.Cfg), Threads: t, Seed: benchSeed}),
					[]torchref.Cell{{Mode: torchref.ModeScore, Batch: *batch, Length: *length, MaskOnly: true}})
				if err != nil {
					m.Close()
					return fmt.Errorf("bench flops: PyTorch %s with %d threads: %w", bm.Name, t, err)
				}
				r.TorchGFLOPPerSec = perItem * ref[0].ItemsPerS / 1e9
				r.TorchPctOfMatmul = 100 * ratio(r.TorchGFLOPPerSec, peak[t])
			}
			rows = append(rows, r)
		}
		m.Close()
	}
	if c.asJSON {
		return writeJSONLine(env.stdout, struct {
			Section string           `json:"section"`
			Matmul  []benchMatmulRow `json:"matmul"`
			Rows    []benchFlopsRow  `json:"rows"`
		}{"flops", mm, rows})
	}
	w := env.stdout
	fmt.Fprintf(w, "flops: libtorch matrix multiply (fp32), GFLOP/s\n")
	fmt.Fprintf(w, "%-16s %7s %10s %10s\n", "shape", "threads", "go/gotch", "pytorch")
	for _, r := range mm {
		fmt.Fprintf(w, "%-16s %7d %10.1f %10s\n", r.Shape, r.Threads, r.GoGFLOPPerSec, cellf("%.1f", r.TorchGFLOPPerS))
	}
	fmt.Fprintf(w, "\nscoring forward (encoder + head at the mask), GFLOP/s and %% of the fastest gotch matmul at the same threads\n")
	fmt.Fprintf(w, "%-10s %7s %5s %6s %12s %10s %8s %10s %8s\n", "model", "threads", "batch", "length", "GFLOP/item", "go", "go %", "pytorch", "torch %")
	for _, r := range rows {
		fmt.Fprintf(w, "%-10s %7d %5d %6d %12.4f %10.1f %7.0f%% %10s %8s\n", r.Model, r.Threads, r.Batch, r.Length,
			r.EncoderGFLOPPerItem+r.HeadGFLOPPerItem, r.GoGFLOPPerSec, r.GoPctOfMatmul,
			cellf("%.1f", r.TorchGFLOPPerSec), cellf("%.0f%%", r.TorchPctOfMatmul))
	}
	return nil
}

// gotchMatmulGFLOPs times x·y for random fp32 matrices of shape s through
// gotch on the calling (locked) OS thread: one warm-up, then at least three
// runs and timing's least duration, capped at its maximum; the median run
// counts.
func gotchMatmulGFLOPs(ctx context.Context, s torchref.Shape, timing benchTiming) (g float64, err error) {
	x, err := ts.Randn([]int64{int64(s.M), int64(s.K)}, gotch.Float, gotch.CPU)
	if err != nil {
		return 0, fmt.Errorf("random matrix: %w", err)
	}
	defer x.MustDrop()
	y, err := ts.Randn([]int64{int64(s.K), int64(s.N)}, gotch.Float, gotch.CPU)
	if err != nil {
		return 0, fmt.Errorf("random matrix: %w", err)
	}
	defer y.MustDrop()
	mul := func() error {
		z, err := x.Matmul(y, false)
		if err != nil {
			return fmt.Errorf("matmul: %w", err)
		}
		z.MustDrop()
		return nil
	}
	if err := mul(); err != nil {
		return 0, err
	}
	var secs []float64
	var total time.Duration
	for len(secs) < 3 || total < timing.MinTime {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := mul(); err != nil {
			return 0, err
		}
		d := time.Since(start)
		total += d
		secs = append(secs, d.Seconds())
		if timing.MaxTime > 0 && total >= timing.MaxTime {
			break
		}
	}
	slices.Sort(secs)
	return 2 * float64(s.M) * float64(s.K) * float64(s.N) / secs[len(secs)/2] / 1e9, nil
}
