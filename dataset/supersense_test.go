package dataset

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// requireWordNet skips a test when wordnet-base is missing, or fails it
// under CI=true, where every test must run.
func requireWordNet(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(DefaultWordNetDir, "data.noun")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but wordnet-base is not installed (apt-get install wordnet-base): %v", err)
		}
		t.Skipf("wordnet-base is not installed (apt-get install wordnet-base): %v", err)
	}
}

func TestBuildSupersenseFixture(t *testing.T) {
	dir := t.TempDir()
	st, err := BuildSupersense(context.Background(), SupersenseOptions{Dir: "testdata/supersense", Out: dir, Split: SplitOptions{EvalFraction: -1}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"the dog barked all night long. dog is a kind of [MASK]":               "animal",
		"he drove the nail with a hammer. hammer is a kind of [MASK]":          "artifact",
		"she baked fresh bread this morning. bread is a kind of [MASK]":        "food",
		"she baked fresh bread this morning. loaf is a kind of [MASK]":         "food",
		"the teacher explained the lesson slowly. teacher is a kind of [MASK]": "person",
		"nobody here but a long enough sentence. teacher is a kind of [MASK]":  "person",
		"he is running to the station. to run is a kind of [MASK]":             "motion",
		"she ran home quickly. to run is a kind of [MASK]":                     "motion",
		"they eat dinner at seven. to eat is a kind of [MASK]":                 "eating",
		"it rained all day yesterday. to rain is a kind of [MASK]":             "weather",
	}
	got := map[string]string{}
	for _, e := range readEval(t, filepath.Join(dir, OracleFile)) {
		if len(e.Gold) != 1 {
			t.Fatalf("%q has %d answers", e.Text, len(e.Gold))
		}
		got[e.Text] = e.Gold[0]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("items:\n got %v\nwant %v", got, want)
	}
	ss := st.Supersense
	if st.Pool != 10 || st.Eval != 0 || st.TooLittleContext != 1 || st.MinContext != DefaultMinContext ||
		ss.NoClass != 1 || ss.LemmaNotFound != 2 || ss.Synsets != 9 || ss.Examples != 12 || ss.PoolSynsets != 8 {
		t.Errorf("stats %+v, supersense %+v", st, ss)
	}
	if ss.PoolByClass["noun.food"] != 2 || ss.PoolByClass["verb.motion"] != 2 || ss.ItemsByPOS["verb"] != 4 {
		t.Errorf("per-class counts %v, by POS %v", ss.PoolByClass, ss.ItemsByPOS)
	}
	// Without a minimum the one-word example "a dog" is an item too.
	st, err = BuildSupersense(context.Background(), SupersenseOptions{Dir: "testdata/supersense", Out: t.TempDir(), Split: SplitOptions{EvalFraction: -1, MinContext: -1}})
	if err != nil || st.Pool != 11 || st.TooLittleContext != 0 || st.MinContext != 0 {
		t.Errorf("without a minimum: %+v, %v", st, err)
	}
}

// checkSupersenseSplit proves that no synset and no example sentence is on
// both sides, that no text of an eval synset is in the raw text, and that
// every answer is in the closed set.
func checkSupersenseSplit(t *testing.T, dir string, st *BuildStats) {
	t.Helper()
	answers := map[string]bool{}
	for _, a := range SupersenseAnswers() {
		answers[a] = true
	}
	side := func(file string) (map[string]bool, map[string]bool) {
		syn, ex := map[string]bool{}, map[string]bool{}
		for _, e := range readEval(t, filepath.Join(dir, file)) {
			var m supersenseMeta
			if err := json.Unmarshal(e.Meta, &m); err != nil {
				t.Fatalf("%s: meta %s: %v", file, e.Meta, err)
			}
			if len(e.Gold) != 1 || !answers[e.Gold[0]] {
				t.Errorf("%s: %q has answers %v, not one of the closed set", file, e.Text, e.Gold)
			}
			if w, _ := SupersenseVerbaliser(m.Class); len(e.Gold) == 1 && w != e.Gold[0] {
				t.Errorf("%s: %q: class %s but answer %v", file, e.Text, m.Class, e.Gold)
			}
			syn[m.Synset] = true
			lemma := m.Lemma
			if m.POS == "verb" {
				lemma = "to " + lemma
			}
			example, ok := strings.CutSuffix(e.Text, " "+lemma+" is a kind of [MASK]")
			if !ok {
				t.Fatalf("%s: %q does not end in the prompt for %q", file, e.Text, lemma)
			}
			ex[NormalizeText(example)] = true
		}
		return syn, ex
	}
	poolSyn, poolEx := side(OracleFile)
	evalSyn, evalEx := side(EvalFile)
	for s := range poolSyn {
		if evalSyn[s] {
			t.Errorf("synset %s is in both pool and eval", s)
		}
	}
	for e := range poolEx {
		if evalEx[e] {
			t.Errorf("example %q is in both pool and eval", e)
		}
	}
	pool := readPool(t, filepath.Join(dir, PoolFile))
	if len(pool) != st.Pool || len(evalSyn) != st.Supersense.EvalSynsets || len(poolSyn) != st.Supersense.PoolSynsets {
		t.Errorf("pool file %d items, %d/%d synsets; stats %d items, %d/%d synsets", len(pool), len(poolSyn), len(evalSyn), st.Pool, st.Supersense.PoolSynsets, st.Supersense.EvalSynsets)
	}
	f, err := os.Open(filepath.Join(dir, RawFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if evalEx[NormalizeText(sc.Text())] {
			t.Errorf("eval example %q is in the raw text", sc.Text())
		}
	}
}

func TestBuildSupersenseSplit(t *testing.T) {
	sides := map[string]int{}
	for seed := int64(1); seed <= 30; seed++ {
		dir := t.TempDir()
		st, err := BuildSupersense(context.Background(), SupersenseOptions{Dir: "testdata/supersense", Out: dir, Split: SplitOptions{EvalFraction: 0.5, Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		checkSupersenseSplit(t, dir, st)
		sides["shared"] += st.Supersense.SharedWithEval
		if st.Pool > 0 && st.Eval > 0 {
			sides["both"]++
		}
	}
	// bread and loaf share an example: some seed splits them apart.
	if sides["shared"] == 0 || sides["both"] == 0 {
		t.Errorf("over 30 seeds: %v; want some split with both sides and some shared example dropped", sides)
	}
	build := func(seed int64) string {
		dir := t.TempDir()
		if _, err := BuildSupersense(context.Background(), SupersenseOptions{Dir: "testdata/supersense", Out: dir, Split: SplitOptions{EvalFraction: 0.5, Seed: seed}}); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, f := range []string{PoolFile, EvalFile, RawFile, StatsFile} {
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
		return b.String()
	}
	if build(3) != build(3) {
		t.Error("two builds with the same seed differ")
	}
}

func TestBuildSupersenseErrors(t *testing.T) {
	tests := []struct {
		name, noun, want string
	}{
		{"malformed line", "00001000 05 n 01 dog 0 000 | a dog; \"the dog barked all night\"\nnot a synset line\n", "data.noun:2:"},
		{"unknown class number", "00001000 77 n 01 dog 0 000 | a dog; \"the dog barked all night\"\n", "lex_filenum 77"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, out := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(in, "data.noun"), []byte(tc.noun), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in, "data.verb"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := BuildSupersense(context.Background(), SupersenseOptions{Dir: in, Out: out})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("failed build left %v", ents)
			}
		})
	}
	_, err := BuildSupersense(context.Background(), SupersenseOptions{Dir: t.TempDir(), Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "wordnet-base") {
		t.Errorf("missing data files: got %v, want a hint to install wordnet-base", err)
	}
}

func TestLoadLexNames(t *testing.T) {
	dir := t.TempDir()
	names, err := LoadLexNames(dir)
	if err != nil || len(names) != 45 || names[5] != "noun.animal" || names[38] != "verb.motion" || names[44] != "adj.ppl" {
		t.Fatalf("built-in list: %v, %v", names, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lexnames"), []byte("00\tadj.all\t3\n05\tnoun.animal\t1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, err = LoadLexNames(dir)
	if err != nil || len(names) != 6 || names[5] != "noun.animal" || names[1] != "" {
		t.Errorf("from file: %v, %v", names, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lexnames"), []byte("xx\tadj.all\t3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLexNames(dir); err == nil || !strings.Contains(err.Error(), "lexnames:1") {
		t.Errorf("bad file: got %v, want an error at lexnames:1", err)
	}
}

func TestSupersenseClasses(t *testing.T) {
	answers := SupersenseAnswers()
	if len(answers) < 24 || len(answers) > 48 {
		t.Errorf("%d answers, want a few dozen: %v", len(answers), answers)
	}
	for _, name := range lexNames {
		w, ok := SupersenseVerbaliser(name)
		used := strings.HasPrefix(name, "noun.") && name != "noun.Tops" || strings.HasPrefix(name, "verb.")
		if ok != used {
			t.Errorf("%s: verbalised %v, want %v", name, ok, used)
		}
		if ok && (w == "" || strings.ContainsAny(w, " -")) {
			t.Errorf("%s: verbaliser %q is not one word", name, w)
		}
	}
	tests := []struct{ ex, lemma, pos, want string }{
		{"the dog barked", "dog", "noun", "the dog barked. dog is a kind of [MASK]"},
		{"Go away!", "go", "verb", "Go away! to go is a kind of [MASK]"},
		{"  make eye contact  ", "eye contact", "noun", "make eye contact. eye contact is a kind of [MASK]"},
	}
	for _, tc := range tests {
		if got := SupersensePrompt(tc.ex, tc.lemma, tc.pos); got != tc.want {
			t.Errorf("SupersensePrompt(%q, %q, %q) = %q, want %q", tc.ex, tc.lemma, tc.pos, got, tc.want)
		}
	}
}

// TestBuildSupersenseDebian builds from the installed wordnet-base.
func TestBuildSupersenseDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds the full supersense set")
	}
	requireWordNet(t)
	dir := t.TempDir()
	st, err := BuildSupersense(context.Background(), SupersenseOptions{Out: dir, Split: SplitOptions{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ss := st.Supersense
	t.Logf("pool %d, eval %d, raw %d, too little context %d, no class %d, shared %d, synsets %d/%d", st.Pool, st.Eval, st.RawLines, st.TooLittleContext, ss.NoClass, ss.SharedWithEval, ss.PoolSynsets, ss.EvalSynsets)
	if st.Pool < 15000 || st.Eval < 1500 || len(ss.PoolByClass) != len(supersenseWords) || st.TooLittleContext == 0 {
		t.Errorf("unexpected counts: %+v %+v", st, ss)
	}
	checkSupersenseSplit(t, dir, st)
}
