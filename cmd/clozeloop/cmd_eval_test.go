package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/tokenize"
)

// tinyModelDir saves an untrained tiny BERT over a small vocabulary and
// returns its folder.
func tinyModelDir(t *testing.T) string {
	t.Helper()
	vocab := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "a", "dog", "cat", "barked", "sat", "on", "mat", "##s", "run"}
	tok, err := tokenize.FromVocab(vocab, tokenize.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mlm.New(mlm.TinyConfig(tok.VocabSize()), tok, mlm.Options{Device: "cpu", Threads: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, trainingArgsFile), []byte(`{"steps":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEvalCommand(t *testing.T) {
	model := tinyModelDir(t)
	tmp := t.TempDir()
	evalFile := writeFile(t, filepath.Join(tmp, "eval.jsonl"), `{"text":"the [MASK] barked .","gold":["dog"]}
{"text":"the [MASK] sat on the [MASK] .","gold":["Cat","mat"]}
{"text":"a [MASK] sat .","gold":["zebra"]}
{"text":"the dog [MASK] .","gold":["runs"]}
`)
	// 100 filler words, 10 times each, take the corpus's 100 most frequent
	// places, so that the content-word baseline keeps only cat and dog
	// (the, a: stopwords; mat, runs: fewer than 3 occurrences).
	var filler strings.Builder
	for i := range 100 {
		w := string([]byte{'q', byte('a' + i/26), byte('a' + i%26)})
		filler.WriteString(strings.Repeat(w+" ", 10) + "\n")
	}
	corpus := writeFile(t, filepath.Join(tmp, "raw.txt"), filler.String()+"The dog, the dog; the DOG.\nthe cat a cat a cat\nmat mat runs\n")
	tiny := writeFile(t, filepath.Join(tmp, "tiny.txt"), "The dog, the dog; the DOG.\nthe cat a cat a cat\nmat mat runs\n")
	answers := writeFile(t, filepath.Join(tmp, "oracle.jsonl"), `{"text":"x [MASK]","gold":["mat"]}
{"text":"y [MASK]","gold":["mat"]}
`)
	var out, errOut bytes.Buffer
	code := run([]string{"eval", "--model", model, "--eval", evalFile, "--threads", "1", "--batch", "2",
		"--baseline-corpus", corpus, "--baseline-answers", answers, "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep evalReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// "zebra" maps to [UNK]: the model skips that item and so must the
	// baselines.
	if rep.Read != 4 || rep.Metrics.Items != 3 || rep.Metrics.N != 4 || rep.Metrics.Skipped != 1 {
		t.Fatalf("model metrics %+v (read %d), want 3 items, 4 answers, 1 skipped of 4", rep.Metrics, rep.Read)
	}
	if len(rep.Baselines) != 3 {
		t.Fatalf("baselines %+v, want corpus, corpus content and answers", rep.Baselines)
	}
	// Corpus counts: 100 fillers 10 each, the 4, dog 3, cat 3, a 2, mat 2,
	// runs 1; the gold answers dog, cat, mat, runs rank 103, 102, 105, 106.
	// Content words: cat 1, dog 2 (vocab 2): dog, cat, mat, runs rank 2, 1,
	// 3, 3, and mat and runs are wrong although 3 <= 5.
	// Answer counts: mat 2; ranks: mat 1, every other word 2 (wrong).
	want := []struct {
		name            string
		top1, top5, mrr float64
	}{
		{"unigram corpus", 0, 0, (1.0/103 + 1.0/102 + 1.0/105 + 1.0/106) / 4},
		{"unigram corpus content", 0.25, 0.5, (1.0/2 + 1 + 1.0/3 + 1.0/3) / 4},
		{"unigram answers", 0.25, 0.25, (1.0/2 + 1.0/2 + 1 + 1.0/2) / 4},
	}
	for i, b := range rep.Baselines {
		if b.Name != want[i].name {
			t.Errorf("baseline %d is %q, want %q", i, b.Name, want[i].name)
		}
		if b.Metrics.Items != 3 || b.Metrics.N != 4 || math.Abs(b.Metrics.Top1-want[i].top1) > 1e-12 ||
			math.Abs(b.Metrics.Top5-want[i].top5) > 1e-12 || math.Abs(b.Metrics.MRR-want[i].mrr) > 1e-12 {
			t.Errorf("baseline %s: %+v, want items 3, n 4, %+v", b.Name, b.Metrics, want[i])
		}
	}

	// The same evaluation in one Evaluate call gives the same metrics as
	// the command's chunks.
	m, err := mlm.Load(context.Background(), model, mlm.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	items, err := readEvalItems(context.Background(), evalFile, func(dataset.EvalItem) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var mi []mlm.EvalItem
	for _, it := range items {
		mi = append(mi, mlm.EvalItem{ID: it.ID, Text: it.Text, Gold: it.Gold})
	}
	direct, err := m.Evaluate(context.Background(), mi, mlm.EvalOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(direct.MRR-rep.Metrics.MRR) > 1e-9 || math.Abs(direct.GoldNLL-rep.Metrics.GoldNLL) > 1e-6 || direct.Top5 != rep.Metrics.Top5 {
		t.Errorf("command %+v, direct Evaluate %+v", rep.Metrics, direct)
	}

	// The table form names every predictor.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"eval", "--model", model, "--eval", evalFile, "--threads", "1", "--limit", "2",
		"--baseline-corpus", corpus, "--baseline-corpus", tiny}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	dir := filepath.Base(tmp)
	for _, s := range []string{"sample of 2", "model model", "unigram corpus " + dir + "/raw.txt", "unigram corpus content " + dir + "/raw.txt",
		"unigram corpus " + dir + "/tiny.txt", "top-1", "predicts the, cat, dog, a, mat", "predicts cat, dog, … at every mask"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
	// The tiny corpus has no word outside its 100 most frequent: no
	// content baseline, and a note says why.
	if strings.Contains(out.String(), "content "+dir+"/tiny.txt") || !strings.Contains(errOut.String(), "no content-word baseline for "+tiny) {
		t.Errorf("tiny corpus: table\n%s\nstderr %q", out.String(), errOut.String())
	}
}

func TestEvalCommandErrors(t *testing.T) {
	model := tinyModelDir(t)
	tmp := t.TempDir()
	good := writeFile(t, filepath.Join(tmp, "eval.jsonl"), `{"text":"the [MASK] barked .","gold":["dog"]}`+"\n")
	bad := writeFile(t, filepath.Join(tmp, "bad.jsonl"), `{"text":"the [MASK] barked .","gold":["dog"]}`+"\n"+`{"text":"no mask","gold":["x"]}`+"\n")
	empty := writeFile(t, filepath.Join(tmp, "empty.txt"), "... !!\n")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", []string{"eval", "--eval", good}, 2, "--model is required"},
		{"no eval", []string{"eval", "--model", model}, 2, "--eval is required"},
		{"negative limit", []string{"eval", "--model", model, "--eval", good, "--limit", "-1"}, 2, "must not be negative"},
		{"bad line", []string{"eval", "--model", model, "--eval", bad}, 1, "bad.jsonl:2: no [MASK] in text"},
		{"missing eval", []string{"eval", "--model", model, "--eval", filepath.Join(tmp, "nope.jsonl")}, 1, "no such file"},
		{"empty corpus", []string{"eval", "--model", model, "--eval", good, "--baseline-corpus", empty}, 1, "no words"},
		{"bad answers", []string{"eval", "--model", model, "--eval", good, "--baseline-answers", bad}, 1, "bad.jsonl:2"},
		{"missing model", []string{"eval", "--model", filepath.Join(tmp, "nomodel"), "--eval", good}, 1, "config.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut.String(), tc.code, tc.want)
			}
		})
	}
}

func TestConvertCommand(t *testing.T) {
	model := tinyModelDir(t)
	tmp := t.TempDir()
	for _, dtype := range []string{"f16", "bf16", "f32"} {
		t.Run(dtype, func(t *testing.T) {
			out := filepath.Join(tmp, dtype)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"convert", "--model", model, "--out", out, "--dtype", dtype, "--json"}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var rep convertReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.ReadFile(filepath.Join(out, mlm.SafetensorsFile))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := parseDType(dtype)
			for _, name := range f.Names() {
				if tn, _ := f.Tensor(name); tn.DType != want {
					t.Errorf("tensor %s is %s, want %s", name, tn.DType, want)
				}
			}
			if dtype != "f32" && (rep.OutBytes*100 > rep.InBytes*56 || rep.OutBytes == 0) {
				t.Errorf("%s weights %d bytes from %d, want about half", dtype, rep.OutBytes, rep.InBytes)
			}
			for _, name := range []string{mlm.ConfigFile, "vocab.txt", "tokenizer.json", trainingArgsFile} {
				if _, err := os.Stat(filepath.Join(out, name)); err != nil {
					t.Errorf("convert did not write %s: %v", name, err)
				}
			}
			m, err := mlm.Load(context.Background(), out, mlm.Options{Device: "cpu", Threads: 1})
			if err != nil {
				t.Fatalf("load converted model: %v", err)
			}
			m.Close()
		})
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"same folder", []string{"convert", "--model", model, "--out", model + "/."}, "--out must differ"},
		{"bad dtype", []string{"convert", "--model", model, "--out", filepath.Join(tmp, "x"), "--dtype", "int8"}, "want f16, bf16 or f32"},
		{"no out", []string{"convert", "--model", model}, "--out is required"},
		{"no model", []string{"convert", "--out", filepath.Join(tmp, "x")}, "--model is required"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, %q; want 2 and %q", tc.name, code, stderr.String(), tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "x")); err == nil {
		t.Error("a failed convert created its output folder")
	}
}
