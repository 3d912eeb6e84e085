package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/bench/torchref"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/torchrt"
)

// benchSections returns the sections of "clozeloop bench", in the order
// "bench all" runs them.
func benchSections() []string {
	return []string{"score", "train", "flops", "predict", "temporal", "memory"}
}

func benchCmd() command {
	return command{
		name:    "bench",
		summary: "benchmark suite: scoring, training, GFLOP/s against PyTorch eager; one-sentence predict latency; Temporal overhead; memory",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			sub := "all"
			if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
				sub, args = args[0], args[1:]
			}
			switch sub {
			case "all":
				return runBenchAll(ctx, env, args)
			case "score", "train", "flops":
				h, err := benchHeaderFromArgs(ctx, env, args)
				if err != nil {
					return err
				}
				return runBenchSection(ctx, env, sub, args, h)
			case "temporal":
				return runBenchTemporal(ctx, env, args)
			case "memory":
				return runBenchMemory(ctx, env, args)
			case "predict":
				return runBenchPredict(ctx, env, args)
			}
			return usagef("unknown bench section %q: want all (the default), %s", sub, strings.Join(benchSections(), ", "))
		},
	}
}

// benchCommon are the flags every model section (score, train, flops)
// takes; "bench all" takes them too and passes them on.
type benchCommon struct {
	asJSON  bool
	quick   bool
	noTorch bool
	python  string
	models  string
	threads string
	fs      *flag.FlagSet
}

// register adds the common flags to fs.
func (c *benchCommon) register(fs *flag.FlagSet) {
	c.fs = fs
	fs.BoolVar(&c.asJSON, "json", false, "print one JSON object per line (the header, then one per section)")
	fs.BoolVar(&c.quick, "quick", false, "a reduced, fast run (tiny grid, few items, short timings): for tests and smoke checks")
	fs.BoolVar(&c.noTorch, "no-torch", false, "skip the PyTorch eager reference")
	fs.StringVar(&c.python, "python", "", "python3 with torch for the reference (default: $"+torchref.PythonEnv+", python3, /usr/bin/python3)")
	fs.StringVar(&c.models, "models", "small,bert-base", "random-weight model sizes, comma separated: tiny, small (the default model's shape), bert-base")
	fs.StringVar(&c.threads, "threads", "1,2", "libtorch thread counts, comma separated")
}

// set reports whether the flag name was given on the command line.
func (c *benchCommon) set(name string) bool {
	return flagGiven(c.fs, name)
}

// forward returns the common flags as arguments for a section; --models
// and --threads only when given, so that --quick picks its own.
func (c *benchCommon) forward() []string {
	var args []string
	if c.set("models") {
		args = append(args, "--models", c.models)
	}
	if c.set("threads") {
		args = append(args, "--threads", c.threads)
	}
	if c.asJSON {
		args = append(args, "--json")
	}
	if c.quick {
		args = append(args, "--quick")
	}
	if c.noTorch {
		args = append(args, "--no-torch")
	}
	if c.python != "" {
		args = append(args, "--python", c.python)
	}
	return args
}

// modelList parses --models into named configurations.
func (c *benchCommon) modelList() ([]benchModel, error) {
	var out []benchModel
	for _, name := range splitList(c.models) {
		m, err := benchModelNamed(name)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, usagef("--models is empty")
	}
	return out, nil
}

// threadList parses --threads.
func (c *benchCommon) threadList() ([]int, error) {
	return parseInts("threads", c.threads, 1, 1024)
}

// applyQuick, under --quick, sets each reduced default whose flag (the map's
// key) was not given on the command line.
func (c *benchCommon) applyQuick(defaults map[string]func()) {
	if !c.quick {
		return
	}
	for name, apply := range defaults {
		if !c.set(name) {
			apply()
		}
	}
}

// lists returns the models of --models and the thread counts of --threads.
func (c *benchCommon) lists() ([]benchModel, []int, error) {
	models, err := c.modelList()
	if err != nil {
		return nil, nil, err
	}
	threads, err := c.threadList()
	if err != nil {
		return nil, nil, err
	}
	return models, threads, nil
}

// benchModel is a named random-weight model configuration.
type benchModel struct {
	Name string
	Cfg  mlm.Config
}

