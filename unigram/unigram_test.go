package unigram

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Dog", "dog"},
		{"dog,", "dog"},
		{"(Dogs)", "dogs"},
		{`"Café!"`, "cafe"},
		{"well-known", "well-known"},
		{"dog's", "dog's"},
		{"U.S.", "u.s"},
		{"...", ""},
		{"[MASK]", ""},
		{"[MASK].", ""},
		{"42", "42"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func newModel(t *testing.T, text string) *Model {
	t.Helper()
	c := NewCounter()
	if err := c.AddReader(context.Background(), strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	m, err := c.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModelRanks(t *testing.T) {
	m := newModel(t, "The dog saw the cat.\nThe cat, the DOG and a bird\nzebra yak")
	if got, want := m.Top(4), []string{"the", "cat", "dog", "a"}; !slices.Equal(got, want) {
		t.Errorf("Top(4) = %q, want %q (count, then byte order)", got, want)
	}
	if m.Vocab() != 9 || m.Tokens() != 14 {
		t.Errorf("vocab %d, tokens %d; want 9, 14", m.Vocab(), m.Tokens())
	}
	tests := []struct {
		answer string
		rank   int
		count  int64
	}{
		{"the", 1, 4},
		{"The", 1, 4},
		{"Cat", 2, 2},
		{"dog", 3, 2},
		{"yak", 8, 1},
		{"zebra", 9, 1},
		{"horse", 10, 0},
	}
	for _, tt := range tests {
		if r, c := m.Rank(tt.answer), m.Count(tt.answer); r != tt.rank || c != tt.count {
			t.Errorf("%q: rank %d count %d, want %d %d", tt.answer, r, c, tt.rank, tt.count)
		}
	}
	if got := m.Top(100); len(got) != 9 {
		t.Errorf("Top(100) has %d words, want all 9", len(got))
	}
}

func TestEvaluate(t *testing.T) {
	m := newModel(t, "a a a a a b b b b c c c d d e f")
	gold := [][]string{
		{"A"},       // rank 1
		{"e", "f"},  // ranks 5 and 6
		{"unknown"}, // rank 7 (vocab 6 + 1)
		{"b", "a."}, // ranks 2 and 1
	}
	met, err := m.Evaluate(context.Background(), gold)
	if err != nil {
		t.Fatal(err)
	}
	want := Metrics{Items: 4, N: 6, Top1: 2.0 / 6, Top5: 4.0 / 6, MRR: (1 + 1.0/5 + 1.0/6 + 1.0/7 + 1.0/2 + 1) / 6}
	if met.Items != want.Items || met.N != want.N || math.Abs(met.Top1-want.Top1) > 1e-12 ||
		math.Abs(met.Top5-want.Top5) > 1e-12 || math.Abs(met.MRR-want.MRR) > 1e-12 {
		t.Errorf("metrics %+v, want %+v", met, want)
	}
	// A word the corpus never contains is wrong even when the list is
	// shorter than five (its rank, vocab + 1, would be within the top 5).
	short := newModel(t, "mat mat cat")
	met, err = short.Evaluate(context.Background(), [][]string{{"mat"}, {"cat"}, {"dog"}})
	if err != nil {
		t.Fatal(err)
	}
	if met.Top1 != 1.0/3 || met.Top5 != 2.0/3 || math.Abs(met.MRR-(1+1.0/2+1.0/3)/3) > 1e-12 {
		t.Errorf("short list: %+v, want top-1 1/3, top-5 2/3 (dog wrong at rank 3)", met)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Evaluate(ctx, gold); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Evaluate: %v", err)
	}
}

func TestCounterErrors(t *testing.T) {
	if _, err := NewCounter().Model(); err == nil || !strings.Contains(err.Error(), "no words") {
		t.Errorf("empty counter: %v", err)
	}
	c := NewCounter()
	c.AddText("... [MASK] !!")
	if _, err := c.Model(); err == nil {
		t.Error("a corpus of punctuation and masks gave a model")
	}
	missing := filepath.Join(t.TempDir(), "missing.txt")
	if err := NewCounter().AddFile(context.Background(), missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing corpus: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.txt")
	if err := os.WriteFile(path, []byte("one two\ntwo"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = NewCounter()
	c.AddWord("One")
	if err := c.AddFile(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	m, err := c.Model()
	if err != nil {
		t.Fatal(err)
	}
	if m.Count("one") != 2 || m.Count("two") != 2 || m.Rank("one") != 1 {
		t.Errorf("counts one %d two %d, rank(one) %d", m.Count("one"), m.Count("two"), m.Rank("one"))
	}
}

func TestFilter(t *testing.T) {
	m := newModel(t, "the cat the dog the cat a bird the end\n")
	stop := map[string]bool{"the": true, "a": true}
	tests := []struct {
		name      string
		keep      func(string, int64) bool
		wantTop   []string
		wantRank  map[string]int
		wantTotal int64
		wantErr   bool
	}{
		{"content words", func(w string, _ int64) bool { return !stop[w] },
			[]string{"cat", "bird", "dog", "end"}, map[string]int{"cat": 1, "bird": 2, "the": 5, "zebra": 5}, 5, false},
		{"by count", func(_ string, n int64) bool { return n >= 2 },
			[]string{"the", "cat"}, map[string]int{"the": 1, "cat": 2, "dog": 3}, 6, false},
		{"everything", func(string, int64) bool { return true },
			m.Top(10), map[string]int{"the": 1}, m.Tokens(), false},
		{"nothing", func(string, int64) bool { return false }, nil, nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := m.Filter(tt.keep)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error for a filter that keeps nothing")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Top(10); !slices.Equal(got, tt.wantTop) {
				t.Errorf("Top = %v, want %v", got, tt.wantTop)
			}
			for w, r := range tt.wantRank {
				if got := f.Rank(w); got != r {
					t.Errorf("Rank(%q) = %d, want %d", w, got, r)
				}
			}
			if f.Tokens() != tt.wantTotal || f.Vocab() != len(tt.wantTop) {
				t.Errorf("Tokens %d Vocab %d, want %d %d", f.Tokens(), f.Vocab(), tt.wantTotal, len(tt.wantTop))
			}
			if f.Count("cat") != m.Count("cat") && slices.Contains(tt.wantTop, "cat") {
				t.Errorf("Count(cat) changed: %d vs %d", f.Count("cat"), m.Count("cat"))
			}
		})
	}
	if c := m.Counts(); len(c) != 6 || c["the"] != 4 || c["cat"] != 2 {
		t.Errorf("Counts = %v", c)
	}
	// The original is unchanged.
	if m.Rank("the") != 1 || m.Vocab() != 6 {
		t.Errorf("Filter changed the original: rank(the) %d vocab %d", m.Rank("the"), m.Vocab())
	}
}
