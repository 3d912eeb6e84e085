// Package torchref runs the project's PyTorch eager reference benchmark
// (bench_ref.py, a plain-torch BERT masked LM with random weights) with the
// system's python3 and torch, and parses its result. The benchmarks of
// clozeloop compare their own numbers with it, measured on the same machine.
//
// The Python scripts are embedded in the package and written to a temporary
// folder for each run, so the package works from an installed binary. It
// needs python3 with torch (Debian 12: apt-get install python3-torch); no
// transformers.
//
// bert_ref.py, also embedded, is a reusable reference implementation of
// Hugging Face BertForMaskedLM (safetensors read by hand) for numeric parity
// tests; family_ref.py, likewise, of DistilBertForMaskedLM and
// RobertaForMaskedLM. [WriteScripts] puts them where a test can import
// them.
package torchref

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed bench_ref.py bert_ref.py check_bert_ref.py family_ref.py
var scripts embed.FS

// PythonEnv is the environment variable naming the python3 to use first.
const PythonEnv = "CLOZELOOP_PYTHON"

// ErrNoTorch is returned (wrapped) when no python3 that imports torch is found.
var ErrNoTorch = errors.New("no python3 with torch found (Debian: apt-get install python3-torch; or set " + PythonEnv + ")")

// Mode is what the reference measures.
type Mode string

// The reference's modes.
const (
	// ModeScore runs the masked-LM forward with one mask per item and
	// softmax + top-5 at the mask; reports items/s.
	ModeScore Mode = "score"
	// ModeTrain runs one fine-tuning step (forward with dropout,
	// cross-entropy at the masks, backward, AdamW); reports tokens/s.
	ModeTrain Mode = "train"
	// ModeMatmul measures torch.matmul GFLOP/s for the given shapes.
	ModeMatmul Mode = "matmul"
)

// ModelOf returns the reference's model size for a fill-mask config's
// dimensions.
func ModelOf(vocab, hidden, layers, heads, intermediate, maxPos int) Model {
	return Model{Vocab: vocab, Hidden: hidden, Layers: layers, Heads: heads, Intermediate: intermediate, MaxPos: maxPos}
}

// Model is the size of the BERT model, in Hugging Face config terms.
type Model struct {
	Vocab        int `json:"vocab_size"`
	Hidden       int `json:"hidden_size"`
	Layers       int `json:"num_hidden_layers"`
	Heads        int `json:"num_attention_heads"`
	Intermediate int `json:"intermediate_size"`
	MaxPos       int `json:"max_position_embeddings"`
}

// BertBase returns the bert-base size: vocab 30522, hidden 768, 12 layers,
// 12 heads, intermediate 3072, 512 positions.
func BertBase() Model {
	return Model{Vocab: 30522, Hidden: 768, Layers: 12, Heads: 12, Intermediate: 3072, MaxPos: 512}
}

// Tiny returns a tiny model for tests: vocab 100, hidden 32, 2 layers,
// 2 heads, intermediate 64, 64 positions.
func Tiny() Model {
	return Model{Vocab: 100, Hidden: 32, Layers: 2, Heads: 2, Intermediate: 64, MaxPos: 64}
}

// Shape is a matrix multiply M×K · K×N.
type Shape struct{ M, K, N int }

// String returns "MxKxN".
func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.M, s.K, s.N) }

// Options configure one reference run. Zero values take the defaults noted.
type Options struct {
	// Python is the interpreter; empty means FindPython's choice.
	Python string
	// Mode is what to measure; required.
	Mode Mode
	// Model is the model size; zero means BertBase.
	Model Model
	// Batch and Length are the input shape; zero means 32 and 32.
	Batch, Length int
	// Lengths, in score mode, replaces Length: the items have these
	// lengths ([CLS] and [SEP] included) and are cut, in this order, into
	// batches of Batch items padded to the longest item of each batch, as
	// the Hugging Face pipeline batches them. A timed run is one pass over
	// all of them; the warm-up runs the first batch.
	Lengths []int
	// MaskOnly computes the MLM head only at the mask positions.
	MaskOnly bool
	// Threads is torch.set_num_threads; zero means the number of CPUs.
	Threads int
	// Warmup untimed runs (zero means 1) precede Runs timed runs (zero
	// means 5); the result is their median.
	Warmup, Runs int
	// MinSeconds, when positive, keeps timing runs (beyond Runs) until
	// the timed runs add up to that long; MaxSeconds, when positive, stops
	// timing after that long (after at least one run).
	MinSeconds, MaxSeconds float64
	// Seed seeds weights and inputs.
	Seed int64
	// Shapes are the matmul shapes; empty means the bert-base ones.
	Shapes []Shape
}

