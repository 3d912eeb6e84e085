package models_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/models"
	"github.com/clozeloop/clozeloop/unigram"
)

// wordnetCase is a WordNet-style cloze sentence whose gold word the shipped
// model ranks within its first k predictions and the unigram-frequency
// baselines (WordNet raw text counts, over all words and over content
// words only) do not.
type wordnetCase struct {
	text string
	gold string
	k    int
}

// wordnetCases are fixed cases that a frequency baseline gets wrong and the
// shipped model gets right: held-out sentences of the WordNet eval split
// (never seen in pretraining) with a content word blanked, each the
// model's first prediction when the cases were picked. They are checked
// against the shipped weights: retraining the model means re-checking them
// (see the model card). k leaves room for rounding across thread counts
// where the first prediction's lead is small; every current case leads
// clearly and uses k = 1.
func wordnetCases() []wordnetCase {
	return []wordnetCase{
		{"the [MASK] hemisphere", "northern", 1},
		{"a [MASK] of the faculty", "member", 1},
		{"He [MASK] her his word", "gave", 1},
		{"human beings are [MASK] to walk on two feet", "able", 1},
		{"they were investigating a [MASK] of bank robberies", "series", 1},
		{"a [MASK] layer of paint", "thin", 1},
		{"I [MASK] to go home now", "want", 1},
	}
}

// loadShipped materialises the shipped model in a temporary folder and
// loads it.
func loadShipped(t *testing.T) *mlm.Model {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := models.WriteTo(ctx, models.WordNetSmall, dir); err != nil {
		t.Fatal(err)
	}
	m, err := mlm.Load(ctx, dir, mlm.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatalf("load the shipped model: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// wordnetBaselines builds the WordNet raw text from the installed
// wordnet-base exactly as `clozeloop data build wordnet` does (seed 1,
// eval fraction 0.1) and counts it: the baselines of the model card, all
// words and content words only (as `clozeloop eval --baseline-corpus`).
func wordnetBaselines(t *testing.T) (all, content *unigram.Model) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := dataset.BuildWordNet(ctx, dataset.WordNetOptions{Out: dir,
		Split: dataset.SplitOptions{Seed: 1, EvalFraction: dataset.DefaultEvalFraction}}); err != nil {
		t.Fatalf("build the WordNet raw text: %v", err)
	}
	c := unigram.NewCounter()
	if err := c.AddFile(ctx, filepath.Join(dir, dataset.RawFile)); err != nil {
		t.Fatal(err)
	}
	all, err := c.Model()
	if err != nil {
		t.Fatal(err)
	}
	ch := dataset.NewFrequencyChooser(all.Counts(), dataset.FrequencyOptions{})
	content, err = all.Filter(func(w string, _ int64) bool { return ch.Eligible(w) })
	if err != nil {
		t.Fatal(err)
	}
	return all, content
}

func TestShippedModelPredicts(t *testing.T) {
	m := loadShipped(t)
	cfg := m.Config()
	if cfg.NumHiddenLayers != 4 || cfg.HiddenSize != 256 || cfg.VocabSize != 8000 {
		t.Errorf("config %+v", cfg)
	}
	res, err := m.FillMask(context.Background(), []string{"a [MASK] is a domestic animal"}, mlm.FillOptions{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Masks) != 1 || len(res[0].Masks[0]) != 5 {
		t.Fatalf("predictions %+v, want 5 for one mask", res)
	}
	for _, p := range res[0].Masks[0] {
		if p.TokenStr == "" || strings.HasPrefix(p.TokenStr, "[") || p.Score <= 0 || p.Score > 1 {
			t.Errorf("prediction %+v is not an ordinary token with a probability", p)
		}
	}
}

func TestShippedModelBeatsUnigramOnCases(t *testing.T) {
	if _, err := os.Stat(filepath.Join(dataset.DefaultWordNetDir, "data.noun")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("wordnet-base is not installed: %v", err)
		}
		t.Skipf("wordnet-base is not installed (apt-get install wordnet-base): %v", err)
	}
	base, content := wordnetBaselines(t)
	m := loadShipped(t)
	cases := wordnetCases()
	texts := make([]string, len(cases))
	maxK := 1
	for i, c := range cases {
		texts[i] = c.text
		maxK = max(maxK, c.k)
	}
	res, err := m.FillMask(context.Background(), texts, mlm.FillOptions{TopK: maxK})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if _, ok := m.Tokenizer().TokenToID(c.gold); !ok {
			t.Errorf("case %q: gold %q is not one vocabulary token; pick a case whose answer is", c.text, c.gold)
			continue
		}
		var top []string
		for _, p := range res[i].Masks[0][:c.k] {
			top = append(top, p.TokenStr)
		}
		if !slices.Contains(top, c.gold) {
			t.Errorf("case %q: model's top %d %q lacks %q", c.text, c.k, top, c.gold)
		}
		for _, b := range []struct {
			name string
			m    *unigram.Model
		}{{"unigram", base}, {"content-word unigram", content}} {
			if r := b.m.Rank(c.gold); r <= c.k {
				t.Errorf("case %q: the %s baseline ranks %q %d (predicts %q), within the top %d: not a case it gets wrong",
					c.text, b.name, c.gold, r, b.m.Top(c.k), c.k)
			}
		}
		t.Logf("%-50q gold %-8q model top-%d %q; baseline ranks %d, %d (content words)", c.text, c.gold, c.k, top, base.Rank(c.gold), content.Rank(c.gold))
	}
}
