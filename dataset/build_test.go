package dataset

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readEval(t *testing.T, path string) []EvalItem {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []EvalItem
	r := NewEvalReader(f, filepath.Base(path), Options{})
	for r.Next() {
		out = append(out, r.Record())
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return out
}

func readPool(t *testing.T, path string) []Item {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Item
	r := NewItemReader(f, filepath.Base(path), Options{})
	for r.Next() {
		out = append(out, r.Record())
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return out
}

// fill puts the gold answers back into the masks.
func fill(text string, gold []string) string {
	for _, g := range gold {
		text = strings.Replace(text, MaskToken, g, 1)
	}
	return text
}

// readSplit reads a built folder's pool, oracle and eval files and fails
// the test unless they hold as many items as st says.
func readSplit(t *testing.T, dir string, st *BuildStats) (pool []Item, oracle, eval []EvalItem) {
	t.Helper()
	pool = readPool(t, filepath.Join(dir, PoolFile))
	oracle = readEval(t, filepath.Join(dir, OracleFile))
	eval = readEval(t, filepath.Join(dir, EvalFile))
	if len(pool) != st.Pool || len(eval) != st.Eval || len(oracle) != st.Pool {
		t.Fatalf("files hold pool %d, oracle %d, eval %d; stats say pool %d, eval %d", len(pool), len(oracle), len(eval), st.Pool, st.Eval)
	}
	return pool, oracle, eval
}

// checkSplit proves that no normalised sentence is in both pool and eval,
// that the oracle matches the pool, and that no eval sentence is in the
// raw text.
func checkSplit(t *testing.T, dir string, st *BuildStats) {
	t.Helper()
	pool, oracle, eval := readSplit(t, dir, st)
	poolSentences := map[string]bool{}
	for i, o := range oracle {
		if o.ID != pool[i].ID || o.Text != pool[i].Text {
			t.Fatalf("oracle line %d (%s) does not match pool (%s)", i+1, o.ID, pool[i].ID)
		}
		poolSentences[NormalizeText(fill(o.Text, o.Gold))] = true
	}
	evalSentences := map[string]bool{}
	for _, e := range eval {
		s := NormalizeText(fill(e.Text, e.Gold))
		if poolSentences[s] {
			t.Errorf("sentence %q is in both pool and eval", s)
		}
		evalSentences[s] = true
	}
	f, err := os.Open(filepath.Join(dir, RawFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	raw := 0
	for sc.Scan() {
		raw++
		if evalSentences[NormalizeText(sc.Text())] {
			t.Errorf("eval sentence %q is in the raw text", sc.Text())
		}
	}
	if raw != st.RawLines {
		t.Errorf("raw.txt has %d lines, stats say %d", raw, st.RawLines)
	}
	var onDisk BuildStats
	b, err := os.ReadFile(filepath.Join(dir, StatsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.Pool != st.Pool || onDisk.Eval != st.Eval {
		t.Errorf("stats.json %s does not match %+v (%v)", b, st, err)
	}
}

func TestBuildWordNetFixture(t *testing.T) {
	dir := t.TempDir()
	st, err := BuildWordNet(context.Background(), WordNetOptions{Dir: "testdata/wordnet", Out: dir, Split: SplitOptions{EvalFraction: -1, MinContext: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sentences != 19 || st.NoMask != 1 || st.Duplicates != 1 || st.Pool != 17 || st.Eval != 0 {
		t.Fatalf("stats %+v, want 19 sentences, 1 without mask, 1 duplicate, 17 pool items", st)
	}
	got := map[string][]string{}
	for _, e := range readEval(t, filepath.Join(dir, OracleFile)) {
		got[e.Text] = e.Gold
	}
	want := map[string][]string{
		"the [MASK] barked all night":                           {"dog"},
		"[MASK] are loyal":                                      {"Dogs"},
		"the [MASK] chased the other [MASK]":                    {"dog", "dog"},
		"she has three [MASK]":                                  {"cats"},
		"a teacher should make [MASK] [MASK] with the students": {"eye", "contact"},
		"put the books in [MASK]":                               {"boxes"},
		"he is [MASK] to the station":                           {"running"},
		"she [MASK] home":                                       {"ran"},
		"[MASK] away!":                                          {"Go"},
		"the car [MASK] at the light":                           {"stopped"},
		"the patient [MASK] [MASK] after the meal":              {"perked", "up"},
		"the [MASK] the better":                                 {"bigger"},
		"a [MASK] house":                                        {"big"},
		"she answered [MASK]":                                   {"quickly"},
		"the [MASK] sat on the mat":                             {"cat"},
		"the room is [MASK]":                                    {"small"},
		"the [MASK] was empty":                                  {"box"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("items:\n got %v\nwant %v", got, want)
	}
	if st.WordNet.Synsets != 12 || st.WordNet.MultiwordItems != 2 {
		t.Errorf("wordnet stats %+v", st.WordNet)
	}
	checkSplit(t, dir, st)
}

func TestBuildWordNetSplitIsDeterministic(t *testing.T) {
	build := func(seed int64) string {
		dir := t.TempDir()
		st, err := BuildWordNet(context.Background(), WordNetOptions{Dir: "testdata/wordnet", Out: dir, Split: SplitOptions{EvalFraction: 0.5, Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		if st.Eval == 0 || st.Pool == 0 {
			t.Fatalf("seed %d: pool %d, eval %d; want both non-empty at fraction 0.5", seed, st.Pool, st.Eval)
		}
		checkSplit(t, dir, st)
		b, err := os.ReadFile(filepath.Join(dir, EvalFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if a, b := build(7), build(7); a != b {
		t.Error("two builds with the same seed differ")
	}
	if a, b := build(7), build(8); a == b {
		t.Error("two seeds give the same eval split")
	}
}

// TestBuildWordNetDebian builds from the installed wordnet-base and proves
// that pool and eval share no sentence.
func TestBuildWordNetDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds the full WordNet set")
	}
	requireWordNet(t)
	dir := t.TempDir()
	st, err := BuildWordNet(context.Background(), WordNetOptions{Out: dir, Split: SplitOptions{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synsets %d, with examples %d, examples %d, pool %d, eval %d, raw %d", st.WordNet.Synsets, st.WordNet.SynsetsWithExamples, st.WordNet.Examples, st.Pool, st.Eval, st.RawLines)
	if st.WordNet.SynsetsWithExamples < 30000 || st.Pool < 30000 || st.Eval < 3000 || st.RawLines < 100000 {
		t.Errorf("too few: %+v %+v", st, st.WordNet)
	}
	checkSplit(t, dir, st)
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "data.noun"), []byte("00001000 05 n 01 dog 0 000 | a dog\nnot a synset line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := BuildWordNet(context.Background(), WordNetOptions{Dir: bad, Out: dir})
	if err == nil || !strings.Contains(err.Error(), "data.noun:2:") {
		t.Fatalf("got %v, want an error at data.noun:2", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed build left %v", ents)
	}
}

func TestParseSynset(t *testing.T) {
	tests := []struct {
		line    string
		lemmas  []string
		def     string
		ex      []string
		wantErr string
	}{
		{line: `00002000 29 v 02 run 0 go 1 002 @ 00002100 v 0000 ! 00002200 v 0101 02 + 02 00 + 08 00 | move fast; "he ran"; "Go!"`,
			lemmas: []string{"run", "go"}, def: "move fast", ex: []string{"he ran", "Go!"}},
		{line: `00003000 00 a 01 big(a) 0 000 | large`, lemmas: []string{"big"}, def: "large"},
		{line: `00001200 05 n 01 Eye_Contact 0 000 | looking; "make eye contact"`, lemmas: []string{"eye contact"}, def: "looking", ex: []string{"make eye contact"}},
		{line: `00001000 05 n 01 dog 0 000 a dog`, wantErr: "gloss separator"},
		{line: `00001000 05 x 01 dog 0 000 | a dog`, wantErr: "ss_type"},
		{line: `00001000 05 n zz dog 0 000 | a dog`, wantErr: "w_cnt"},
		{line: `00001000 05 n 02 dog 0 000 | a dog`, wantErr: "w_cnt"},
		{line: `00001000 05 n 01 dog 0 002 @ 1 n 0000 | a dog`, wantErr: "p_cnt"},
		{line: `0000x000 05 n 01 dog 0 000 | a dog`, wantErr: "offset"},
	}
	for _, tc := range tests {
		s, err := ParseSynset(tc.line)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got %v, want error with %q", tc.line, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(s.Lemmas, tc.lemmas) || s.Definition != tc.def || !reflect.DeepEqual(s.Examples, tc.ex) {
			t.Errorf("%q: got %+v, %v", tc.line, s, err)
		}
	}
}

const corpus = `  1 In the beginning the craftsman built a wooden table for the village.
  2 The village elder praised the wooden table. Mr. Smith bought the table later!

Chapter 2

  1 Children played near the river every morning. The river was cold.
  2 "Where is the table?" asked the elder. The craftsman smiled at the children.
  3 Every morning the craftsman walked to the river with the children.
`

func TestBuildText(t *testing.T) {
	dir := t.TempDir()
	open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(corpus)), nil }
	st, err := BuildText(context.Background(), TextOptions{Open: open, Name: "tiny", Out: dir, StripLineNumbers: true, MinWords: 4,
		Frequency: FrequencyOptions{SkipTop: 2, MinCount: 2}, Split: SplitOptions{EvalFraction: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pool == 0 || st.Text.TooShort == 0 {
		t.Fatalf("stats %+v %+v", st, st.Text)
	}
	for _, it := range readEval(t, filepath.Join(dir, OracleFile)) {
		if CountMasks(it.Text) != len(it.Gold) {
			t.Errorf("%q has %d gold answers", it.Text, len(it.Gold))
		}
		for _, g := range it.Gold {
			lg := strings.ToLower(g)
			if lg == "the" || lg == "mr" || strings.Contains(it.Text, " "+g+" ") {
				t.Errorf("%q: masked %q (stopword, or still visible)", it.Text, g)
			}
		}
		if strings.Contains(fill(it.Text, it.Gold), "  1 ") {
			t.Errorf("verse number left in %q", it.Text)
		}
	}
	checkSplit(t, dir, st)
}

func TestScanSentences(t *testing.T) {
	in := "Mr. Smith went to Washington. He said \"Hello!\" Then he left\nthe city.\n\nA new paragraph? Yes. e.g. this is not split. 3 apples were eaten."
	var got []string
	if _, err := ScanSentences(context.Background(), strings.NewReader(in), false, func(s string) error { got = append(got, s); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"Mr. Smith went to Washington.", "He said \"Hello!\"", "Then he left the city.", "A new paragraph?", "Yes. e.g. this is not split.", "3 apples were eaten."}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// modelChooser stands for a model-backed Chooser: it masks the longest word.
type modelChooser struct{}

func (modelChooser) Choose(_ context.Context, s Sentence) (int, error) {
	best := -1
	for i, w := range s.Words {
		if best < 0 || len(w.Text) > len(s.Words[best].Text) {
			best = i
		}
	}
	return best, nil
}

func TestBuildTextCustomChooser(t *testing.T) {
	dir := t.TempDir()
	open := func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("The extraordinary cat sat on a mat.\n")), nil
	}
	st, err := BuildText(context.Background(), TextOptions{Open: open, Name: "one", Out: dir, Chooser: modelChooser{}, Split: SplitOptions{EvalFraction: -1}})
	if err != nil {
		t.Fatal(err)
	}
	items := readEval(t, filepath.Join(dir, OracleFile))
	if st.Pool != 1 || len(items) != 1 || items[0].Text != "The [MASK] cat sat on a mat." || items[0].Gold[0] != "extraordinary" {
		t.Errorf("got %+v", items)
	}
}

func TestNormalizeAndSplit(t *testing.T) {
	tests := []struct{ a, b string }{
		{"The cat, sat!", "the   CAT sat"},
		{"A [MASK] here.", "a [MASK] here"},
		{"Café  au lait", "café au lait"},
	}
	for _, tc := range tests {
		if NormalizeText(tc.a) != NormalizeText(tc.b) {
			t.Errorf("%q and %q normalise to %q and %q", tc.a, tc.b, NormalizeText(tc.a), NormalizeText(tc.b))
		}
		if ContentID(tc.a) != ContentID(tc.b) || len(ContentID(tc.a)) != 16 {
			t.Errorf("ids of %q and %q differ", tc.a, tc.b)
		}
		for seed := int64(0); seed < 20; seed++ {
			if InEval(tc.a, 0.5, seed) != InEval(tc.b, 0.5, seed) {
				t.Errorf("%q and %q split apart with seed %d", tc.a, tc.b, seed)
			}
		}
	}
	if NormalizeText("a [MASK] b") != "a [mask] b" {
		t.Errorf("mask lost: %q", NormalizeText("a [MASK] b"))
	}
	in := 0
	for i := range 10000 {
		if InEval(strings.Repeat("x", i%50)+string(rune('a'+i%26))+" "+string(rune(i)), 0.1, 3) {
			in++
		}
	}
	if in < 700 || in > 1300 {
		t.Errorf("%d of 10000 in eval at fraction 0.1", in)
	}
}