func (o Options) withDefaults() Options {
	if o.Model == (Model{}) {
		o.Model = BertBase()
	}
	if o.Batch == 0 {
		o.Batch = 32
	}
	if o.Length == 0 {
		o.Length = 32
	}
	if o.Warmup == 0 {
		o.Warmup = 1
	}
	if o.Runs == 0 {
		o.Runs = 5
	}
	if len(o.Shapes) == 0 {
		o.Shapes = []Shape{{1024, 768, 3072}, {1024, 3072, 768}, {2048, 2048, 2048}}
	}
	return o
}

// Args validates o and returns the arguments of bench_ref.py. With
// Lengths, Run adds --lengths-file naming a file it writes.
func (o Options) Args() ([]string, error) {
	o = o.withDefaults()
	switch o.Mode {
	case ModeScore, ModeTrain, ModeMatmul:
	default:
		return nil, fmt.Errorf("torchref: unknown mode %q (valid: score, train, matmul)", o.Mode)
	}
	if len(o.Lengths) > 0 && o.Mode != ModeScore {
		return nil, fmt.Errorf("torchref: lengths are for score mode, not %s", o.Mode)
	}
	return o.commonArgs(Cell{Batch: o.Batch, Length: o.Length, Lengths: o.Lengths, MaskOnly: o.MaskOnly})
}

// commonArgs validates the model, timing and cell of o (already with
// defaults) and returns the arguments of bench_ref.py for o.Mode.
func (o Options) commonArgs(cells ...Cell) ([]string, error) {
	m := o.Model
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab", m.Vocab}, {"hidden", m.Hidden}, {"layers", m.Layers}, {"heads", m.Heads},
		{"intermediate", m.Intermediate}, {"max-pos", m.MaxPos}, {"batch", o.Batch}, {"length", o.Length}, {"runs", o.Runs}} {
		if f.v <= 0 {
			return nil, fmt.Errorf("torchref: %s = %d: must be positive", f.name, f.v)
		}
	}
	if o.Threads < 0 || o.Warmup < 0 || o.MinSeconds < 0 || o.MaxSeconds < 0 {
		return nil, fmt.Errorf("torchref: threads %d, warmup %d, min seconds %g and max seconds %g must not be negative",
			o.Threads, o.Warmup, o.MinSeconds, o.MaxSeconds)
	}
	if m.Hidden%m.Heads != 0 {
		return nil, fmt.Errorf("torchref: hidden %d is not a multiple of heads %d", m.Hidden, m.Heads)
	}
	for _, c := range cells {
		if err := c.validate(m); err != nil {
			return nil, err
		}
	}
	shapes := make([]string, len(o.Shapes))
	for i, s := range o.Shapes {
		if s.M <= 0 || s.K <= 0 || s.N <= 0 {
			return nil, fmt.Errorf("torchref: matmul shape %s: dimensions must be positive", s)
		}
		shapes[i] = s.String()
	}
	itoa := strconv.Itoa
	args := []string{string(o.Mode),
		"--vocab", itoa(m.Vocab), "--hidden", itoa(m.Hidden), "--layers", itoa(m.Layers),
		"--heads", itoa(m.Heads), "--intermediate", itoa(m.Intermediate), "--max-pos", itoa(m.MaxPos),
		"--batch", itoa(o.Batch), "--length", itoa(o.Length),
		"--warmup", itoa(o.Warmup), "--runs", itoa(o.Runs), "--seed", strconv.FormatInt(o.Seed, 10),
		"--shapes", strings.Join(shapes, ","),
	}
	if o.MinSeconds > 0 {
		args = append(args, "--min-seconds", strconv.FormatFloat(o.MinSeconds, 'g', -1, 64))
	}
	if o.MaxSeconds > 0 {
		args = append(args, "--max-seconds", strconv.FormatFloat(o.MaxSeconds, 'g', -1, 64))
	}
	if o.Threads > 0 {
		args = append(args, "--threads", itoa(o.Threads))
	}
	if o.MaskOnly {
		args = append(args, "--mask-only")
	}
	return args, nil
}

