package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/tokenize"
)

// syntheticCloze writes a small cloze data folder from templated sentences
// and returns it with the raw sentences.
func syntheticCloze(t *testing.T) (dir string, sentences []string) {
	t.Helper()
	subjects := []string{"dog", "cat", "bird", "horse", "child", "farmer", "teacher", "doctor"}
	verbs := []string{"saw", "liked", "chased", "found", "heard", "watched"}
	objects := []string{"ball", "river", "house", "garden", "tree", "road", "apple", "book"}
	places := []string{"morning", "evening", "night", "summer", "winter"}
	dir = t.TempDir()
	var pool, oracle, eval []string
	n := 0
	for i, s := range subjects {
		for j, v := range verbs {
			for k, o := range objects {
				p := places[(i+j+k)%len(places)]
				sent := fmt.Sprintf("the %s %s the %s in the %s", s, v, o, p)
				sentences = append(sentences, sent)
				words := strings.Fields(sent)
				m := []int{1, 2, 4}[(i+j+k)%3]
				gold := words[m]
				words[m] = "[MASK]"
				text := strings.Join(words, " ")
				id := fmt.Sprintf("s%03d", n)
				n++
				if n%8 == 0 {
					eval = append(eval, fmt.Sprintf(`{"id":%q,"text":%q,"gold":[%q]}`, id, text, gold))
					continue
				}
				pool = append(pool, fmt.Sprintf(`{"id":%q,"text":%q}`, id, text))
				oracle = append(oracle, fmt.Sprintf(`{"id":%q,"text":%q,"gold":[%q]}`, id, text, gold))
			}
		}
	}
	for name, lines := range map[string][]string{PoolFile: pool, OracleFile: oracle, EvalFile: eval} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, sentences
}

