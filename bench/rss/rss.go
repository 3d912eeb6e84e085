package rss

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/mlmengine"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/internal/workdir"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
	"github.com/clozeloop/clozeloop/torchrt"
)

// Object-store keys of the bench's model and pool.
const (
	modelKey  = "bench/models/rss"
	poolKey   = "bench/pool.jsonl"
	scoresKey = "bench/scores.jsonl"
)

// topM is the candidates per strategy the shard keeps, as a round with a
// batch of a few dozen items asks for.
const topM = 64

// DefaultModel is the shape of the shipped default model ("clozeloop
// pretrain --config small"): BERT, 4 layers, hidden 256, 4 heads,
// intermediate 1024, 128 positions, vocabulary 8000.
func DefaultModel() mlm.Config {
	c := mlm.TinyConfig(8000)
	c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings = 4, 256, 4, 1024, 128
	return c
}

// Config configures Run.
type Config struct {
	// Items is the pool size (default 100000).
	Items int
	// ModelDir is a Hugging Face checkpoint folder with a vocab.txt; empty
	// means a random-weight model of shape Model with mlm.SyntheticTokenizer.
	ModelDir string
	// Model is the random-weight model's shape (zero: DefaultModel).
	Model mlm.Config
	// Threads is libtorch's thread count (0: the number of CPUs).
	Threads int
	// ChunkSize and BatchSize are the engine's pool chunk and forward
	// batch (0: the engine's defaults, 512 and 32).
	ChunkSize, BatchSize int
	// Strategies are the acquisition strategies scored (default entropy).
	Strategies []string
	// Marks is the number of samples over the pool (default 10: one per
	// tenth).
	Marks int
	// Seed seeds the pool and the model.
	Seed uint64
	// WorkDir holds the pool, the store and the model cache; empty means a
	// temporary folder removed at the end.
	WorkDir string
	// Logger receives progress (default: discarded).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Items == 0 {
		c.Items = 100000
	}
	if c.ModelDir == "" && c.Model.ModelType == "" {
		c.Model = DefaultModel()
	}
	if len(c.Strategies) == 0 {
		c.Strategies = []string{"entropy"}
	}
	if c.Marks == 0 {
		c.Marks = 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports the first problem of a configuration (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Items < 1 || c.Items > 100_000_000:
		return fmt.Errorf("items must be within [1, 100000000], got %d", c.Items)
	case c.Threads < 0 || c.ChunkSize < 0 || c.BatchSize < 0:
		return fmt.Errorf("threads, chunk size and batch size must not be negative")
	case c.Marks < 2 || c.Marks > 1000:
		return fmt.Errorf("marks must be within [2, 1000], got %d", c.Marks)
	}
	if c.ModelDir == "" {
		if err := c.Model.Validate(); err != nil {
			return fmt.Errorf("model: %w", err)
		}
		if c.Model.MaxSequenceLength() < MaxWords+2 {
			return fmt.Errorf("model: %d positions are fewer than the pool's longest item (%d tokens)", c.Model.MaxSequenceLength(), MaxWords+2)
		}
	}
	return nil
}

// Pool item lengths, in words.
const (
	MinWords = 8
	MaxWords = 64
)

// Sample is the process's memory after some items were scored.
type Sample struct {
	Items int `json:"items"`
	// ElapsedS is the time since scoring started.
	ElapsedS float64 `json:"elapsed_s"`
	RSSMiB   float64 `json:"rss_mib"`
	HWMMiB   float64 `json:"hwm_mib"`
	// FileMiB is the part of RSSMiB that maps files (RssFile): shared
	// libraries' pages, which the process's own allocations do not change.
	FileMiB float64 `json:"file_mib"`
	// GoHeapMiB is the Go heap in use (runtime.MemStats.HeapInuse).
	GoHeapMiB float64 `json:"go_heap_mib"`
	// GoHeldMiB is the Go heap's memory not returned to the operating
	// system (HeapSys − HeapReleased): in use, or free and still resident.
	GoHeldMiB float64 `json:"go_held_mib"`
	// CHeapMiB is the C allocator's memory in use (libtorch tensors).
	CHeapMiB float64 `json:"c_heap_mib"`
	// CFreeMiB is the free memory the C allocator holds (glibc's fordblks):
	// resident until reused, or returned by malloc_trim.
	CFreeMiB float64 `json:"c_free_mib"`
	// ItemsPerSec is the rate since the previous sample.
	ItemsPerSec float64 `json:"items_per_s"`
}