// MatmulResult is one matmul measurement.
type MatmulResult struct {
	M         int       `json:"m"`
	K         int       `json:"k"`
	N         int       `json:"n"`
	Ms        float64   `json:"ms"`
	MsRuns    []float64 `json:"ms_runs"`
	GFLOPPerS float64   `json:"gflop_per_s"`
}

// Result is the reference's measurement, as bench_ref.py prints it.
type Result struct {
	Mode         Mode   `json:"mode"`
	TorchVersion string `json:"torch_version"`
	Threads      int    `json:"threads"`
	Warmup       int    `json:"warmup"`
	Runs         int    `json:"runs"`
	// Python is the interpreter that ran the reference.
	Python string `json:"python"`

	// Score and train modes. Length is the longest item; Items and
	// Tokens are the items and tokens (padding excluded) of one timed run;
	// Lengths echoes Options.Lengths.
	Model                *Model    `json:"config,omitempty"`
	Batch                int       `json:"batch,omitempty"`
	Length               int       `json:"length,omitempty"`
	Lengths              []int     `json:"lengths,omitempty"`
	Items                int       `json:"items,omitempty"`
	Tokens               int       `json:"tokens,omitempty"`
	MaskOnly             bool      `json:"mask_only,omitempty"`
	MsPerBatch           float64   `json:"ms_per_batch,omitempty"`
	MsRuns               []float64 `json:"ms_runs,omitempty"`
	ItemsPerS            float64   `json:"items_per_s,omitempty"`
	TokensPerS           float64   `json:"tokens_per_s,omitempty"`
	GFLOPPerBatch        float64   `json:"gflop_per_batch,omitempty"`
	GFLOPPerS            float64   `json:"gflop_per_s,omitempty"`
	EncoderGFLOPPerBatch float64   `json:"encoder_gflop_per_batch,omitempty"`
	LossFirst            float64   `json:"loss_first,omitempty"`
	LossLast             float64   `json:"loss_last,omitempty"`

	// Matmul mode.
	Matmul []MatmulResult `json:"matmul,omitempty"`
}

// WriteScripts writes the embedded Python scripts (bench_ref.py,
// bert_ref.py, check_bert_ref.py, family_ref.py) into dir, which must
// exist.
func WriteScripts(dir string) error {
	entries, err := scripts.ReadDir(".")
	if err != nil {
		return fmt.Errorf("torchref: list embedded scripts: %w", err)
	}
	for _, e := range entries {
		b, err := scripts.ReadFile(e.Name())
		if err != nil {
			return fmt.Errorf("torchref: read embedded %s: %w", e.Name(), err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return fmt.Errorf("torchref: write %s: %w", e.Name(), err)
		}
	}
	return nil
}

// FindPython returns the first interpreter that imports torch, and torch's
// version. It tries candidates in order; without candidates it tries
// $CLOZELOOP_PYTHON alone when that is set (an interpreter named on purpose
// overrides the search, so that pointing it at a python without torch
// shows what happens without torch), otherwise python3 on PATH, then
// /usr/bin/python3 (Debian's, which python3-torch installs into, even when
// another python3 is first on PATH). The error wraps ErrNoTorch and says
// what each candidate answered.
func FindPython(ctx context.Context, candidates ...string) (python, version string, err error) {
	if len(candidates) == 0 {
		if p := os.Getenv(PythonEnv); p != "" {
			candidates = []string{p}
		} else {
			candidates = []string{"python3", "/usr/bin/python3"}
		}
	}
	var tried []string
	seen := map[string]bool{}
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: not found", c))
			continue
		}
		if real, err := filepath.EvalSymlinks(path); err == nil && seen[real] {
			continue
		} else if err == nil {
			seen[real] = true
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		out, err := exec.CommandContext(pctx, path, "-c", "import torch; print(torch.__version__)").CombinedOutput()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return "", "", fmt.Errorf("torchref: find python: %w", ctx.Err())
			}
			tried = append(tried, fmt.Sprintf("%s: %s", path, lastLine(out, err)))
			continue
		}
		return path, strings.TrimSpace(string(out)), nil
	}
	return "", "", fmt.Errorf("torchref: %w; tried %s", ErrNoTorch, strings.Join(tried, "; "))
}

