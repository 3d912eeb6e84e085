package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// compareFixture builds a simulation result with the given strategies and,
// per strategy, one AULC top-1 and final top-1 per seed (seeds 1..n).
func compareFixture(evalItems int, rounds int, runs map[string][]float64) *Results {
	res := &Results{
		Config:    Config{Initial: 20, Batch: 20, Rounds: rounds},
		EvalItems: evalItems, EvalTotal: 1000, EvalSeed: 1,
	}
	for _, s := range []string{"random", "entropy", "target"} {
		vals, ok := runs[s]
		if !ok {
			continue
		}
		res.Config.Strategies = append(res.Config.Strategies, s)
		for i, v := range vals {
			res.Runs = append(res.Runs, RunResult{
				Strategy: s, Seed: int64(i + 1), AULCTop1: v, AULCTop5: 2 * v, AULCMRR: v / 2,
				Rounds: []RoundResult{{Round: 0, Top1: 0}, {Round: 1, Top1: v + 0.01, Top5: 2*v + 0.01}},
			})
		}
	}
	return res
}

func TestCompare(t *testing.T) {
	opts := BootstrapOptions{Resamples: 2000, Seed: 1}
	a := compareFixture(500, 4, map[string][]float64{
		"random":  {0.10, 0.12, 0.11, 0.13, 0.10},
		"entropy": {0.05, 0.06, 0.07, 0.05, 0.06},
		"target":  {0.20, 0.20, 0.20},
	})
	b := compareFixture(500, 4, map[string][]float64{
		"random":  {0.08, 0.10, 0.11, 0.10, 0.09},
		"entropy": {0.06, 0.06, 0.06, 0.06, 0.06, 0.99}, // seed 6 has no partner in A
	})
	tests := []struct {
		name    string
		a, b    *Results
		wantErr string
		// want: strategy → paired AULC top-1 differences A − B, in seed order.
		want map[string][]float64
	}{
		{
			name: "paired seed by seed, only shared strategies and seeds",
			a:    a, b: b,
			want: map[string][]float64{
				"random":  {0.02, 0.02, 0, 0.03, 0.01},
				"entropy": {-0.01, 0, 0.01, -0.01, 0},
			},
		},
		{name: "different eval subsets", a: a, b: compareFixture(400, 4, map[string][]float64{"random": {0.1}}), wantErr: "different sets"},
		{name: "different label schedules", a: a, b: compareFixture(500, 5, map[string][]float64{"random": {0.1}}), wantErr: "different label schedules"},
		{name: "no shared strategy", a: compareFixture(500, 4, map[string][]float64{"target": {0.1}}), b: b, wantErr: "no strategy ran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compare(tt.a, tt.b, opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Compare error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d comparisons, want %d: %+v", len(got), len(tt.want), got)
			}
			for _, c := range got {
				want, ok := tt.want[c.Strategy]
				if !ok {
					t.Fatalf("unexpected strategy %q", c.Strategy)
				}
				if len(c.AULCTop1.Diffs) != len(want) {
					t.Fatalf("%s: %d paired seeds, want %d", c.Strategy, len(c.AULCTop1.Diffs), len(want))
				}
				var sum float64
				wins, losses := 0, 0
				for i, d := range c.AULCTop1.Diffs {
					if math.Abs(d-want[i]) > 1e-12 {
						t.Errorf("%s seed %d: Δ AULC top-1 = %v, want %v", c.Strategy, c.AULCTop1.Seeds[i], d, want[i])
					}
					if c.AULCTop1.Seeds[i] != int64(i+1) {
						t.Errorf("%s: seed %d at %d, want seeds in order", c.Strategy, c.AULCTop1.Seeds[i], i)
					}
					// The final top-1 of the fixture is AULC + 0.01 on both sides:
					// the same differences.
					if math.Abs(c.FinalTop1.Diffs[i]-want[i]) > 1e-12 {
						t.Errorf("%s seed %d: Δ final top-1 = %v, want %v", c.Strategy, i+1, c.FinalTop1.Diffs[i], want[i])
					}
					if math.Abs(c.AULCTop5.Diffs[i]-2*want[i]) > 1e-12 {
						t.Errorf("%s seed %d: Δ AULC top-5 = %v, want %v", c.Strategy, i+1, c.AULCTop5.Diffs[i], 2*want[i])
					}
					sum += want[i]
					switch {
					case want[i] > 1e-12:
						wins++
					case want[i] < -1e-12:
						losses++
					}
				}
				if mean := sum / float64(len(want)); math.Abs(c.AULCTop1.Mean-mean) > 1e-12 {
					t.Errorf("%s: mean Δ = %v, want %v", c.Strategy, c.AULCTop1.Mean, mean)
				}
				if c.AULCTop1.Wins != wins || c.AULCTop1.Losses != losses {
					t.Errorf("%s: wins/losses %d/%d, want %d/%d", c.Strategy, c.AULCTop1.Wins, c.AULCTop1.Losses, wins, losses)
				}
				if c.AULCTop1.CILow > c.AULCTop1.Mean || c.AULCTop1.CIHigh < c.AULCTop1.Mean {
					t.Errorf("%s: CI [%v, %v] does not hold the mean %v", c.Strategy, c.AULCTop1.CILow, c.AULCTop1.CIHigh, c.AULCTop1.Mean)
				}
			}
		})
	}
}

func TestReadResultsAndWriteComparison(t *testing.T) {
	dir := t.TempDir()
	a := compareFixture(500, 4, map[string][]float64{"random": {0.1, 0.2}})
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, filepath.Join(dir, "results.json")} {
		got, err := ReadResults(path)
		if err != nil {
			t.Fatalf("ReadResults(%s): %v", path, err)
		}
		if len(got.Runs) != 2 || got.EvalItems != 500 {
			t.Fatalf("ReadResults(%s) = %d runs, %d eval items", path, len(got.Runs), got.EvalItems)
		}
	}
	if _, err := ReadResults(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("ReadResults of a missing folder succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(filepath.Join(dir, "bad.json")); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("ReadResults of malformed JSON: %v, want an error naming the file", err)
	}
	cmp, err := Compare(a, a, BootstrapOptions{Resamples: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteComparison(&buf, a, a, cmp); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "random") || !strings.Contains(out, "AULC top-1") || !strings.Contains(out, "0/0/2") {
		t.Fatalf("comparison table lacks the strategy, the metric or the ties:\n%s", out)
	}
}