// Result is what Run (or RunTrain) measured.
type Result struct {
	// Unit is what Items and the samples' Items count: "items" scored, or
	// optimizer "steps" (RunTrain).
	Unit string `json:"unit"`
	// Path says which code ran.
	Path  string `json:"path"`
	Model string `json:"model"`
	Items int    `json:"items"`
	// Scored is the number of items the engine scored.
	Scored int `json:"scored"`
	// Threads, ChunkSize and BatchSize as used (0: engine default).
	Threads   int `json:"threads"`
	ChunkSize int `json:"chunk_size"`
	BatchSize int `json:"batch_size"`
	// Before is after setup, before scoring (the peak was reset then when
	// PeakReset).
	Before    Sample `json:"before"`
	PeakReset bool   `json:"peak_reset"`
	// Samples are taken as the scorer reports progress, at each mark.
	Samples []Sample `json:"samples"`
	// After is when ScoreShardTo returned (its results still held).
	After Sample `json:"after"`
	// Seconds and ItemsPerSec cover the whole ScoreShardTo call.
	Seconds     float64 `json:"seconds"`
	ItemsPerSec float64 `json:"items_per_s"`
	// From is the sample the growth is measured from (the first at or past
	// 20 % of the pool). GrowthMiB is the RSS trend from there to the end:
	// the least-squares slope of VmRSS over items scored, over the samples
	// from From on, times the items between From and the last sample (with
	// two samples, their difference). A trend rather than the last sample
	// minus From, because the Go collector makes VmRSS swing by tens of MiB
	// from one sample to the next without growing. LastMinusFromMiB is that
	// raw difference. Flat is GrowthMiB < ThresholdMiB.
	From             Sample  `json:"from"`
	GrowthMiB        float64 `json:"growth_mib"`
	LastMinusFromMiB float64 `json:"last_minus_from_mib"`
	GrowthPct        float64 `json:"growth_pct"`
	ThresholdMiB     float64 `json:"threshold_mib"`
	Flat             bool    `json:"flat"`
	// HeapGrowthMiB is the Go heap growth over the same stretch and
	// HeapBytesPerItem that growth per item scored in it (the results the
	// scorer keeps).
	HeapGrowthMiB    float64 `json:"go_heap_growth_mib"`
	HeapBytesPerItem float64 `json:"go_heap_bytes_per_item"`
	// PeakMiB is the highest VmHWM seen.
	PeakMiB float64 `json:"peak_mib"`
}

// Path is the scoring code Run drives.
const Path = "mlmengine.Engine.ScoreShardTo (the ScoreShard activity's scorer): pool streamed from an in-process S3 store (store/s3embed) in chunks through mlm.Score; scores spooled to disk and uploaded, top candidates kept as the activity keeps them"

