package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchMemoryCommand runs "bench memory" on a tiny checkpoint folder
// (--model) with a small pool, as JSON and as text.
func TestBenchMemoryCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("scores a pool with a model")
	}
	dir := tinyModelDir(t)
	base := []string{"bench", "memory", "--quick", "--model", dir, "--items", "200", "--chunk", "20", "--threads", "1", "--work", t.TempDir()}
	tests := []struct {
		name  string
		extra []string
		check func(t *testing.T, out string)
	}{
		{"json", []string{"--json"}, func(t *testing.T, out string) {
			var got struct {
				Section string `json:"section"`
				Items   int    `json:"items"`
				Scored  int    `json:"scored"`
				Model   string `json:"model"`
				Samples []struct {
					Items  int     `json:"items"`
					RSSMiB float64 `json:"rss_mib"`
					HWMMiB float64 `json:"hwm_mib"`
				} `json:"samples"`
				ThresholdMiB float64 `json:"threshold_mib"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("decode %q: %v", out, err)
			}
			if got.Section != "memory" || got.Items != 200 || got.Scored != 200 || len(got.Samples) != 10 || got.ThresholdMiB <= 0 ||
				!strings.Contains(got.Model, dir) {
				t.Fatalf("result %+v", got)
			}
			for _, s := range got.Samples {
				if s.RSSMiB <= 0 || s.HWMMiB <= 0 {
					t.Fatalf("sample %+v", s)
				}
			}
		}},
		{"text", nil, func(t *testing.T, out string) {
			for _, want := range []string{"items scored", "VmRSS MiB", "VmHWM MiB", "items/s", "0 (before)", "200", "verdict: "} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append(append([]string(nil), base...), tc.extra...), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			tc.check(t, stdout.String())
		})
	}
}

// TestBenchMemoryTrain runs "bench memory --train" briefly: the table
// counts steps, and the JSON says so.
func TestBenchMemoryTrain(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "memory", "--train", "--steps", "40", "--threads", "1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"steps done", "steps/s", "0 (before)", "40 steps in", "verdict: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	if code := run([]string{"bench", "memory", "--train", "--steps", "20", "--threads", "1", "--trim-every", "0", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got struct {
		Section string `json:"section"`
		Unit    string `json:"unit"`
		Items   int    `json:"items"`
		Model   string `json:"model"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || got.Section != "memory-train" || got.Unit != "steps" || got.Items != 20 ||
		!strings.Contains(got.Model, "trimmed every 0 steps") {
		t.Errorf("JSON %+v (%v): %s", got, err, stdout.String())
	}
	if code := run([]string{"bench", "memory", "--train", "--trim-every", "-1"}, &stdout, &stderr); code != 2 {
		t.Errorf("--trim-every -1: exit %d, want 2", code)
	}
}

// TestBenchTemporalMemoryUsage checks the flag errors of both sections
// (the Temporal run itself is tested in bench/orchestration, which starts
// the embedded server once).
func TestBenchTemporalMemoryUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"memory items", []string{"bench", "memory", "--items", "-5"}, "--items must be positive"},
		{"memory threads", []string{"bench", "memory", "--threads", "-1"}, "must not be negative"},
		{"memory extra", []string{"bench", "memory", "now"}, "unexpected"},
		{"memory flag", []string{"bench", "memory", "--itemz", "5"}, "not defined"},
		{"temporal rounds", []string{"bench", "temporal", "--rounds", "0"}, "must be positive"},
		{"temporal updates", []string{"bench", "temporal", "--rounds", "5", "--updates", "3"}, "updates must be"},
		{"temporal shards", []string{"bench", "temporal", "--shards", "999"}, "pool shards"},
		{"temporal extra", []string{"bench", "temporal", "x"}, "unexpected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