// benchModelNamed returns the configuration called name: tiny
// (mlm.TinyConfig, vocabulary 8000), small (the shape of the default model
// that "clozeloop pretrain --config small" trains: 4 layers, hidden 256,
// 4 heads, intermediate 1024, vocabulary 8000) or bert-base
// (mlm.BERTBaseConfig: vocabulary 30522, 12 layers, hidden 768).
func benchModelNamed(name string) (benchModel, error) {
	switch name {
	case "tiny":
		return benchModel{"tiny", mlm.TinyConfig(8000)}, nil
	case "small":
		c, err := pretrainConfig("small", 8000)
		return benchModel{"small", c}, err
	case "bert-base", "base":
		return benchModel{"bert-base", mlm.BERTBaseConfig()}, nil
	}
	return benchModel{}, usagef("unknown model %q: want tiny, small or bert-base", name)
}

// refModel returns the reference's description of cfg.
func refModel(cfg mlm.Config) torchref.Model {
	return torchref.ModelOf(cfg.VocabSize, cfg.HiddenSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads,
		cfg.IntermediateSize, cfg.MaxPositionEmbeddings)
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseInts parses the comma-separated integers of flag name, each in
// [lo, hi].
func parseInts(name, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			return nil, usagef("--%s: %q is not an integer in [%d, %d]", name, f, lo, hi)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, usagef("--%s is empty", name)
	}
	return out, nil
}

// benchHeader describes the machine and software a bench ran on.
type benchHeader struct {
	Section      string  `json:"section"`
	Time         string  `json:"time"`
	CPUModel     string  `json:"cpu_model"`
	LogicalCPUs  int     `json:"logical_cpus"`
	LoadAvg1     float64 `json:"load_avg_1m"`
	GoVersion    string  `json:"go_version"`
	Libtorch     string  `json:"libtorch_version"`
	BLAS         string  `json:"blas"`
	BLASPath     string  `json:"blas_path,omitempty"`
	TorchVersion string  `json:"pytorch_version,omitempty"`
	Python       string  `json:"python,omitempty"`
	// TorchMissing says why the PyTorch reference is not run, when it is
	// not.
	TorchMissing string `json:"pytorch_missing,omitempty"`
}

// torch reports whether the PyTorch reference runs.
func (h benchHeader) torch() bool { return h.Python != "" }

// benchHeaderFor gathers the header; it finds the reference's python
// unless noTorch. A python named by --python that lacks torch is an error;
// when none of the default candidates has torch the reference is skipped
// with a warning.
func benchHeaderFor(ctx context.Context, env *cmdEnv, c *benchCommon) (benchHeader, error) {
	h := benchHeader{Section: "machine", Time: time.Now().UTC().Format(time.RFC3339), LogicalCPUs: runtime.NumCPU(),
		GoVersion: runtime.Version(), Libtorch: torchrt.Version()}
	h.CPUModel, h.LoadAvg1 = cpuInfo()
	if v, err := torchrt.RuntimeVersion(); err == nil && v != "" {
		h.Libtorch = v
	}
	if b, err := torchrt.DetectBLAS(); err == nil {
		h.BLAS, h.BLASPath = b.Name, b.Path
	} else {
		h.BLAS = "unknown (" + err.Error() + ")"
	}
	if c.noTorch {
		h.TorchMissing = "--no-torch"
		return h, nil
	}
	var cands []string
	if c.python != "" {
		cands = []string{c.python}
	}
	py, v, err := torchref.FindPython(ctx, cands...)
	switch {
	case err == nil:
		h.Python, h.TorchVersion = py, v
	case c.python == "" && errors.Is(err, torchref.ErrNoTorch):
		env.log.Warn("bench: running without the PyTorch reference", "err", err)
		h.TorchMissing = err.Error()
	default:
		return h, fmt.Errorf("bench: find the PyTorch reference: %w", err)
	}
	return h, nil
}