// Run builds the model and the pool, scores the pool as one shard with the
// real model engine, and samples memory along the way.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memory bench: %w", err)
	}
	cfg = cfg.withDefaults()
	dir, cleanup, err := workdir.OrTemp(cfg.WorkDir, "clozeloop-bench-memory-")
	if err != nil {
		return nil, fmt.Errorf("memory bench: %w", err)
	}
	defer cleanup()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", filepath.Join(dir, "s3"), s3embed.WithLogger(quiet))
	if err != nil {
		return nil, fmt.Errorf("memory bench: start embedded S3: %w", err)
	}
	defer srv.Close()
	st, err := store.Open(ctx, store.Config{Endpoint: srv.Endpoint(), Bucket: srv.Bucket(), Region: s3embed.Region, PathStyle: true,
		AccessKeyID: srv.Credentials().AccessKeyID, SecretAccessKey: srv.Credentials().SecretAccessKey}, quiet)
	if err != nil {
		return nil, fmt.Errorf("memory bench: open store: %w", err)
	}

	res := &Result{Unit: "items", Path: Path, Items: cfg.Items, Threads: cfg.Threads, ChunkSize: cfg.ChunkSize, BatchSize: cfg.BatchSize}
	words, desc, err := prepareModel(ctx, st, cfg, dir)
	if err != nil {
		return nil, fmt.Errorf("memory bench: %w", err)
	}
	res.Model = desc
	poolPath := filepath.Join(dir, "pool.jsonl")
	if err := WritePool(poolPath, cfg.Items, words, cfg.Seed); err != nil {
		return nil, fmt.Errorf("memory bench: %w", err)
	}
	if _, err := st.PutFile(ctx, poolKey, poolPath); err != nil {
		return nil, fmt.Errorf("memory bench: upload pool: %w", err)
	}
	cfg.Logger.Info("memory bench: pool ready", "items", cfg.Items, "model", desc)

	eng, err := mlmengine.New(mlmengine.Options{Store: st, CacheDir: filepath.Join(dir, "cache"), Device: "cpu", Threads: cfg.Threads,
		ScoreBatchSize: cfg.BatchSize, ChunkSize: cfg.ChunkSize, Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("memory bench: %w", err)
	}

	// What setup left behind is not the scorer's: collect it, then start
	// the peak afresh. Nothing is forced during scoring: the samples show
	// what a worker sees.
	runtime.GC()
	debug.FreeOSMemory()
	torchrt.ReleaseMemory()
	if err := ResetPeak(); err != nil {
		cfg.Logger.Warn("memory bench: VmHWM includes setup", "err", err)
	} else {
		res.PeakReset = true
	}
	start := time.Now()
	if res.Before, err = sample(0, start, Sample{}); err != nil {
		return nil, fmt.Errorf("memory bench: %w", err)
	}
	var (
		next    = 1
		prev    = res.Before
		sampErr error
	)
	progress := func(done, _ int) {
		if sampErr != nil || done*cfg.Marks < next*cfg.Items {
			return
		}
		s, err := sample(done, start, prev)
		if err != nil {
			sampErr = err
			return
		}
		res.Samples = append(res.Samples, s)
		prev = s
		for next*cfg.Items <= done*cfg.Marks {
			next++
		}
		cfg.Logger.Info("memory bench: scored", "items", done, "rss_mib", fmt.Sprintf("%.1f", s.RSSMiB), "items_per_s", fmt.Sprintf("%.0f", s.ItemsPerSec))
	}
	shard, err := eng.ScoreShardTo(ctx, activities.ScoreRequest{ModelURI: modelKey, PoolURI: poolKey, Shard: 0, NumShards: 1,
		Strategies: cfg.Strategies, Seed: int64(cfg.Seed)}, scoresKey, topM, progress)
	if err != nil {
		return nil, fmt.Errorf("memory bench: score the pool: %w", err)
	}
	if sampErr != nil {
		return nil, fmt.Errorf("memory bench: %w", sampErr)
	}
	elapsed := time.Since(start)
	if res.After, err = sample(cfg.Items, start, Sample{}); err != nil {
		return nil, fmt.Errorf("memory bench: %w", err)
	}
	res.After.ItemsPerSec = 0
	res.Scored = shard.Scored
	res.Seconds = elapsed.Seconds()
	res.ItemsPerSec = float64(cfg.Items) / elapsed.Seconds()
	runtime.KeepAlive(shard)
	if res.Scored != cfg.Items {
		return nil, fmt.Errorf("memory bench: the engine scored %d of %d items", res.Scored, cfg.Items)
	}
	res.verdict()
	return res, nil
}

// verdict sets the growth fields from the samples.
func (r *Result) verdict() {
	if len(r.Samples) == 0 {
		return
	}
	from := r.Samples[0]
	for _, s := range r.Samples {
		if s.Items*5 >= r.Items {
			from = s
			break
		}
	}
	last := r.Samples[len(r.Samples)-1]
	r.From = from
	r.LastMinusFromMiB = last.RSSMiB - from.RSSMiB
	r.GrowthMiB = r.LastMinusFromMiB
	var xs, ys []float64
	for _, s := range r.Samples {
		if s.Items >= from.Items {
			xs, ys = append(xs, float64(s.Items)), append(ys, s.RSSMiB)
		}
	}
	if slope, ok := lsqSlope(xs, ys); ok {
		r.GrowthMiB = slope * float64(last.Items-from.Items)
	}
	if from.RSSMiB > 0 {
		r.GrowthPct = 100 * r.GrowthMiB / from.RSSMiB
	}
	r.ThresholdMiB = min(32, 0.05*from.RSSMiB)
	r.Flat = r.GrowthMiB < r.ThresholdMiB
	r.HeapGrowthMiB = last.GoHeapMiB - from.GoHeapMiB
	if n := last.Items - from.Items; n > 0 {
		r.HeapBytesPerItem = r.HeapGrowthMiB * (1 << 20) / float64(n)
	}
	for _, s := range append([]Sample{r.Before, r.After}, r.Samples...) {
		r.PeakMiB = max(r.PeakMiB, s.HWMMiB)
	}
}

