package dataset

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLabelled writes lines to a file named answered.jsonl and returns its path.
func writeLabelled(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "answered.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBuildLabelled(t *testing.T) {
	var lines []string
	for i := range 200 {
		lines = append(lines, fmt.Sprintf(`{"id": "mine-%d", "text": "answered sentence number %d has a [MASK] in it", "gold": ["word%d"], "source": "mine", "meta": {"n": %d}}`, i, i, i, i))
	}
	lines = append(lines,
		`{"id": "dup", "text": "answered sentence number 7 has a [MASK] in it", "gold": ["word7"]}`, // same filled sentence as item 7
		`{"id": "short", "text": "[MASK] away", "gold": ["go"]}`,                                    // one context word
	)
	in := writeLabelled(t, lines...)
	out := filepath.Join(t.TempDir(), "sim")
	st, err := BuildLabelled(context.Background(), LabelledOptions{In: in, Out: out, Split: SplitOptions{EvalFraction: 0.3, Seed: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Labelled.Items != 202 || st.Duplicates != 1 || st.TooLittleContext != 1 || st.Pool+st.Eval != 200 {
		t.Fatalf("stats %+v, labelled %+v", st, st.Labelled)
	}
	if st.Eval < 40 || st.Eval > 80 {
		t.Errorf("%d of 200 items on the eval side with fraction 0.3", st.Eval)
	}

	pool, oracle, eval := readSplit(t, out, st)
	evalTexts := map[string]bool{}
	for _, e := range eval {
		evalTexts[e.Text] = true
	}
	for i, p := range pool {
		o := oracle[i]
		if p.ID != o.ID || p.Text != o.Text || p.ID != ContentID(p.Text) {
			t.Errorf("pool %+v and oracle %+v do not match, or the id is not the content id", p, o)
		}
		if evalTexts[p.Text] {
			t.Errorf("%q is on both sides", p.Text)
		}
		if p.Source != "mine" || o.Source != "mine" || !strings.Contains(string(p.Meta), `"n"`) {
			t.Errorf("source or meta lost: %+v", p)
		}
		var n int
		fmt.Sscanf(p.Text, "answered sentence number %d", &n)
		if len(o.Gold) != 1 || o.Gold[0] != fmt.Sprintf("word%d", n) {
			t.Errorf("oracle answers %v for %q", o.Gold, p.Text)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, RawFile))
	if err != nil {
		t.Fatal(err)
	}
	// The pool's sentences, plus the short item's when it hashed to the
	// pool side (dropped items' sentences are still text to pretrain on).
	if got := strings.Count(string(raw), "\n"); got != st.RawLines || got < st.Pool || got > st.Pool+1 {
		t.Errorf("raw.txt has %d lines (stats %d), want the %d pool sentences (+1)", got, st.RawLines, st.Pool)
	}
	if strings.Contains(string(raw), "[MASK]") {
		t.Error("raw.txt holds a blank; its sentences should have the answers filled in")
	}
}

func TestBuildLabelledErrors(t *testing.T) {
	good := writeLabelled(t, `{"text": "one two [MASK] four", "gold": ["three"]}`, `{"text": "five six [MASK] eight", "gold": ["seven"]}`)
	tests := []struct {
		name string
		in   string
		frac float64
		want string
	}{
		{"answers do not match blanks", writeLabelled(t, `{"text": "one [MASK] three [MASK]", "gold": ["two"]}`), 0.5, "answered.jsonl:1:"},
		{"no answers", writeLabelled(t, `{"text": "one [MASK] three four"}`), 0.5, "answered.jsonl:1:"},
		{"all on the eval side", good, 1, "left 0 in the pool"},
		{"missing file", filepath.Join(t.TempDir(), "none.jsonl"), 0.5, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := BuildLabelled(context.Background(), LabelledOptions{In: tc.in, Out: out, Split: SplitOptions{EvalFraction: tc.frac, Seed: 1}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("failed build left %v", ents)
			}
		})
	}
}
