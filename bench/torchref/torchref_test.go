package torchref

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// torchPython returns a python3 with torch or skips the test; under
// CI=true (CI installs Debian's python3-torch) a missing torch fails it.
func torchPython(t *testing.T) string {
	t.Helper()
	p, v, err := FindPython(context.Background())
	if errors.Is(err, ErrNoTorch) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("python %s, torch %s", p, v)
	return p
}

func TestArgs(t *testing.T) {
	args, err := Options{Mode: ModeScore}.Args()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{"score ", "--vocab 30522", "--hidden 768", "--layers 12", "--heads 12",
		"--intermediate 3072", "--max-pos 512", "--batch 32", "--length 32", "--runs 5", "--warmup 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("default args %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "--mask-only") || strings.Contains(got, "--threads") {
		t.Errorf("default args %q have --mask-only or --threads", got)
	}
	args, _ = Options{Mode: ModeScore, MaskOnly: true, Threads: 2, Model: Tiny()}.Args()
	if got := strings.Join(args, " "); !strings.Contains(got, "--mask-only") || !strings.Contains(got, "--threads 2") || !strings.Contains(got, "--vocab 100") {
		t.Errorf("args %q", got)
	}
	bad := []struct {
		name string
		o    Options
		want string
	}{
		{"mode", Options{Mode: "infer"}, "unknown mode"},
		{"heads", Options{Mode: ModeScore, Model: Model{Vocab: 10, Hidden: 30, Layers: 1, Heads: 4, Intermediate: 8, MaxPos: 16}}, "not a multiple"},
		{"length", Options{Mode: ModeScore, Model: Tiny(), Length: 100}, "length 100"},
		{"batch", Options{Mode: ModeTrain, Batch: -1}, "batch = -1"},
		{"layers", Options{Mode: ModeTrain, Model: Model{Vocab: 10, Hidden: 8, Heads: 2, Intermediate: 8, MaxPos: 40}}, "layers = 0"},
		{"shape", Options{Mode: ModeMatmul, Shapes: []Shape{{0, 2, 2}}}, "0x2x2"},
		{"threads", Options{Mode: ModeMatmul, Threads: -2}, "negative"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.o.Args(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestParseResult(t *testing.T) {
	good := `{"mode": "score", "torch_version": "1.13", "threads": 2, "config": {"vocab_size": 100}, "batch": 2, "length": 8, "ms_per_batch": 1.5, "items_per_s": 1333, "tokens_per_s": 10666, "gflop_per_s": 0.5}`
	r, err := parseResult([]byte("warning noise\n" + good + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.ItemsPerS != 1333 || r.Model.Vocab != 100 || r.Threads != 2 {
		t.Errorf("parsed %+v", r)
	}
	bad := map[string]string{
		"not json":   "Traceback ...",
		"zero speed": strings.Replace(good, `"items_per_s": 1333`, `"items_per_s": 0`, 1),
		"no config":  strings.Replace(good, `"config": {"vocab_size": 100}, `, "", 1),
		"no version": strings.Replace(good, `"torch_version": "1.13", `, "", 1),
		"bad mode":   strings.Replace(good, `"score"`, `"dance"`, 1),
		"no matmul":  `{"mode": "matmul", "torch_version": "1.13", "threads": 1}`,
	}
	for name, out := range bad {
		if _, err := parseResult([]byte(out)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFindPythonWithoutTorch(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "python3")
	script := "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err := FindPython(context.Background(), filepath.Join(dir, "missing"), fake)
	if !errors.Is(err, ErrNoTorch) {
		t.Fatalf("err = %v, want ErrNoTorch", err)
	}
	for _, want := range []string{"missing: not found", "No module named 'torch'", "python3-torch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Run with that interpreter fails the same way when asked to find one,
	// and reports the script's error when given it directly.
	_, err = Run(context.Background(), Options{Mode: ModeMatmul, Python: fake})
	if err == nil || !strings.Contains(err.Error(), "No module named 'torch'") {
		t.Errorf("Run with torch-less python: err = %v", err)
	}
}

// TestFindPythonHonoursEnv: an interpreter named in CLOZELOOP_PYTHON is the
// only one tried, so pointing it at a python without torch shows what a
// machine without torch does (the tests then skip, or fail under CI=true)
// even where /usr/bin/python3 has torch.
func TestFindPythonHonoursEnv(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "python3")
	script := "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PythonEnv, fake)
	_, _, err := FindPython(context.Background())
	if !errors.Is(err, ErrNoTorch) {
		t.Fatalf("err = %v, want ErrNoTorch", err)
	}
	if strings.Contains(err.Error(), "/usr/bin/python3") || !strings.Contains(err.Error(), fake) {
		t.Errorf("error %q: want only %s tried", err, fake)
	}
}

func TestRunTiny(t *testing.T) {
	python := torchPython(t)
	ctx := context.Background()
	tests := []struct {
		name string
		o    Options
	}{
		{"score every position", Options{Mode: ModeScore}},
		{"score mask only", Options{Mode: ModeScore, MaskOnly: true}},
		{"train", Options{Mode: ModeTrain}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if i > 0 && testing.Short() {
				t.Skip("-short: only the every-position score run (each run starts python and imports torch)")
			}
			o := tc.o
			o.Python, o.Model, o.Batch, o.Length, o.Threads, o.Runs = python, Tiny(), 2, 8, 1, 3
			r, err := Run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.ItemsPerS <= 0 || r.TokensPerS != r.ItemsPerS*8 && abs(r.TokensPerS-r.ItemsPerS*8) > 1e-6*r.TokensPerS {
				t.Errorf("items/s %v tokens/s %v", r.ItemsPerS, r.TokensPerS)
			}
			if *r.Model != Tiny() || r.Batch != 2 || r.Length != 8 || r.Threads != 1 || r.MaskOnly != o.MaskOnly || len(r.MsRuns) != 3 || r.Python != python {
				t.Errorf("result %+v does not echo the options", r)
			}
			if o.Mode == ModeTrain && !(r.LossFirst > 0) {
				t.Errorf("train loss %v", r.LossFirst)
			}
			t.Logf("%s: %.1f items/s, %.3f ms/batch", tc.name, r.ItemsPerS, r.MsPerBatch)
		})
	}
	if testing.Short() {
		return
	}
	r, err := Run(ctx, Options{Mode: ModeMatmul, Python: python, Shapes: []Shape{{64, 32, 16}}, Runs: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Matmul) != 1 || r.Matmul[0].M != 64 || r.Matmul[0].GFLOPPerS <= 0 {
		t.Errorf("matmul result %+v", r.Matmul)
	}
}

// TestCheckBertRef runs the standalone check of bert_ref.py: hand-written
// safetensors checkpoints, parity with torch.nn modules, broken files.
func TestCheckBertRef(t *testing.T) {
	python := torchPython(t)
	dir := t.TempDir()
	if err := WriteScripts(dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(context.Background(), python, filepath.Join(dir, "check_bert_ref.py")).Output()
	var res struct {
		OK       bool     `json:"ok"`
		Failures []string `json:"failures"`
		Diff     float64  `json:"max_abs_diff_vs_nn_modules"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("check_bert_ref.py: %v (exit %v), output %q", jerr, err, out)
	}
	if err != nil || !res.OK {
		t.Fatalf("check_bert_ref.py failed: %v %v", err, res.Failures)
	}
	t.Logf("max abs diff vs torch.nn modules: %g", res.Diff)
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
