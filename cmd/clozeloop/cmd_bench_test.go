package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/bench/torchref"
)

// benchTorchArgs returns the flags that make the bench run the PyTorch
// reference (and whether it runs): --no-torch under -short or without a
// python with torch, which fails the test under CI=true.
func benchTorchArgs(t *testing.T) ([]string, bool) {
	t.Helper()
	if testing.Short() {
		return []string{"--no-torch"}, false
	}
	py, _, err := torchref.FindPython(t.Context())
	if errors.Is(err, torchref.ErrNoTorch) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %v", err)
		}
		t.Logf("no PyTorch reference: %v", err)
		return []string{"--no-torch"}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--python", py}, true
}

// TestBenchSectionsQuick runs each model section with --quick on the tiny
// model, as JSON (the header line, then one section line whose rows carry
// positive rates, and the reference's when it runs) and as text (the
// header and the table's columns).
func TestBenchSectionsQuick(t *testing.T) {
	torchArgs, torch := benchTorchArgs(t)
	tests := []struct {
		section string
		// rates are the row fields that must be positive; torchRates too
		// when the reference runs.
		rates, torchRates []string
		columns           []string
	}{
		{"score", []string{"go_items_per_s"}, []string{"torch_every_items_per_s", "torch_mask_items_per_s", "ratio_go_every", "ratio_go_mask"},
			[]string{"model", "threads", "batch", "length", "go", "torch every", "torch mask", "go/every", "go/mask", "mix 8-64"}},
		{"train", []string{"go_tokens_per_s", "go_loss"}, []string{"torch_every_tokens_per_s", "torch_mask_tokens_per_s", "ratio_go_every", "ratio_go_mask"},
			[]string{"model", "threads", "batch", "length", "go", "torch every", "torch mask", "go/every", "go/mask"}},
		{"flops", []string{"go_items_per_s", "go_gflop_per_s", "go_pct_of_matmul_peak", "matmul_peak_gflop_per_s", "encoder_gflop_per_item"}, []string{"torch_gflop_per_s"},
			[]string{"shape", "go/gotch", "pytorch", "GFLOP/item", "go %", "torch %"}},
	}
	for _, tc := range tests {
		t.Run(tc.section+"/json", func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"bench", tc.section, "--quick", "--models", "tiny", "--json"}, torchArgs...)
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr %s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("want 2 JSON lines (header, section), got %d: %s", len(lines), stdout.String())
			}
			var head benchHeader
			if err := json.Unmarshal([]byte(lines[0]), &head); err != nil {
				t.Fatalf("header %q: %v", lines[0], err)
			}
			if head.Section != "machine" || head.CPUModel == "" || head.LogicalCPUs < 1 || head.GoVersion == "" || head.Libtorch == "" || head.BLAS == "" {
				t.Errorf("header %+v lacks fields", head)
			}
			if torch != (head.Python != "" && head.TorchVersion != "") {
				t.Errorf("header python %q torch %q, reference runs: %v", head.Python, head.TorchVersion, torch)
			}
			var sec struct {
				Section string           `json:"section"`
				Rows    []map[string]any `json:"rows"`
				Matmul  []map[string]any `json:"matmul"`
			}
			if err := json.Unmarshal([]byte(lines[1]), &sec); err != nil {
				t.Fatalf("section %q: %v", lines[1], err)
			}
			if sec.Section != tc.section || len(sec.Rows) == 0 {
				t.Fatalf("section %q with %d rows", sec.Section, len(sec.Rows))
			}
			want := tc.rates
			if torch {
				want = append(want, tc.torchRates...)
			}
			for i, r := range sec.Rows {
				if r["model"] != "tiny" || r["threads"] != 1.0 {
					t.Errorf("row %d: model %v threads %v, want tiny and 1", i, r["model"], r["threads"])
				}
				for _, f := range want {
					if v, ok := r[f].(float64); !ok || !(v > 0) {
						t.Errorf("row %d: %s = %v, want a positive number", i, f, r[f])
					}
				}
			}
			if tc.section == "score" && (len(sec.Rows) != 2 || sec.Rows[1]["length"] != "mix 8-64") {
				t.Errorf("score rows %v: want one cell and the mix", sec.Rows)
			}
			if tc.section == "flops" {
				if len(sec.Matmul) == 0 {
					t.Fatal("no matmul rows")
				}
				for _, r := range sec.Matmul {
					if v, _ := r["go_gflop_per_s"].(float64); !(v > 0) {
						t.Errorf("matmul row %v", r)
					}
					if v, _ := r["torch_gflop_per_s"].(float64); torch && !(v > 0) {
						t.Errorf("matmul row %v lacks the PyTorch figure", r)
					}
				}
			}
		})
		t.Run(tc.section+"/text", func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"bench", tc.section, "--quick", "--models", "tiny", "--no-torch"}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr %s", code, stderr.String())
			}
			out := stdout.String()
			for _, want := range append([]string{"machine:", "libtorch", "PyTorch:  not run: --no-torch", "tiny"}, tc.columns...) {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown section", []string{"bench", "speed"}, 2, "unknown bench section"},
		{"unknown model", []string{"bench", "score", "--no-torch", "--models", "huge"}, 2, "unknown model"},
		{"bad threads", []string{"bench", "train", "--no-torch", "--threads", "0"}, 2, "--threads"},
		{"bad batches", []string{"bench", "score", "--no-torch", "--batches", "x"}, 2, "--batches"},
		{"too long", []string{"bench", "score", "--no-torch", "--models", "tiny", "--lengths", "500"}, 2, "positions"},
		{"extra args", []string{"bench", "flops", "--no-torch", "now"}, 2, "unexpected"},
		{"all help", []string{"bench", "-h"}, 0, "temporal"},
		{"missing python", []string{"bench", "score", "--python", "/nonexistent/python3"}, 1, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}

// TestBenchAllForward checks the flags "bench all" passes to the model
// sections: --models and --threads only when given, so that --quick picks
// its own reduced set.
func TestBenchAllForward(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--quick"}, "--quick"},
		{[]string{"--json", "--no-torch", "--models", "tiny"}, "--models tiny --json --no-torch"},
		{[]string{"--threads", "2", "--python", "/usr/bin/python3"}, "--threads 2 --python /usr/bin/python3"},
	}
	for _, tc := range tests {
		var c benchCommon
		var stderr bytes.Buffer
		fs := newFlagSet(&cmdEnv{stderr: &stderr}, "bench", "")
		c.register(fs)
		if err := parseFlags(fs, tc.args); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.forward(), " "); got != tc.want {
			t.Errorf("%v: forward() = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestBenchPredict runs the one-sentence latency section on the shipped
// model and checks that its figures are consistent.
func TestBenchPredict(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the shipped model")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "predict", "--quick", "--json", "--requests", "12"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res predictLatency
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if res.Section != "predict" || res.Model != "wordnet-small" || res.Requests != 12 || res.Threads != 1 ||
		res.P50ms <= 0 || res.P50ms > res.P90ms || res.P90ms > res.P99ms || res.MeanMs <= 0 || res.PerSecond <= 0 ||
		res.TokenizeP50ms <= 0 || res.TokenizeP50ms >= res.P50ms {
		t.Errorf("bench predict: %+v", res)
	}
	if code := run([]string{"bench", "predict", "--requests", "0"}, &stdout, &stderr); code != 2 {
		t.Errorf("--requests 0: exit %d, want 2", code)
	}
}
