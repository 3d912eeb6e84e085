package mlm

import (
	"bufio"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/tokenize"
)

// ftVocab is a small uncased vocabulary in which "walking" splits into
// two pieces and "☃" is unknown.
func ftVocab() []string {
	return []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "a", "the", "i", "want", "to", "read",
		"book", "cat", "dog", "sat", "on", "mat", "is", "red", "blue", "##s", "##ing", "run", "walk", "paris",
		"capital", "of", "france", "and", "it", "good", "day", "sun", "moon", "he", "she", "likes", "big"}
}

func ftModel(t testing.TB, seed uint64) *Model {
	t.Helper()
	tok, err := tokenize.FromVocab(ftVocab(), tokenize.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	c := BERTBaseConfig()
	c.VocabSize = len(ftVocab())
	c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize = 32, 2, 4, 64
	c.MaxPositionEmbeddings = 24
	m, err := New(c, tok, Options{Device: "cpu", Threads: 1, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestLabelledItems(t *testing.T) {
	m := ftModel(t, 1)
	id := func(tok string) int64 {
		v, ok := m.tok.TokenToID(tok)
		if !ok {
			t.Fatalf("no token %q", tok)
		}
		return int64(v)
	}
	mask := int64(m.tok.MaskID())
	tests := []struct {
		name    string
		ex      Example
		ids     []int64 // without [CLS]/[SEP]; nil when skipped
		labels  []int64
		skipped string // substring of the reason
	}{
		{"one piece", Example{"the cat [MASK] on the mat .", []string{"sat"}},
			[]int64{id("the"), id("cat"), mask, id("on"), id("the"), id("mat"), id(".")}, []int64{id("sat")}, ""},
		{"multi-piece answer expands", Example{"i want to [MASK] .", []string{"walking"}},
			[]int64{id("i"), id("want"), id("to"), mask, mask, id(".")}, []int64{id("walk"), id("##ing")}, ""},
		{"two masks", Example{"[MASK] is [MASK] .", []string{"paris", "cats"}},
			[]int64{mask, id("is"), mask, mask, id(".")}, []int64{id("paris"), id("cat"), id("##s")}, ""},
		{"unknown answer", Example{"the [MASK] is red .", []string{"☃"}}, nil, nil, "unknown token [UNK]"},
		{"unknown second answer", Example{"the [MASK] is [MASK] .", []string{"cat", "zebra"}}, nil, nil, `answer 2 "zebra" maps to the unknown token`},
		{"no mask", Example{"the cat sat .", []string{"cat"}}, nil, nil, "no [MASK]"},
		{"answer count", Example{"the [MASK] sat .", []string{"cat", "dog"}}, nil, nil, "1 masks but 2 answers"},
		{"empty answer", Example{"the [MASK] sat .", []string{"  "}}, nil, nil, "empty"},
		{"special answer", Example{"the [MASK] sat .", []string{"[SEP]"}}, nil, nil, "special token"},
		{"long text is windowed", Example{strings.Repeat("cat ", 30) + "[MASK]", []string{"dog"}},
			append(slices.Repeat([]int64{id("cat")}, 21), mask), []int64{id("dog")}, ""},
		{"answer longer than the model", Example{"the [MASK] .", []string{strings.Repeat("cat ", 30)}}, nil, nil, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, skipped := m.labelledItems([]Example{tc.ex})
			if tc.skipped != "" {
				if len(items) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, tc.skipped) {
					t.Fatalf("got items %v, skipped %+v; want skipped with %q", items, skipped, tc.skipped)
				}
				if skipped[0].Index != 0 || skipped[0].Text != tc.ex.Text {
					t.Errorf("skipped = %+v, want index 0 and the text", skipped[0])
				}
				return
			}
			if len(skipped) != 0 || len(items) != 1 {
				t.Fatalf("got items %v, skipped %+v", items, skipped)
			}
			it := items[0]
			want := append(append([]int64{int64(m.tok.CLSID())}, tc.ids...), int64(m.tok.SEPID()))
			if !slices.Equal(it.ids, want) {
				t.Errorf("ids = %v, want %v", it.ids, want)
			}
			if !slices.Equal(it.labels, tc.labels) {
				t.Errorf("labels = %v, want %v", it.labels, tc.labels)
			}
			for k, p := range it.pos {
				if it.ids[p] != mask {
					t.Errorf("position %d (%d) is not a mask", k, p)
				}
			}
			if len(it.pos) != len(it.labels) {
				t.Errorf("%d positions for %d labels", len(it.pos), len(it.labels))
			}
		})
	}
}

func TestMLMMask(t *testing.T) {
	m := ftModel(t, 1)
	ids := []int64{int64(m.tok.CLSID())}
	for range 2000 {
		ids = append(ids, 7+int64(len(ids)%20))
	}
	ids = append(ids, int64(m.tok.SEPID()))
	it := m.mlmMask(ids, 0.15, rand.New(rand.NewPCG(1, 2)))
	if frac := float64(len(it.pos)) / 2000; frac < 0.12 || frac > 0.18 {
		t.Errorf("masked %.3f of the tokens, want about 0.15", frac)
	}
	var masked, kept, random int
	for k, p := range it.pos {
		if p == 0 || p == len(ids)-1 {
			t.Fatalf("special token at %d masked", p)
		}
		if it.labels[k] != ids[p] {
			t.Fatalf("label %d at %d, want the original %d", it.labels[k], p, ids[p])
		}
		switch it.ids[p] {
		case int64(m.tok.MaskID()):
			masked++
		case ids[p]:
			kept++
		default:
			random++
			if m.tok.IsSpecial(int(it.ids[p])) {
				t.Errorf("random replacement is the special token %d", it.ids[p])
			}
		}
	}
	n := float64(len(it.pos))
	if f := float64(masked) / n; f < 0.72 || f > 0.88 {
		t.Errorf("%.2f replaced by the mask token, want about 0.8", f)
	}
	// kept includes random draws of the same token (1 in 35 here).
	if f := float64(kept) / n; f < 0.05 || f > 0.16 {
		t.Errorf("%.2f kept, want about 0.1", f)
	}
	if f := float64(random) / n; f < 0.05 || f > 0.16 {
		t.Errorf("%.2f random, want about 0.1", f)
	}
	short := m.mlmMask([]int64{2, 13, 3}, 0.15, rand.New(rand.NewPCG(1, 2)))
	if !slices.Equal(short.pos, []int{1}) {
		t.Errorf("one-token text: positions %v, want [1] (at least one)", short.pos)
	}
}

func TestFineTuneErrors(t *testing.T) {
	m := ftModel(t, 1)
	ctx := context.Background()
	res, err := m.FineTune(ctx, []Example{{"the [MASK] .", []string{"☃"}}}, nil, FineTuneOptions{MaxSteps: 1}, nil)
	if !errors.Is(err, ErrNoExamples) || len(res.Skipped) != 1 {
		t.Errorf("all examples unknown: err %v, skipped %v; want ErrNoExamples with one skipped", err, res.Skipped)
	}
	ok := []Example{{"the [MASK] sat .", []string{"cat"}}}
	for _, o := range []FineTuneOptions{{LR: -1}, {MaskProb: 1.5}, {BatchSize: -2}, {WarmupRatio: 1}, {ReplayWeight: 1}} {
		if _, err := m.FineTune(ctx, ok, nil, o, nil); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
}

// TestFineTuneResume interrupts a run after a checkpoint, resumes it and
// compares the weights with those of an uninterrupted run.
func TestFineTuneResume(t *testing.T) {
	ctx := context.Background()
	examples := []Example{
		{"the cat [MASK] on the mat .", []string{"sat"}},
		{"i want to [MASK] a book .", []string{"read"}},
		{"paris is the [MASK] of france .", []string{"capital"}},
		{"the sun is [MASK] .", []string{"red"}},
		{"he likes [MASK] .", []string{"walking"}},
		{"the [MASK] is big .", []string{"dog"}},
		{"the [MASK] is ☃ .", []string{"☃"}},
	}
	replay := []string{"the cat sat on the mat .", "the dog is big and red .", "she likes the moon ."}
	opts := FineTuneOptions{MaxSteps: 6, BatchSize: 2, GradAccum: 2, LR: 1e-3, WarmupSteps: 2, Seed: 7,
		ReplayWeight: 0.5, ReplayBatchSize: 2, CheckpointEvery: 2}

	full := ftModel(t, 3)
	o := opts
	o.CheckpointDir = t.TempDir()
	var steps []int
	res, err := full.FineTune(ctx, examples, replay, o, func(p Progress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 || res.ResumedFrom != 0 || res.Trained != 6 || len(res.Skipped) != 1 {
		t.Fatalf("uninterrupted run: %+v", res)
	}
	if !slices.Equal(steps, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("progress steps %v", steps)
	}
	want, err := full.StateDict()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	o = opts
	o.CheckpointDir, o.ResumeDir = dir, dir
	part := ftModel(t, 3)
	cctx, cancel := context.WithCancel(ctx)
	_, err = part.FineTune(cctx, examples, replay, o, func(p Progress) {
		if p.Step == 3 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	ckpt, step, found, err := LatestCheckpoint(dir)
	if err != nil || !found || step != 2 {
		t.Fatalf("after cancel: checkpoint %q step %d found %v err %v; want step 2", ckpt, step, found, err)
	}
	// The checkpoint is a model directory Load reads.
	loaded, err := Load(ctx, ckpt, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatalf("load checkpoint as a model: %v", err)
	}
	loaded.Close()

	resumed := ftModel(t, 99) // different initial weights: the checkpoint must overwrite them
	res, err = resumed.FineTune(ctx, examples, replay, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 2 || res.Steps != 6 {
		t.Errorf("resumed run: resumed from %d, ended at %d; want 2 and 6", res.ResumedFrom, res.Steps)
	}
	got, err := resumed.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range want {
		a, _ := want[i].Float32s()
		b, _ := got[i].Float32s()
		worst = max(worst, ftMaxDiff(a, b))
	}
	t.Logf("max |resumed - uninterrupted| over all weights: %g", worst)
	if worst > 1e-5 {
		t.Errorf("resumed weights differ from the uninterrupted run's by %g", worst)
	}
	if _, step, _, _ := LatestCheckpoint(dir); step != 6 {
		t.Errorf("final checkpoint at step %d, want 6", step)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("checkpoint folder holds %d entries, want the latest pointer and one checkpoint", len(entries))
	}

	// A finished run resumed again does nothing more.
	res, err = resumed.FineTune(ctx, examples, replay, o, nil)
	if err != nil || res.ResumedFrom != 6 || res.Steps != 6 {
		t.Errorf("re-resume of a finished run: %+v, %v", res, err)
	}
	// Different data refuses the checkpoint.
	if _, err := resumed.FineTune(ctx, examples[:3], replay, o, nil); err == nil || !strings.Contains(err.Error(), "different training data") {
		t.Errorf("resume with other data: err = %v", err)
	}
}

// wordnetText reads glosses and example sentences from WordNet's noun
// data, and cloze items from examples that contain their synset's
// one-word lemma.
func wordnetText(t testing.TB) (lines []string, cloze []Example) {
	t.Helper()
	f, err := os.Open("/usr/share/wordnet/data.noun")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but WordNet noun data is not installed (Debian: apt-get install wordnet-base): %v", err)
		}
		t.Skipf("WordNet noun data not installed (Debian: apt-get install wordnet-base): %v", err)
	}
	defer f.Close()
	quoted := regexp.MustCompile(`"([^"]+)"`)
	word := regexp.MustCompile(`^[a-z]+$`)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "  ") {
			continue
		}
		fields := strings.Fields(l)
		bar := strings.Index(l, " | ")
		if len(fields) < 5 || bar < 0 {
			continue
		}
		gloss := l[bar+3:]
		lemma := strings.ToLower(fields[4])
		exs := quoted.FindAllStringSubmatch(gloss, -1)
		def := strings.TrimSpace(strings.Split(gloss, ";")[0])
		lines = append(lines, def)
		for _, e := range exs {
			lines = append(lines, e[1])
			if !word.MatchString(lemma) || len(lemma) < 3 {
				continue
			}
			ws := strings.Fields(e[1])
			for i, w := range ws {
				if strings.ToLower(strings.Trim(w, ".,;:!?'")) == lemma && strings.Trim(w, ".,;:!?'") == w {
					ws[i] = "[MASK]"
					cloze = append(cloze, Example{Text: strings.Join(ws, " "), Answers: []string{lemma}})
					break
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines, cloze
}

// top1 returns the share of examples (one mask, one-piece answers) whose
// answer is the model's first prediction.
func top1(t testing.TB, m *Model, examples []Example) float64 {
	t.Helper()
	texts := make([]string, len(examples))
	for i, e := range examples {
		texts[i] = e.Text
	}
	res, err := m.FillMask(context.Background(), texts, FillOptions{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i, r := range res {
		if len(r.Masks) == 1 && len(r.Masks[0]) > 0 && r.Masks[0][0].TokenStr == examples[i].Answers[0] {
			ok++
		}
	}
	return float64(ok) / float64(len(examples))
}

// maskedTokenAccuracy masks 15 % of the word pieces of texts (at least one
// per text, chosen with seed) with the mask token and returns the share the
// model predicts exactly: the forgetting check on unlabelled text. (A
// minimal version for this test; eval.go did not exist when it was
// written.)
func maskedTokenAccuracy(t testing.TB, m *Model, texts []string, seed uint64) float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0))
	var inputs []string
	var gold [][]string
	for _, text := range texts {
		enc, err := m.tok.EncodeRaw(text)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc.IDs) == 0 || len(enc.IDs) > m.cfg.MaxSequenceLength()-2 {
			continue
		}
		ids := slices.Clone(enc.IDs)
		var g []string
		var pos []int
		for i := range ids {
			if rng.Float64() < 0.15 {
				pos = append(pos, i)
			}
		}
		if len(pos) == 0 {
			pos = []int{rng.IntN(len(ids))}
		}
		for _, p := range pos {
			g = append(g, enc.Tokens[p])
			ids[p] = m.tok.MaskID()
		}
		s, err := m.tok.Decode(ids, false)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, s)
		gold = append(gold, g)
	}
	res, err := m.FillMask(context.Background(), inputs, FillOptions{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	ok, n := 0, 0
	for i, r := range res {
		if len(r.Masks) != len(gold[i]) {
			continue // decoding merged pieces differently; skip the text
		}
		for k, preds := range r.Masks {
			n++
			if len(preds) > 0 && preds[0].TokenStr == gold[i][k] {
				ok++
			}
		}
	}
	if n == 0 {
		t.Fatal("no masked token to evaluate")
	}
	return float64(ok) / float64(n)
}

// TestFineTuneLearnsClozeItems pretrains a tiny model on WordNet text with
// Pretrain, then fine-tunes it on 50 WordNet cloze items with replay off
// and on: top-1 accuracy on the items must rise from near zero to at least
// 0.9; masked-token accuracy on held-out text (forgetting) is reported.
func TestFineTuneLearnsClozeItems(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model for several seconds")
	}
	ctx := context.Background()
	lines, cloze := wordnetText(t)
	rng := rand.New(rand.NewPCG(42, 0))
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	train, heldOut := lines[:3000], lines[3000:3300]
	rng.Shuffle(len(cloze), func(i, j int) { cloze[i], cloze[j] = cloze[j], cloze[i] })

	corpus := slices.Clone(train)
	for _, c := range cloze[:400] {
		corpus = append(corpus, strings.Replace(c.Text, "[MASK]", c.Answers[0], 1))
	}
	tok, err := tokenize.TrainWordPiece(ctx, Texts(corpus), tokenize.TrainOptions{VocabSize: 2000, Lowercase: true})
	if err != nil {
		t.Fatal(err)
	}
	// 50 items whose answer is one vocabulary token.
	var items []Example
	for _, c := range cloze {
		if _, ok := tok.TokenToID(c.Answers[0]); ok && len(items) < 50 {
			items = append(items, c)
		}
	}
	if len(items) < 50 {
		t.Fatalf("only %d usable cloze items", len(items))
	}
	cfg := TinyConfig(tok.VocabSize())
	cfg.HiddenSize, cfg.IntermediateSize, cfg.MaxPositionEmbeddings = 64, 256, 64
	// No dropout: memorising 50 items with it takes several times the steps.
	cfg.HiddenDropoutProb, cfg.AttentionProbsDropoutProb = 0, 0
	base, err := New(cfg, tok, Options{Device: "cpu", Threads: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	pre, err := Pretrain(ctx, base, Texts(train), PretrainOptions{Steps: 80, BatchSize: 16, SeqLen: 48, LR: 2e-3, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pretrain: %d sequences, %d steps, final loss %.3f, %.0f tokens/s", pre.Sequences, pre.Steps, pre.FinalLoss,
		float64(pre.Tokens)/pre.Duration.Seconds())
	dir := t.TempDir()
	if err := base.Save(ctx, dir); err != nil {
		t.Fatal(err)
	}
	before := top1(t, base, items)
	heldBefore := maskedTokenAccuracy(t, base, heldOut, 5)
	t.Logf("before fine-tuning: top-1 on the 50 items %.2f, held-out masked-token accuracy %.3f", before, heldBefore)
	if before > 0.2 {
		t.Errorf("top-1 before fine-tuning = %.2f; the items are too easy to show learning", before)
	}

	for _, tc := range []struct {
		name   string
		weight float64
	}{{"replay off", 0}, {"replay on", 0.3}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(ctx, dir, Options{Device: "cpu", Threads: 1, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var last Progress
			res, err := m.FineTune(ctx, items, train, FineTuneOptions{
				MaxSteps: 150, BatchSize: 50, LR: 3e-3, WarmupSteps: 5, Seed: 3,
				ReplayWeight: tc.weight, ReplayBatchSize: 8,
			}, func(p Progress) { last = p })
			if err != nil {
				t.Fatal(err)
			}
			after := top1(t, m, items)
			held := maskedTokenAccuracy(t, m, heldOut, 5)
			t.Logf("%s: %d steps, final loss %.3f, %.0f tokens/s; top-1 on the items %.2f → %.2f; held-out masked-token accuracy %.3f → %.3f",
				tc.name, res.Steps, res.FinalLoss, last.TokensPerSec, before, after, heldBefore, held)
			if after < 0.9 {
				t.Errorf("top-1 after fine-tuning = %.2f, want ≥ 0.9", after)
			}
			if last.Step != 150 || last.TotalSteps != 150 || last.LR <= 0 || last.TokensPerSec <= 0 {
				t.Errorf("last progress %+v", last)
			}
		})
	}
}

func TestPretrainResumeAndErrors(t *testing.T) {
	ctx := context.Background()
	corpus := []string{"the cat sat on the mat .", "i want to read a book .", "paris is the capital of france .",
		"the dog is big and red .", "she likes the moon and the sun ."}
	if _, err := Pretrain(ctx, ftModel(t, 1), Texts(corpus), PretrainOptions{}, nil); err == nil {
		t.Error("zero steps: no error")
	}
	if _, err := Pretrain(ctx, ftModel(t, 1), Texts(corpus), PretrainOptions{Steps: 1, SeqLen: 1000}, nil); err == nil {
		t.Error("sequence length beyond the model: no error")
	}
	if _, err := Pretrain(ctx, ftModel(t, 1), Texts([]string{"", " "}), PretrainOptions{Steps: 1}, nil); err == nil {
		t.Error("empty corpus: no error")
	}
	if _, err := Pretrain(ctx, ftModel(t, 1), FileLines(filepath.Join(t.TempDir(), "missing.txt")), PretrainOptions{Steps: 1}, nil); err == nil {
		t.Error("missing corpus file: no error")
	}

	dir := t.TempDir()
	opts := PretrainOptions{Steps: 30, BatchSize: 4, SeqLen: 12, LR: 3e-3, Seed: 2, CheckpointDir: dir, CheckpointEvery: 10}
	m := ftModel(t, 1)
	cctx, cancel := context.WithCancel(ctx)
	var first []float64
	_, err := Pretrain(cctx, m, Texts(corpus), opts, func(p Progress) {
		first = append(first, p.Loss)
		if p.Step == 15 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	res, err := Pretrain(ctx, m, Texts(corpus), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 10 || res.Steps != 30 {
		t.Errorf("resumed from %d to %d, want 10 and 30", res.ResumedFrom, res.Steps)
	}
	if res.Sequences != 5 {
		t.Errorf("%d packed sequences of 12 tokens, want 5 (one line each)", res.Sequences)
	}
	t.Logf("pretrain loss: first step %.3f, step 15 %.3f, final %.3f", first[0], first[len(first)-1], res.FinalLoss)
	if res.FinalLoss >= first[0] {
		t.Errorf("loss did not fall: %.3f → %.3f", first[0], res.FinalLoss)
	}
}

func ftMaxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestPretrainPackLines(t *testing.T) {
	ctx := context.Background()
	m := ftModel(t, 1)
	corpus := []string{"the cat sat .", "i want to read a book on the train today .", "paris .", "the dog is big and red .", "moon ."}
	tests := []struct {
		name    string
		perLine bool
		seqLen  int
		want    int
	}{
		{"packed into 40 tokens", false, 40, 1},
		{"one sequence per line", true, 40, 5},
		{"long line split", true, 8, -1}, // more than one sequence per line
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seqs, _, err := m.packCorpus(ctx, Texts(corpus), tc.seqLen, tc.perLine)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want < 0 && len(seqs) <= len(corpus) || tc.want >= 0 && len(seqs) != tc.want {
				t.Fatalf("%d sequences, want %d (-1: more than %d)", len(seqs), tc.want, len(corpus))
			}
			for _, s := range seqs {
				if len(s) > tc.seqLen || s[0] != int64(m.tok.CLSID()) || s[len(s)-1] != int64(m.tok.SEPID()) {
					t.Errorf("sequence %v: want [CLS] … [SEP] of at most %d ids", s, tc.seqLen)
				}
			}
		})
	}

	// Bucketed epochs: a permutation of all sequences whose batches hold
	// sequences of nearby lengths.
	var seqs [][]int64
	for i := range 400 {
		seqs = append(seqs, make([]int64, 3+(i*37)%60))
	}
	src := &pretrainSource{seqs: seqs, batch: 8, seed: 3, bucket: true}
	order := src.epochOrder(0)
	if got := slices.Sorted(slices.Values(order)); !slices.Equal(got, seqRange(len(seqs))) {
		t.Fatalf("epoch order is not a permutation of the %d sequences", len(seqs))
	}
	spread := 0
	for lo := 0; lo < len(order); lo += 8 {
		var ls []int
		for _, i := range order[lo:min(lo+8, len(order))] {
			ls = append(ls, len(seqs[i]))
		}
		spread = max(spread, slices.Max(ls)-slices.Min(ls))
	}
	if spread > 5 {
		t.Errorf("largest length spread in a batch = %d, want at most 5 (lengths are bucketed)", spread)
	}
	if slices.Equal(order, src.epochOrder(1)) {
		t.Error("epochs 0 and 1 have the same order")
	}

	res, err := Pretrain(ctx, m, Texts(corpus), PretrainOptions{Steps: 3, BatchSize: 2, SeqLen: 16, Packing: PackLines, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sequences != 5 {
		t.Errorf("%d sequences, want 5", res.Sequences)
	}
	if _, err := Pretrain(ctx, m, Texts(corpus), PretrainOptions{Steps: 1, Packing: "zip"}, nil); err == nil {
		t.Error("unknown packing: no error")
	}
}

func seqRange(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
