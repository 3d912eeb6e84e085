package rss

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/torchrt"
)

// TrainPath is the training code RunTrain drives.
const TrainPath = "mlm.Model.BenchTrainMemory: the fine-tune step of mlm.FineTune (masked-LM loss, backward, AdamW) on synthetic batches whose lengths cycle 8-64 tokens, as length bucketing makes them"

// TrainLengths are the sequence lengths RunTrain's batches cycle through.
var trainLengths = [...]int{8, 16, 24, 32, 40, 48, 56, 64}

// TrainConfig configures RunTrain.
type TrainConfig struct {
	// Steps is the number of optimizer steps (default 10000).
	Steps int
	// Batch is the sequences per step (default 8).
	Batch int
	// TrimEvery hands the C allocator's free memory back every TrimEvery
	// steps; 0 never does, as fine-tuning does not.
	TrimEvery int
	// Model is the random-weight model's shape (zero: DefaultModel).
	Model mlm.Config
	// Threads is libtorch's thread count (0: the number of CPUs).
	Threads int
	// Marks is the number of samples over the run (default 20).
	Marks int
	// Seed seeds the model and the batches.
	Seed uint64
	// Logger receives progress (default: discarded).
	Logger *slog.Logger
}

// Validate reports the first problem of a configuration (after defaults).
func (c TrainConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Steps < 1 || c.Steps > 10_000_000:
		return fmt.Errorf("steps must be within [1, 10000000], got %d", c.Steps)
	case c.Batch < 1 || c.Batch > 4096:
		return fmt.Errorf("batch must be within [1, 4096], got %d", c.Batch)
	case c.TrimEvery < 0 || c.Threads < 0:
		return fmt.Errorf("trim every and threads must not be negative")
	case c.Marks < 2 || c.Marks > 1000:
		return fmt.Errorf("marks must be within [2, 1000], got %d", c.Marks)
	}
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if c.Model.MaxSequenceLength() < trainLengths[len(trainLengths)-1] {
		return fmt.Errorf("model: %d positions are fewer than the longest batch (%d)", c.Model.MaxSequenceLength(), trainLengths[len(trainLengths)-1])
	}
	return nil
}

func (c TrainConfig) withDefaults() TrainConfig {
	if c.Steps == 0 {
		c.Steps = 10000
	}
	if c.Batch == 0 {
		c.Batch = 8
	}
	if c.Model.ModelType == "" {
		c.Model = DefaultModel()
	}
	if c.Marks == 0 {
		c.Marks = 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// RunTrain builds a random-weight model, trains it for the configured
// steps and samples VmRSS, VmHWM, the Go heap and the C heap Marks times
// along the way. The verdict is the least-squares VmRSS trend over the
// last 80% of the steps, as for scoring.
func RunTrain(ctx context.Context, cfg TrainConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("training memory bench: %w", err)
	}
	cfg = cfg.withDefaults()
	tok, err := mlm.SyntheticTokenizer(cfg.Model.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("training memory bench: %w", err)
	}
	m, err := mlm.New(cfg.Model, tok, mlm.Options{Device: "cpu", Threads: cfg.Threads, Seed: cfg.Seed + 1})
	if err != nil {
		return nil, fmt.Errorf("training memory bench: %w", err)
	}
	defer m.Close()
	res := &Result{Unit: "steps", Path: TrainPath, Items: cfg.Steps, Threads: cfg.Threads, BatchSize: cfg.Batch,
		Model: fmt.Sprintf("random weights, %d layers, hidden %d, vocabulary %d; batch %d, lengths cycling %v, C heap trimmed every %d steps (0: never)",
			cfg.Model.NumHiddenLayers, cfg.Model.HiddenSize, cfg.Model.VocabSize, cfg.Batch, trainLengths, cfg.TrimEvery)}
	runtime.GC()
	debug.FreeOSMemory()
	torchrt.ReleaseMemory()
	if err := ResetPeak(); err != nil {
		cfg.Logger.Warn("training memory bench: VmHWM includes setup", "err", err)
	} else {
		res.PeakReset = true
	}
	start := time.Now()
	if res.Before, err = sample(0, start, Sample{}); err != nil {
		return nil, fmt.Errorf("training memory bench: %w", err)
	}
	next, prev := 1, res.Before
	err = m.BenchTrainMemory(ctx, cfg.Batch, trainLengths[:], cfg.Steps, cfg.TrimEvery, func(step int) error {
		if step*cfg.Marks < next*cfg.Steps {
			return nil
		}
		s, err := sample(step, start, prev)
		if err != nil {
			return err
		}
		res.Samples = append(res.Samples, s)
		prev = s
		for next*cfg.Steps <= step*cfg.Marks {
			next++
		}
		cfg.Logger.Info("training memory bench", "steps", step, "rss_mib", fmt.Sprintf("%.1f", s.RSSMiB), "c_heap_mib", fmt.Sprintf("%.1f", s.CHeapMiB))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("training memory bench: %w", err)
	}
	elapsed := time.Since(start)
	if res.After, err = sample(cfg.Steps, start, Sample{}); err != nil {
		return nil, fmt.Errorf("training memory bench: %w", err)
	}
	res.After.ItemsPerSec = 0
	res.Scored = cfg.Steps
	res.Seconds = elapsed.Seconds()
	res.ItemsPerSec = float64(cfg.Steps) / elapsed.Seconds()
	res.verdict()
	return res, nil
}