// lsqSlope returns the least-squares slope of ys over xs, and false when
// there are fewer than two points or the xs are all equal.
func lsqSlope(xs, ys []float64) (float64, bool) {
	if len(xs) < 2 || len(xs) != len(ys) {
		return 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}

// sample reads the process's memory after done items.
func sample(done int, start time.Time, prev Sample) (Sample, error) {
	st, err := Self()
	if err != nil {
		return Sample{}, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	el := time.Since(start).Seconds()
	c := torchrt.CHeapStats()
	s := Sample{Items: done, ElapsedS: el, RSSMiB: MiB(st.RSS), HWMMiB: MiB(st.HWM), FileMiB: MiB(st.File), GoHeapMiB: MiB(int64(ms.HeapInuse)),
		GoHeldMiB: MiB(int64(ms.HeapSys - ms.HeapReleased)), CHeapMiB: MiB(int64(c.InUse)), CFreeMiB: MiB(int64(c.Free))}
	if dt := el - prev.ElapsedS; dt > 0 && done > prev.Items {
		s.ItemsPerSec = float64(done-prev.Items) / dt
	}
	return s, nil
}

// prepareModel uploads the model and returns the words pool texts are
// made of and a description of the model.
func prepareModel(ctx context.Context, st *store.Store, cfg Config, dir string) ([]string, string, error) {
	if cfg.ModelDir != "" {
		words, err := vocabWords(filepath.Join(cfg.ModelDir, "vocab.txt"))
		if err != nil {
			return nil, "", err
		}
		if _, _, err := st.UploadDir(ctx, cfg.ModelDir, modelKey); err != nil {
			return nil, "", fmt.Errorf("upload model %s: %w", cfg.ModelDir, err)
		}
		mc, err := mlm.LoadConfig(cfg.ModelDir)
		if err != nil {
			return nil, "", fmt.Errorf("model %s: %w", cfg.ModelDir, err)
		}
		return words, fmt.Sprintf("%s (%s, %d layers, hidden %d, vocabulary %d)", cfg.ModelDir, mc.ModelType,
			mc.NumHiddenLayers, mc.HiddenSize, mc.VocabSize), nil
	}
	c := cfg.Model
	tok, err := mlm.SyntheticTokenizer(c.VocabSize)
	if err != nil {
		return nil, "", err
	}
	m, err := mlm.New(c, tok, mlm.Options{Device: "cpu", Threads: cfg.Threads, Seed: cfg.Seed})
	if err != nil {
		return nil, "", fmt.Errorf("create the model: %w", err)
	}
	modelDir := filepath.Join(dir, "model")
	err = m.Save(ctx, modelDir)
	m.Close()
	if err != nil {
		return nil, "", fmt.Errorf("save the model: %w", err)
	}
	if _, _, err := st.UploadDir(ctx, modelDir, modelKey); err != nil {
		return nil, "", fmt.Errorf("upload the model: %w", err)
	}
	words := make([]string, 0, c.VocabSize-5)
	for i := 5; i < c.VocabSize; i++ {
		words = append(words, fmt.Sprintf("w%d", i))
	}
	return words, fmt.Sprintf("random-weight %s, %d layers, hidden %d, %d heads, intermediate %d, vocabulary %d (synthetic tokenizer)",
		c.ModelType, c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize, c.VocabSize), nil
}

// vocabWords returns the whole-word, non-special entries of a WordPiece
// vocab.txt.
func vocabWords(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the model's vocabulary (the pool is made of its words): %w", err)
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.TrimSpace(sc.Text())
		if w == "" || strings.HasPrefix(w, "##") || (strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]")) || strings.ContainsAny(w, " \t") {
			continue
		}
		words = append(words, w)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(words) < 10 {
		return nil, fmt.Errorf("%s has %d whole words; need at least 10 to build a pool", path, len(words))
	}
	return words, nil
}

// WritePool writes n pool items (dataset JSONL) to path, streaming: each is
// MinWords to MaxWords words drawn from words, with one or two masks at
// distinct positions; the same seed gives the same pool.
func WritePool(path string, n int, words []string, seed uint64) (err error) {
	if n < 1 || len(words) == 0 {
		return errors.New("write pool: need at least one item and one word")
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write pool: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write pool %s: %w", path, cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	rng := rand.New(rand.NewPCG(seed, 0x706f6f6c))
	line := make([]string, 0, MaxWords)
	for i := 0; i < n; i++ {
		line = line[:0]
		l := MinWords + rng.IntN(MaxWords-MinWords+1)
		for j := 0; j < l; j++ {
			line = append(line, words[rng.IntN(len(words))])
		}
		a := rng.IntN(l)
		line[a] = dataset.MaskToken
		if rng.IntN(2) == 1 {
			b := (a + 1 + rng.IntN(l-1)) % l
			line[b] = dataset.MaskToken
		}
		if err := enc.Encode(dataset.Item{ID: fmt.Sprintf("pool-%08d", i), Text: strings.Join(line, " ")}); err != nil {
			return fmt.Errorf("write pool %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write pool %s: %w", path, err)
	}
	return nil
}
