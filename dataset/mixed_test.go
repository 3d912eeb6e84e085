package dataset

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFolder writes a data folder of n pool items (with their oracle) and
// nEval eval items whose texts name the folder.
func writeFolder(t *testing.T, name string, n, nEval int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var pool, oracle, eval strings.Builder
	for i := range n {
		text := fmt.Sprintf("%s sentence number %d has a [MASK] in it", name, i)
		id := ContentID(text)
		fmt.Fprintf(&pool, `{"id": %q, "text": %q, "meta": {"n": %d}}`+"\n", id, text, i)
		fmt.Fprintf(&oracle, `{"id": %q, "text": %q, "gold": ["word%d"]}`+"\n", id, text, i)
	}
	for i := range nEval {
		fmt.Fprintf(&eval, `{"text": "%s eval sentence %d with a [MASK] here", "gold": ["eval%d"]}`+"\n", name, i, i)
	}
	for f, s := range map[string]string{PoolFile: pool.String(), OracleFile: oracle.String(), EvalFile: eval.String()} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuildMixed(t *testing.T) {
	main := writeFolder(t, "wordnet", 90, 5)
	target := writeFolder(t, "kjv", 50, 7)
	tests := []struct {
		share                float64
		mainLimit            int
		wantMain, wantTarget int
	}{
		{0.1, 0, 90, 10},
		{0.25, 0, 90, 30},
		{0.5, 40, 40, 40},
		{0.1, 45, 45, 5},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("share %v limit %d", tc.share, tc.mainLimit), func(t *testing.T) {
			out := t.TempDir()
			st, err := BuildMixed(context.Background(), MixedOptions{Main: main, Target: target, Out: out, TargetShare: tc.share, MainLimit: tc.mainLimit, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			ms := st.Mixed
			if st.Pool != tc.wantMain+tc.wantTarget || ms.PoolBySource["wordnet"] != tc.wantMain || ms.PoolBySource["kjv"] != tc.wantTarget || st.Eval != 7 || ms.EvalBySource["kjv"] != 7 {
				t.Fatalf("stats %+v, mixed %+v", st, ms)
			}
			pool := readPool(t, filepath.Join(out, PoolFile))
			oracle := readEval(t, filepath.Join(out, OracleFile))
			eval := readEval(t, filepath.Join(out, EvalFile))
			if len(pool) != st.Pool || len(oracle) != st.Pool || len(eval) != 7 {
				t.Fatalf("files: pool %d, oracle %d, eval %d", len(pool), len(oracle), len(eval))
			}
			bySource := map[string]int{}
			firstTarget := -1
			for i, it := range pool {
				bySource[it.Source]++
				if !strings.HasPrefix(it.Text, it.Source+" ") {
					t.Errorf("item %q has source %q", it.Text, it.Source)
				}
				if o := oracle[i]; o.ID != it.ID || o.Source != it.Source || len(o.Gold) != 1 || !strings.HasPrefix(o.Gold[0], "word") || string(o.Meta) != string(it.Meta) {
					t.Errorf("oracle line %d %+v does not match pool %+v", i+1, o, it)
				}
				if it.Source == "kjv" && firstTarget < 0 {
					firstTarget = i
				}
			}
			if bySource["wordnet"] != tc.wantMain || bySource["kjv"] != tc.wantTarget {
				t.Errorf("pool file by source %v", bySource)
			}
			if firstTarget > st.Pool/2 {
				t.Errorf("first target item at %d of %d: the sources are not interleaved", firstTarget, st.Pool)
			}
			for _, e := range eval {
				if e.Source != "kjv" || !strings.HasPrefix(e.Text, "kjv eval") {
					t.Errorf("eval item %+v is not the target's", e)
				}
			}
			checkMixedRaw(t, out, st, eval)
		})
	}
}

// checkMixedRaw proves that raw.txt holds the pool sentences and no eval
// sentence.
func checkMixedRaw(t *testing.T, dir string, st *BuildStats, eval []EvalItem) {
	t.Helper()
	evalSent := map[string]bool{}
	for _, e := range eval {
		evalSent[NormalizeText(fillBlanks(e.Text, e.Gold))] = true
	}
	f, err := os.Open(filepath.Join(dir, RawFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		if evalSent[NormalizeText(sc.Text())] || strings.Contains(sc.Text(), MaskToken) {
			t.Errorf("raw line %q is an eval sentence or has a blank", sc.Text())
		}
	}
	if n != st.Pool || st.RawLines != n {
		t.Errorf("raw.txt has %d lines, stats %d, pool %d", n, st.RawLines, st.Pool)
	}
}

func TestBuildMixedDeterministic(t *testing.T) {
	main := writeFolder(t, "wordnet", 200, 5)
	target := writeFolder(t, "kjv", 200, 5)
	build := func(seed int64) string {
		out := t.TempDir()
		if _, err := BuildMixed(context.Background(), MixedOptions{Main: main, Target: target, Out: out, TargetShare: 0.2, MainLimit: 100, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, PoolFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if build(4) != build(4) {
		t.Error("two builds with the same seed differ")
	}
	if build(4) == build(5) {
		t.Error("two seeds give the same pool")
	}
}

func TestBuildMixedErrors(t *testing.T) {
	main := writeFolder(t, "wordnet", 90, 5)
	target := writeFolder(t, "kjv", 5, 3)
	noOracle := writeFolder(t, "broken", 10, 3)
	if err := os.WriteFile(filepath.Join(noOracle, OracleFile), []byte(`{"id": "x", "text": "a [MASK] b c", "gold": ["y"]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badLine := writeFolder(t, "badline", 10, 3)
	if err := os.WriteFile(filepath.Join(badLine, PoolFile), []byte(`{"text": "no blank here"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts MixedOptions
		want string
	}{
		{"share zero", MixedOptions{Main: main, Target: target, TargetShare: 0}, "not in (0, 1)"},
		{"share one", MixedOptions{Main: main, Target: target, TargetShare: 1}, "not in (0, 1)"},
		{"target too small", MixedOptions{Main: main, Target: target, TargetShare: 0.1}, "needs 10 target items"},
		{"same source", MixedOptions{Main: main, Target: main, TargetShare: 0.01}, "same source"},
		{"bad source", MixedOptions{Main: main, Target: target, TargetShare: 0.01, TargetSource: "two words"}, "source \"two words\""},
		{"missing folder", MixedOptions{Main: main, Target: filepath.Join(t.TempDir(), "none"), TargetShare: 0.01}, "no such file"},
		{"pool item without answers", MixedOptions{Main: noOracle, Target: target, TargetShare: 0.1}, "has no answers in oracle.jsonl"},
		{"malformed pool", MixedOptions{Main: badLine, Target: target, TargetShare: 0.1}, "pool.jsonl:1: no [MASK]"},
		{"no folders", MixedOptions{TargetShare: 0.1}, "want a main and a target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			tc.opts.Out = out
			_, err := BuildMixed(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("failed build left %v", ents)
			}
		})
	}
}
