package dataset

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContextWords(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"[MASK]", 0},
		{"[MASK] [MASK]", 0},
		{"— [MASK] !", 0},
		{"drugged and [MASK]", 2},
		{"lite (or [MASK]) mayonnaise", 3},
		{"[MASK] away!", 1},
		{"the [MASK] barked all night", 4},
		{"the [MASK]'s bone", 3}, // "'s" counts: it holds a letter
		{"in 1999 [MASK] won", 3},
		{"[MASK][MASK] x", 1},
		{"Café  au [MASK] lait", 3},
		{"", 0},
	}
	for _, tc := range tests {
		if got := ContextWords(tc.text); got != tc.want {
			t.Errorf("ContextWords(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
}

func TestBuildWordNetMinContext(t *testing.T) {
	// The fixture's 17 items have 1 (one item), 2 (4), 3 (4), 4 (3), 5 (4)
	// and 7 (1) context words.
	tests := []struct {
		minContext, pool, dropped, applied int
	}{
		{-1, 17, 0, 0},
		{1, 17, 0, 1},
		{2, 16, 1, 2},                 // "[MASK] away!"
		{3, 12, 5, 3},                 // and "[MASK] are loyal", "she [MASK] home", "a [MASK] house", "she answered [MASK]"
		{0, 12, 5, DefaultMinContext}, // the default, 3 (docs/DATA.md)
		{5, 5, 12, 5},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		st, err := BuildWordNet(context.Background(), WordNetOptions{Dir: "testdata/wordnet", Out: dir, Split: SplitOptions{EvalFraction: -1, MinContext: tc.minContext}})
		if err != nil {
			t.Fatal(err)
		}
		if st.Pool != tc.pool || st.TooLittleContext != tc.dropped || st.MinContext != tc.applied {
			t.Errorf("min context %d: pool %d, dropped %d, applied %d; want %d, %d, %d", tc.minContext, st.Pool, st.TooLittleContext, st.MinContext, tc.pool, tc.dropped, tc.applied)
		}
		for _, it := range readPool(t, filepath.Join(dir, PoolFile)) {
			if n := ContextWords(it.Text); n < tc.applied {
				t.Errorf("min context %d: %q has %d context words", tc.minContext, it.Text, n)
			}
		}
		// Dropped items' sentences stay pretraining text.
		raw, err := os.ReadFile(filepath.Join(dir, RawFile))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "Go away!\n") {
			t.Errorf("min context %d: the dropped example is missing from raw.txt", tc.minContext)
		}
		checkSplit(t, dir, st)
	}
}

func TestBuildTextMinContext(t *testing.T) {
	// Each sentence has five words; "wolf" is chosen in each (the only
	// word seen 3 times that is not skipped) and masked at every
	// occurrence, so the context shrinks with each repetition.
	text := "The grey wolf runs fast.\nWolf wolf wolf howls loud.\nWolf wolf wolf wolf howls.\n"
	tests := []struct {
		minContext, pool, dropped int
	}{
		{-1, 3, 0},
		{1, 3, 0},
		{2, 2, 1},
		{4, 1, 2},
		{5, 0, 3},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(text)), nil }
		st, err := BuildText(context.Background(), TextOptions{Open: open, Name: "wolves", Out: dir, MinWords: 5,
			Frequency: FrequencyOptions{SkipTop: -1, MinCount: 3, Stopwords: []string{"the", "grey", "runs", "fast", "howls", "loud"}},
			Split:     SplitOptions{EvalFraction: -1, MinContext: tc.minContext}})
		if err != nil {
			t.Fatal(err)
		}
		if st.Pool != tc.pool || st.TooLittleContext != tc.dropped {
			t.Errorf("min context %d: pool %d, dropped %d; want %d, %d", tc.minContext, st.Pool, st.TooLittleContext, tc.pool, tc.dropped)
		}
		checkSplit(t, dir, st)
	}
}

func TestValidateLowContext(t *testing.T) {
	dir := t.TempDir()
	pool := filepath.Join(dir, "pool.jsonl")
	lines := `{"text": "[MASK]"}
{"text": "[MASK] [MASK]"}
{"text": "drugged and [MASK]"}
{"text": "the [MASK] barked all night"}
{"text": "a dog [MASK] loudly at the postman", "source": "user"}
`
	if err := os.WriteFile(pool, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	eval := filepath.Join(dir, "eval.jsonl")
	if err := os.WriteFile(eval, []byte(`{"text": "[MASK] home", "gold": ["go"]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		path       string
		minContext int
		low, min   int
		firstLine  int
	}{
		{"default", pool, 0, 3, DefaultMinContext, 1},
		{"one", pool, 1, 2, 1, 1},
		{"five", pool, 5, 4, 5, 1},
		{"off", pool, -1, 0, 0, 0},
		{"eval", eval, 0, 1, DefaultMinContext, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Validate(context.Background(), tc.path, ValidateOptions{MinContext: tc.minContext})
			if err != nil {
				t.Fatalf("low context must warn, not fail: %v", err)
			}
			if res.LowContext != tc.low || res.MinContext != tc.min || len(res.LowContextFirst) != tc.low {
				t.Fatalf("low %d (min %d), first %+v; want %d (min %d)", res.LowContext, res.MinContext, res.LowContextFirst, tc.low, tc.min)
			}
			if tc.low > 0 && res.LowContextFirst[0].Line != tc.firstLine {
				t.Errorf("first low-context line %d, want %d", res.LowContextFirst[0].Line, tc.firstLine)
			}
		})
	}
	out := t.TempDir()
	res, err := Import(context.Background(), pool, out, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 5 || res.LowContext != 3 {
		t.Errorf("import: %+v, want 5 records written and 3 warnings", res)
	}
	items := readPool(t, filepath.Join(out, "pool.jsonl"))
	if len(items) != 5 || items[4].Source != "user" {
		t.Errorf("imported %+v, want all 5 items, the last with its source", items)
	}
}

func TestSourceField(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
	}{
		{`{"text": "a [MASK] b c", "source": "wordnet"}`, true},
		{`{"text": "a [MASK] b c", "source": "kjv:gen-1/2_x.y"}`, true},
		{`{"text": "a [MASK] b c", "source": ""}`, true},
		{`{"text": "a [MASK] b c", "source": "two words"}`, false},
		{`{"text": "a [MASK] b c", "source": "é"}`, false},
		{`{"text": "a [MASK] b c", "source": "` + strings.Repeat("x", MaxSourceLen+1) + `"}`, false},
		{`{"text": "a [MASK] b c", "source": 3}`, false},
	}
	for _, tc := range tests {
		r := NewItemReader(strings.NewReader(tc.line), "pool.jsonl", Options{})
		ok := r.Next()
		if ok != tc.ok {
			t.Errorf("%s: accepted %v, want %v (%v)", tc.line, ok, tc.ok, r.Err())
			continue
		}
		if !ok {
			if le, isLE := r.Err().(*LineError); !isLE || !le.Has(ReasonBadValue) {
				t.Errorf("%s: error %v, want a bad value", tc.line, r.Err())
			}
		}
		ev := NewEvalReader(strings.NewReader(strings.Replace(tc.line, `"text"`, `"gold": ["x"], "text"`, 1)), "eval.jsonl", Options{})
		if ev.Next() != tc.ok {
			t.Errorf("eval %s: accepted %v, want %v (%v)", tc.line, !tc.ok, tc.ok, ev.Err())
		}
	}
}