// Run runs the reference with opts and returns its parsed result.
func Run(ctx context.Context, opts Options) (Result, error) {
	args, err := opts.Args()
	if err != nil {
		return Result{}, err
	}
	python := opts.Python
	if python == "" {
		if python, _, err = FindPython(ctx); err != nil {
			return Result{}, err
		}
	}
	var files map[string][]byte
	if len(opts.Lengths) > 0 {
		files = map[string][]byte{"lengths.txt": []byte(joinInts(opts.Lengths, " ") + "\n")}
		args = append(args, "--lengths-file", "lengths.txt")
	}
	out, err := runScript(ctx, python, args, files)
	if err != nil {
		return Result{}, err
	}
	res, err := parseResult(out)
	if err != nil {
		return Result{}, fmt.Errorf("torchref: %s %s: %w", python, opts.Mode, err)
	}
	if res.Mode != opts.Mode {
		return Result{}, fmt.Errorf("torchref: asked for mode %s, the script reported %q", opts.Mode, res.Mode)
	}
	res.Python = python
	return res, nil
}

// runScript writes the scripts and files (name → content) into a temporary
// folder, runs bench_ref.py with args there and returns its stdout. File
// names in args are relative to that folder.
func runScript(ctx context.Context, python string, args []string, files map[string][]byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "clozeloop-torchref-")
	if err != nil {
		return nil, fmt.Errorf("torchref: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := WriteScripts(dir); err != nil {
		return nil, err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("torchref: write %s: %w", name, err)
		}
	}
	cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join(dir, "bench_ref.py")}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("torchref: %s %s: %w", python, args[0], ctx.Err())
		}
		return nil, fmt.Errorf("torchref: %s bench_ref.py %s: %s", python, truncate(strings.Join(args, " "), 300), lastLine(stderr.Bytes(), err))
	}
	return stdout.Bytes(), nil
}

// joinInts formats v separated by sep.
func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// parseResult parses the script's last JSON line and checks that its
// numbers are sane.
func parseResult(out []byte) (Result, error) {
	line := bytes.TrimSpace(out)
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	return parseLine(line)
}

// parseLine parses one result line and checks that its numbers are sane.
func parseLine(line []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(line, &r); err != nil {
		return Result{}, fmt.Errorf("parse output %q: %w", truncate(string(line), 200), err)
	}
	pos := func(name string, v float64) error {
		if !(v > 0) || math.IsInf(v, 1) {
			return fmt.Errorf("output %s = %v, want a positive number", name, v)
		}
		return nil
	}
	if r.TorchVersion == "" || r.Threads <= 0 {
		return Result{}, fmt.Errorf("output lacks torch_version or threads: %q", truncate(string(line), 200))
	}
	switch r.Mode {
	case ModeScore, ModeTrain:
		for _, c := range []struct {
			n string
			v float64
		}{{"ms_per_batch", r.MsPerBatch}, {"items_per_s", r.ItemsPerS}, {"tokens_per_s", r.TokensPerS}, {"gflop_per_s", r.GFLOPPerS}} {
			if err := pos(c.n, c.v); err != nil {
				return Result{}, err
			}
		}
		if r.Model == nil || r.Batch <= 0 || r.Length <= 0 {
			return Result{}, fmt.Errorf("output lacks config, batch or length")
		}
	case ModeMatmul:
		if len(r.Matmul) == 0 {
			return Result{}, fmt.Errorf("output has no matmul results")
		}
		for _, m := range r.Matmul {
			if err := pos("matmul gflop_per_s", m.GFLOPPerS); err != nil {
				return Result{}, err
			}
		}
	default:
		return Result{}, fmt.Errorf("output has unknown mode %q", r.Mode)
	}
	return r, nil
}

// lastLine returns the last non-empty line of a process's output, or err.
func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return fmt.Sprintf("%v: %s", err, truncate(l, 300))
	}
	return err.Error()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
