package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/models"
)

// benchPredictTexts are single-sentence fill-mask requests of the kind
// users type: short, one mask, WordNet-style wording for the shipped model.
var benchPredictTexts = [...]string{
	"the cat sat on the [MASK] .",
	"I want to [MASK] a book .",
	"a large [MASK] of water surrounded by land",
	"he was [MASK] by the noise in the street",
	"the committee will [MASK] the proposal next week",
	"she plays the [MASK] in an orchestra",
	"a tool for cutting [MASK]",
	"they walked slowly along the [MASK] of the river",
}

// predictLatency is the result of "bench predict".
type predictLatency struct {
	Section  string  `json:"section"`
	Model    string  `json:"model"`
	Threads  int     `json:"threads"`
	Requests int     `json:"requests"`
	TopK     int     `json:"top_k"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MeanMs   float64 `json:"mean_ms"`
	// TokenizeP50ms is the tokenizer's share: Encode of the same texts.
	TokenizeP50ms float64 `json:"tokenize_p50_ms"`
	PerSecond     float64 `json:"requests_per_second"`
}

// runBenchPredict is "clozeloop bench predict": the latency of one
// fill-mask request of one sentence (FillMask, as `clozeloop predict`
// runs it) on a model already loaded and warm, as a serving process sees
// it.
func runBenchPredict(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "bench predict", "[--quick] [--json] [--model DIR] [--requests N] [--threads N] [--top-k K]\n\n"+
		"Loads the model once (default: the shipped "+models.WordNetSmall+"), warms it up, then times N single-sentence\n"+
		"FillMask requests one after another and prints the latency percentiles, beside the tokenizer's share.")
	asJSON := fs.Bool("json", false, "print one JSON object")
	quick := fs.Bool("quick", false, "a reduced run (40 requests): for tests and smoke checks")
	modelDir := fs.String("model", "", "model directory (default: the shipped "+models.WordNetSmall+", written to a temporary folder)")
	n := fs.Int("requests", 400, "timed requests")
	threads := fs.Int("threads", 1, "libtorch threads")
	topK := fs.Int("top-k", 5, "predictions per mask")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the timed requests to `FILE` (go tool pprof -top bin/clozeloop FILE)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *quick && !flagGiven(fs, "requests") {
		*n = 40
	}
	if *n < 1 || *threads < 1 || *topK < 1 {
		return usagef("--requests, --threads and --top-k must be positive")
	}
	dir, name := *modelDir, *modelDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "clozeloop-bench-predict-")
		if err != nil {
			return fmt.Errorf("bench predict: %w", err)
		}
		defer os.RemoveAll(tmp)
		if _, err := models.WriteTo(ctx, models.WordNetSmall, tmp); err != nil {
			return fmt.Errorf("bench predict: write the shipped model: %w", err)
		}
		dir, name = tmp, models.WordNetSmall
	}
	m, err := mlm.Load(ctx, dir, mlm.Options{Device: "cpu", Threads: *threads})
	if err != nil {
		return err
	}
	defer m.Close()
	opts := mlm.FillOptions{TopK: *topK, BatchSize: 1}
	texts := benchPredictTexts[:]
	for _, t := range texts { // warm-up: every shape once
		if _, err := m.FillMask(ctx, []string{t}, opts); err != nil {
			return fmt.Errorf("bench predict: %w", err)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench predict: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench predict: CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	lat := make([]time.Duration, *n)
	tokLat := make([]time.Duration, *n)
	tok := m.Tokenizer()
	for i := range lat {
		if err := ctx.Err(); err != nil {
			return err
		}
		text := []string{texts[i%len(texts)]}
		start := time.Now()
		if _, err := m.FillMask(ctx, text, opts); err != nil {
			return fmt.Errorf("bench predict: %w", err)
		}
		lat[i] = time.Since(start)
		start = time.Now()
		if _, err := tok.Encode(text[0]); err != nil {
			return fmt.Errorf("bench predict: tokenize: %w", err)
		}
		tokLat[i] = time.Since(start)
	}
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	res := predictLatency{Section: "predict", Model: name, Threads: *threads, Requests: *n, TopK: *topK,
		P50ms: ms(percentile(lat, 0.50)), P90ms: ms(percentile(lat, 0.90)), P99ms: ms(percentile(lat, 0.99)),
		MeanMs: ms(total / time.Duration(*n)), TokenizeP50ms: ms(percentile(tokLat, 0.50)),
		PerSecond: float64(*n) / total.Seconds()}
	if *asJSON {
		return writeJSON(env.stdout, res)
	}
	fmt.Fprintf(env.stdout, "one-sentence fill-mask, warm process: model %s, %d thread(s), top-%d, %d requests\n", name, *threads, *topK, *n)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "p50 ms\tp90 ms\tp99 ms\tmean ms\trequests/s\ttokenize p50 ms\t")
	fmt.Fprintf(tw, "%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.3f\t\n", res.P50ms, res.P90ms, res.P99ms, res.MeanMs, res.PerSecond, res.TokenizeP50ms)
	return tw.Flush()
}

// percentile is the nearest-rank percentile of d (not modified).
func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
