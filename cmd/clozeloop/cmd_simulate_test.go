package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestSimulateCommand runs a tiny simulation end to end through the
// command line: seeded eval subset, replay, paired comparison and the
// outputs.
func TestSimulateCommand(t *testing.T) {
	model := tinyModelDir(t)
	data := t.TempDir()
	words := []string{"dog", "cat", "mat", "dogs", "cats"}
	var pool, oracle, eval, raw strings.Builder
	for i := 0; i < 40; i++ {
		w := words[i%len(words)]
		text := fmt.Sprintf("the [MASK] sat on a mat %d", i)
		fmt.Fprintf(&pool, `{"id":"p%02d","text":%q,"meta":{"source":"s%d"}}`+"\n", i, text, i%2)
		fmt.Fprintf(&oracle, `{"id":"p%02d","text":%q,"gold":[%q]}`+"\n", i, text, w)
		fmt.Fprintf(&raw, "the %s sat on a mat\n", w)
	}
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&eval, `{"id":"e%02d","text":"a [MASK] barked .","gold":[%q]}`+"\n", i, words[i%2])
	}
	writeFile(t, filepath.Join(data, "pool.jsonl"), pool.String())
	writeFile(t, filepath.Join(data, "oracle.jsonl"), oracle.String())
	writeFile(t, filepath.Join(data, "eval.jsonl"), eval.String())
	rawFile := writeFile(t, filepath.Join(data, "raw.txt"), raw.String())
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	code := run([]string{"simulate", "--model", model, "--data", data, "--out", out, "--json",
		"--strategies", "random,entropy,density,target", "--seeds", "2", "--rounds", "2", "--batch", "4", "--initial", "4",
		"--eval-limit", "8", "--target-sample", "5", "--finetune-steps", "2", "--finetune-batch", "4", "--threads", "1",
		"--replay-weight", "0.5", "--replay", rawFile, "--replay-max", "10", "--bootstrap-resamples", "200"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got simulateOutput
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if got.EvalItems != 8 || got.EvalTotal != 20 || got.EvalSeed != 1 || len(got.Summary) != 4 || got.Base.Masks != 8 {
		t.Fatalf("output %+v", got)
	}
	for _, s := range got.Summary {
		if s.Seeds != 2 || (s.Strategy == "random") != (s.VsRandom == nil) || s.Bought.Items != 8 ||
			s.Bought.Sources["s0"]+s.Bought.Sources["s1"] != 1 || s.Bought.ContextWords != 6 {
			t.Errorf("summary %+v", s)
		}
		if s.VsRandom != nil && len(s.VsRandom.AULCTop1.Diffs) != 2 {
			t.Errorf("%s: paired diffs %v", s.Strategy, s.VsRandom.AULCTop1.Diffs)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		ReplayTexts int    `json:"replay_texts"`
		TargetFrom  string `json:"target_from"`
		TargetItems int    `json:"target_items"`
	}
	if err := json.Unmarshal(b, &res); err != nil || res.ReplayTexts != 10 || res.TargetFrom != "eval-rest" || res.TargetItems != 5 {
		t.Errorf("results.json: %+v, %v", res, err)
	}

	for _, bad := range [][]string{
		{"--replay", rawFile},                                 // replay file without a weight
		{"--replay-weight", "2"},                              // weight above 1
		{"--eval-limit", "-1"},                                // negative limit
		{"--strategies", "clairvoyant"},                       // unknown strategy
		{"--warmup-ratio", "1"},                               // warm-up of every step
		{"--finetune-mode", "sideways"},                       // unknown mode
		{"--adapt-steps", "2", "--adapt-target-share", "1.5"}, // share above 1
		{"--adapt-target-share", "0.5"},                       // share without adaptation
	} {
		args := append([]string{"simulate", "--model", model, "--data", data, "--out", out}, bad...)
		if code := run(args, &stdout, &stderr); code == 0 {
			t.Errorf("%v accepted", bad)
		}
	}

	// Adapting on the half of the pool most like the target sample.
	stdout.Reset()
	adaptOut := filepath.Join(t.TempDir(), "adapted")
	code = run([]string{"simulate", "--model", model, "--data", data, "--out", adaptOut, "--json",
		"--strategies", "random", "--seeds", "1", "--rounds", "1", "--batch", "4", "--initial", "4",
		"--eval-limit", "8", "--target-sample", "5", "--finetune-steps", "2", "--finetune-batch", "4", "--threads", "1",
		"--adapt-steps", "2", "--adapt-batch", "4", "--adapt-target-share", "0.5", "--bootstrap-resamples", "200"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("simulate with a target-share adaptation: exit %d: %s", code, stderr.String())
	}
	var adapted simulateOutput
	if err := json.Unmarshal(stdout.Bytes(), &adapted); err != nil || adapted.Adapt == nil ||
		adapted.Adapt.Texts != 20 || adapted.Adapt.PoolTexts != 40 || adapted.Adapt.Options.TargetShare != 0.5 {
		t.Fatalf("adaptation record %+v, %v; want 20 of the 40 pool texts", adapted.Adapt, err)
	}

	// simulate compare pairs two simulations seed by seed; a simulation
	// against itself differs by zero everywhere.
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"simulate", "compare", "--json", "--bootstrap-resamples", "100", out, filepath.Join(out, "results.json")}, &stdout, &stderr); code != 0 {
		t.Fatalf("simulate compare: exit %d: %s", code, stderr.String())
	}
	var cmp simulateCompareOutput
	if err := json.Unmarshal(stdout.Bytes(), &cmp); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if len(cmp.Comparisons) != 4 || cmp.BaseA != cmp.BaseB {
		t.Fatalf("simulate compare: %+v", cmp)
	}
	for _, c := range cmp.Comparisons {
		if len(c.AULCTop1.Diffs) != 2 || c.AULCTop1.Ties != 2 || c.AULCTop1.Mean != 0 || c.FinalTop5.Ties != 2 {
			t.Errorf("%s compared with itself: %+v", c.Strategy, c)
		}
	}
	for _, bad := range [][]string{
		{"simulate", "compare", out},                           // one simulation
		{"simulate", "compare", out, filepath.Join(out, "no")}, // missing results
		{"simulate", "compare", "--bootstrap-resamples", "0", out, out},
	} {
		if code := run(bad, &stdout, &stderr); code == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestParseAnswers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "answers.txt")
	if err := os.WriteFile(file, []byte("# classes\nanimal\n\n food \nplant\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"animal, food,,plant", []string{"animal", "food", "plant"}, ""},
		{"@" + file, []string{"animal", "food", "plant"}, ""},
		{"animal", nil, "at least 2"},
		{" , ", nil, "at least 2"},
		{"@" + file + ".missing", nil, "no such file"},
	}
	for _, tc := range tests {
		got, err := parseAnswers(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseAnswers(%q) error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseAnswers(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