// TestMLMEngineEndToEnd runs a small real simulation over package mlm: a
// tiny BERT with a WordPiece vocabulary trained on the synthetic corpus,
// two strategies, one seed, two rounds.
func TestMLMEngineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("real model simulation")
	}
	ctx := context.Background()
	dataDir, sentences := syntheticCloze(t)
	tok, err := tokenize.TrainWordPiece(ctx, mlm.Texts(sentences), tokenize.TrainOptions{VocabSize: 200, Lowercase: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := mlm.TinyConfig(tok.VocabSize())
	cfg.HiddenSize, cfg.IntermediateSize, cfg.MaxPositionEmbeddings = 64, 128, 32
	m, err := mlm.New(cfg, tok, mlm.Options{Device: "cpu", Threads: 1, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	modelDir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(ctx, modelDir); err != nil {
		t.Fatal(err)
	}
	m.Close()
	data, err := LoadData(ctx, dataDir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng := &MLMEngine{Dir: modelDir, Options: mlm.Options{Device: "cpu", Threads: 1, Seed: 3}}

	// The adapter's pieces on their own.
	model, err := eng.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sur, err := model.Surprisal(ctx, data.Pool[:20])
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sur {
		if !(s > 0) {
			t.Errorf("surprisal of %q = %v, want > 0", data.Pool[i].Text, s)
		}
	}
	cands, err := model.Score(ctx, data.Pool[:20], ScoreOptions{Embeddings: true})
	if err != nil || len(cands) != 20 || len(cands[0].Embedding) != 64 || !(cands[0].Entropy > 0) {
		t.Fatalf("score: %v, %d candidates", err, len(cands))
	}
	model.Close()

	res, err := Run(ctx, eng, data, Config{
		Strategies: []string{"random", "hybrid"}, Seeds: []int64{1}, Initial: 16, Seeding: SeedSurprisal,
		Rounds: 2, Batch: 16, PoolSample: 120,
		FineTune: FineTuneOptions{Steps: 30, LR: 3e-3, BatchSize: 16, WarmupRatio: 0.1, ReplayWeight: 0.2},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Runs {
		if len(r.Rounds) != 3 || r.Rounds[2].Labels != 48 {
			t.Fatalf("%s: %d rounds, %d labels", r.Strategy, len(r.Rounds), r.Rounds[len(r.Rounds)-1].Labels)
		}
		for _, rr := range r.Rounds {
			if rr.FineTune.Steps != 30 || rr.Top1 < 0 || rr.Top5 < rr.Top1 || rr.Top5 > 1 {
				t.Errorf("%s round %d: %+v", r.Strategy, rr.Round, rr)
			}
		}
		// 30 steps at a high learning rate on a 200-token templated
		// language must beat the untrained model's top-5.
		if last := r.Rounds[2]; !(last.Top5 > res.Base.Top5) {
			t.Errorf("%s: final top-5 %v not above the starting model's %v", r.Strategy, last.Top5, res.Base.Top5)
		}
	}
	if res.Base.Masks != len(data.Eval) {
		t.Errorf("evaluated %d masks, want %d", res.Base.Masks, len(data.Eval))
	}
	if err := WriteOutputs(filepath.Join(t.TempDir(), "out"), res); err != nil {
		t.Fatal(err)
	}
	t.Logf("base top-1 %.3f top-5 %.3f; random %.3f/%.3f, hybrid %.3f/%.3f", res.Base.Top1, res.Base.Top5,
		res.Runs[0].Rounds[2].Top1, res.Runs[0].Rounds[2].Top5, res.Runs[1].Rounds[2].Top1, res.Runs[1].Rounds[2].Top5)
}

// TestMLMEngineEvaluatesMultiPieceAnswers checks that the simulation
// measures like the workflow's Evaluate activity (mlm.Evaluate): a gold
// answer of several word pieces counts when the model predicts every piece
// (the simulation used to count it as wrong whatever the model did).
func TestMLMEngineEvaluatesMultiPieceAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("real model")
	}
	ctx := context.Background()
	_, sentences := syntheticCloze(t)
	tok, err := tokenize.TrainWordPiece(ctx, mlm.Texts(sentences), tokenize.TrainOptions{VocabSize: 200, Lowercase: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := mlm.TinyConfig(tok.VocabSize())
	cfg.HiddenSize, cfg.IntermediateSize, cfg.MaxPositionEmbeddings = 64, 128, 32
	m, err := mlm.New(cfg, tok, mlm.Options{Device: "cpu", Threads: 1, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	modelDir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(ctx, modelDir); err != nil {
		t.Fatal(err)
	}
	m.Close()
	eng := &MLMEngine{Dir: modelDir, Options: mlm.Options{Device: "cpu", Threads: 1, Seed: 5}}
	model, err := eng.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	// "gardenhouse" is no word of the corpus: the 200-piece vocabulary
	// splits it ("garden", "##house" or smaller pieces).
	const answer = "gardenhouse"
	if n := model.AnswerPieces("the dog saw the [MASK]", []string{answer}); len(n) != 1 || n[0] < 2 {
		t.Fatalf("%q is %d word piece(s); the test needs a multi-piece answer", answer, n)
	}
	item := EvalItem{ID: "mp", Text: "the dog saw the [MASK] in the morning", Gold: []string{answer}}
	before, err := model.Evaluate(ctx, []EvalItem{item})
	if err != nil {
		t.Fatal(err)
	}
	if before.Masks != 1 || before.Skipped != 0 || before.Top1 != 0 || !(before.NLL > 0) {
		t.Fatalf("untrained model on a multi-piece answer: %+v", before)
	}
	// Teach the model the answer, then it must count as correct.
	if _, err := model.FineTune(ctx, []Example{{ID: "mp", Text: item.Text, Answers: item.Gold}}, nil,
		FineTuneOptions{Steps: 80, LR: 3e-3, BatchSize: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	after, err := model.Evaluate(ctx, []EvalItem{item})
	if err != nil {
		t.Fatal(err)
	}
	if after.Masks != 1 || after.Top1 != 1 || after.Top5 != 1 || after.MRR != 1 || !(after.NLL < before.NLL) {
		t.Errorf("after learning the answer: %+v (before %+v); want top-1 = top-5 = MRR = 1", after, before)
	}
	// The same numbers as mlm.Evaluate, the workflow's Evaluate activity's code.
	x := model.(*mlmModel)
	met, err := x.m.Evaluate(ctx, []mlm.EvalItem{{ID: item.ID, Text: item.Text, Gold: item.Gold}}, mlm.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if met.Top1 != after.Top1 || met.Top5 != after.Top5 || met.MRR != after.MRR || met.GoldNLL != after.NLL || met.N != after.Masks {
		t.Errorf("mlm.Evaluate %+v differs from the simulation's %+v", met, after)
	}
}