// cpuInfo returns the CPU model from /proc/cpuinfo and the 1-minute load
// average (zero values where the files are missing).
func cpuInfo() (model string, load float64) {
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if model == "" {
		model = runtime.GOARCH
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			load, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return model, load
}

// printBenchHeader writes h as text or as one JSON line.
func printBenchHeader(w io.Writer, h benchHeader, asJSON bool) error {
	if asJSON {
		return writeJSONLine(w, h)
	}
	fmt.Fprintf(w, "clozeloop bench, %s\n", h.Time)
	fmt.Fprintf(w, "machine:  %s, %d logical CPUs, load average %.2f\n", h.CPUModel, h.LogicalCPUs, h.LoadAvg1)
	fmt.Fprintf(w, "software: %s, libtorch %s, BLAS %s", h.GoVersion, h.Libtorch, h.BLAS)
	if h.BLASPath != "" {
		fmt.Fprintf(w, " (%s)", h.BLASPath)
	}
	fmt.Fprintln(w)
	if h.torch() {
		fmt.Fprintf(w, "PyTorch:  %s (%s), eager, same machine, same run\n", h.TorchVersion, h.Python)
	} else {
		fmt.Fprintf(w, "PyTorch:  not run: %s\n", h.TorchMissing)
	}
	return nil
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// benchHeaderFromArgs reads only the common flags of a section's args to
// print the header before the section runs (the section parses them all
// again).
func benchHeaderFromArgs(ctx context.Context, env *cmdEnv, args []string) (benchHeader, error) {
	var c benchCommon
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.register(fs)
	// Unknown flags belong to the section; skip them here.
	var known []string
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(strings.SplitN(args[i], "=", 2)[0], "-")
		if f := fs.Lookup(name); f != nil && strings.HasPrefix(args[i], "-") {
			known = append(known, args[i])
			_, isBool := f.Value.(interface{ IsBoolFlag() bool })
			if !isBool && !strings.Contains(args[i], "=") && i+1 < len(args) {
				i++
				known = append(known, args[i])
			}
		}
	}
	if err := fs.Parse(known); err != nil {
		return benchHeader{}, usageError{err}
	}
	if wantsHelp(args) {
		return benchHeader{}, nil // the section prints its flags
	}
	h, err := benchHeaderFor(ctx, env, &c)
	if err != nil {
		return h, err
	}
	return h, printBenchHeader(env.stdout, h, c.asJSON)
}

// wantsHelp reports whether args ask for a flag listing.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			return true
		}
	}
	return false
}

// runBenchSection runs one model section with the header h already
// printed.
func runBenchSection(ctx context.Context, env *cmdEnv, name string, args []string, h benchHeader) error {
	switch name {
	case "score":
		return runBenchScore(ctx, env, args, h)
	case "train":
		return runBenchTrain(ctx, env, args, h)
	case "flops":
		return runBenchFlops(ctx, env, args, h)
	}
	return fmt.Errorf("bench: no section %q", name)
}

// runBenchAll runs every section in turn: score, train and flops with the
// common flags, then temporal and memory with --json and --quick.
func runBenchAll(ctx context.Context, env *cmdEnv, args []string) error {
	var c benchCommon
	fs := newFlagSet(env, "bench [all]", "[--quick] [--json] [--no-torch] [--python PATH] [--models small,bert-base] [--threads 1,2]\n\n"+
		"Sections (each also runs alone: clozeloop bench <section> -h):\n"+
		"  score     pool scoring items/s, Go vs PyTorch eager (every position and mask only)\n"+
		"  train     fine-tuning tokens/s, Go vs PyTorch eager\n"+
		"  flops     encoder GFLOP/s against libtorch's matrix-multiply GFLOP/s\n"+
		"  temporal  orchestration overhead of a round and label round trips on an embedded Temporal server\n"+
		"  memory    peak RSS while scoring a large pool")
	c.register(fs)
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	h, err := benchHeaderFor(ctx, env, &c)
	if err != nil {
		return err
	}
	if err := printBenchHeader(env.stdout, h, c.asJSON); err != nil {
		return err
	}
	var short []string
	if c.asJSON {
		short = append(short, "--json")
	}
	if c.quick {
		short = append(short, "--quick")
	}
	for _, s := range benchSections() {
		if !c.asJSON {
			fmt.Fprintf(env.stdout, "\n== %s ==\n", s)
		}
		start := time.Now()
		var err error
		switch s {
		case "temporal":
			err = runBenchTemporal(ctx, env, append([]string(nil), short...))
		case "memory":
			err = runBenchMemory(ctx, env, append([]string(nil), short...))
		case "predict":
			err = runBenchPredict(ctx, env, append([]string(nil), short...))
		default:
			err = runBenchSection(ctx, env, s, c.forward(), h)
		}
		if err != nil {
			return fmt.Errorf("bench %s: %w", s, err)
		}
		env.log.Info("bench section done", "section", s, "seconds", time.Since(start).Round(time.Second).Seconds())
	}
	return nil
}

// withThreads runs fn on one locked OS thread with libtorch's intra-op
// thread count set to n (the setting is per OS thread with OpenMP).
func withThreads(n int, fn func() error) error {
	return torchrt.Run(func() error {
		if err := torchrt.SetNumThreads(n); err != nil {
			return err
		}
		return fn()
	})
}

// ratio returns a/b, or 0 when either is not positive.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// cellf formats a rate, or "-" when it was not measured.
func cellf(format string, v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// ratiof formats a ratio as "1.23x", or "-".
func ratiof(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}
