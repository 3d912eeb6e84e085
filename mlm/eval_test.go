package mlm

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
)

// forcedModel returns a test model whose output bias makes token win at
// every mask by a wide margin.
func forcedModel(t *testing.T, token string) *Model {
	t.Helper()
	m := newTestModel(t, 21)
	id, ok := m.tok.TokenToID(token)
	if !ok {
		t.Fatalf("no token %q", token)
	}
	dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor {
		for i, x := range sd {
			if x.Name == "cls.predictions.bias" {
				v, _ := x.Float32s()
				v[id] = 50
				sd[i], _ = safetensors.FromFloat32s(x.Name, safetensors.F32, x.Shape, v)
			}
		}
		return sd
	})
	f, err := Load(context.Background(), dir, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestEvaluateForced(t *testing.T) {
	m := forcedModel(t, "cat")
	ctx := context.Background()
	tests := []struct {
		name               string
		items              []EvalItem
		n, skipped         int
		top1, top5, mrr    float64 // top5 and mrr -1: not checked
		nllMax, nllMin     float64
		skipReasonContains string
	}{
		{"gold wins", []EvalItem{{ID: "a", Text: "the [MASK] sat on the mat", Gold: []string{"cat"}}},
			1, 0, 1, 1, 1, 1e-6, 0, ""},
		{"gold loses", []EvalItem{{ID: "a", Text: "the [MASK] sat on the mat", Gold: []string{"dog"}}},
			1, 0, 0, -1, -1, math.Inf(1), 30, ""},
		{"two masks one right", []EvalItem{{ID: "a", Text: "the [MASK] sat on the [MASK]", Gold: []string{"cat", "mat"}}},
			2, 0, 0.5, -1, -1, math.Inf(1), 15, ""},
		{"unknown gold skipped", []EvalItem{
			{ID: "a", Text: "the [MASK] sat", Gold: []string{"zebra"}},
			{ID: "b", Text: "the [MASK] sat", Gold: []string{"cat"}}},
			1, 1, 1, 1, 1, 1e-6, 0, "unknown token"},
		{"mask count mismatch skipped", []EvalItem{{ID: "a", Text: "the [MASK] sat", Gold: []string{"cat", "dog"}}},
			0, 1, 0, 0, 0, 0, 0, "1 masks but 2 gold answers"},
		{"no mask skipped", []EvalItem{{ID: "a", Text: "the cat sat", Gold: []string{"cat"}}},
			0, 1, 0, 0, 0, 0, 0, "no [MASK]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Evaluate(ctx, tc.items, EvalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.N != tc.n || got.Skipped != tc.skipped || len(got.Skips) != tc.skipped {
				t.Fatalf("metrics %+v, want N %d skipped %d", got, tc.n, tc.skipped)
			}
			if tc.skipReasonContains != "" && !strings.Contains(got.Skips[0].Reason, tc.skipReasonContains) {
				t.Errorf("skip reason %q, want it to mention %q", got.Skips[0].Reason, tc.skipReasonContains)
			}
			if got.Top1 != tc.top1 || (tc.top5 >= 0 && got.Top5 != tc.top5) {
				t.Errorf("top1 %g top5 %g, want %g %g", got.Top1, got.Top5, tc.top1, tc.top5)
			}
			if tc.mrr >= 0 && got.MRR != tc.mrr {
				t.Errorf("MRR %g, want %g", got.MRR, tc.mrr)
			}
			if got.GoldNLL > tc.nllMax || got.GoldNLL < tc.nllMin {
				t.Errorf("gold NLL %g, want in [%g, %g]", got.GoldNLL, tc.nllMin, tc.nllMax)
			}
		})
	}
	// Held-out text made only of the forced token is predicted perfectly.
	mt, err := m.MaskedTokenAccuracy(ctx, []string{"cat cat cat cat cat cat", "cat cat"}, MaskedTokenOptions{MaskProb: 0.5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if mt.Texts != 2 || mt.Tokens < 2 || mt.Accuracy != 1 || mt.PseudoPerplexity > 1+1e-5 {
		t.Errorf("all-cat text: %+v, want accuracy 1 and pseudo-perplexity 1", mt)
	}
	mt, err = m.MaskedTokenAccuracy(ctx, []string{"the dog sat on the mat"}, MaskedTokenOptions{MaskProb: 1})
	if err != nil {
		t.Fatal(err)
	}
	if mt.Tokens != 6 || mt.Accuracy != 0 || mt.PseudoPerplexity < 1e6 {
		t.Errorf("text without cat, every token masked: %+v, want 6 tokens, accuracy 0, huge perplexity", mt)
	}
}

// TestEvaluateMatchesFillMask checks the metrics against FillMask's
// probabilities and ranking on a random model.
func TestEvaluateMatchesFillMask(t *testing.T) {
	m := newTestModel(t, 5)
	ctx := context.Background()
	texts := []string{"i want to [MASK] a book .", "the [MASK] sat on the mat", "it is a good [MASK] ."}
	fill, err := m.FillMask(ctx, texts, FillOptions{TopK: len(testVocab())})
	if err != nil {
		t.Fatal(err)
	}
	// Gold answers at ranks 1, 2 and 7 of FillMask's list (skipping
	// word pieces, which are not whole-word answers).
	wantRank := []int{1, 2, 7}
	var items []EvalItem
	var top1, top5, mrr, nll float64
	for i, r := range fill {
		var words []Prediction
		for _, p := range r.Masks[0] {
			if !m.tok.IsSpecial(p.Token) && !strings.HasPrefix(p.TokenStr, "##") {
				words = append(words, p)
			}
		}
		g := words[wantRank[i]-1]
		rank := 0
		for q, p := range r.Masks[0] {
			if p.Token == g.Token {
				rank = q + 1
			}
		}
		items = append(items, EvalItem{ID: texts[i], Text: texts[i], Gold: []string{g.TokenStr}})
		if rank == 1 {
			top1++
		}
		if rank <= 5 {
			top5++
		}
		mrr += 1 / float64(rank)
		nll += -math.Log(g.Score)
	}
	got, err := m.Evaluate(ctx, items, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := float64(len(items))
	if got.N != len(items) || got.Top1 != top1/n || got.Top5 != top5/n || math.Abs(got.MRR-mrr/n) > 1e-9 || math.Abs(got.GoldNLL-nll/n) > 1e-5 {
		t.Errorf("Evaluate %+v, from FillMask top1 %g top5 %g MRR %g NLL %g", got, top1/n, top5/n, mrr/n, nll/n)
	}

	// A gold answer of two pieces ("runs" = run ##s) expands its mask.
	multi, err := m.Evaluate(ctx, []EvalItem{{ID: "m", Text: "the cat [MASK] .", Gold: []string{"runs"}}}, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := m.FillMask(ctx, []string{"the cat [MASK] [MASK] ."}, FillOptions{TopK: len(testVocab())})
	if err != nil {
		t.Fatal(err)
	}
	find := func(preds []Prediction, tok string) (int, float64) {
		for q, p := range preds {
			if p.TokenStr == tok {
				return q + 1, p.Score
			}
		}
		t.Fatalf("%s not in predictions", tok)
		return 0, 0
	}
	r1, p1 := find(exp[0].Masks[0], "run")
	r2, p2 := find(exp[0].Masks[1], "##s")
	wantTop1 := 0.0
	if r1 == 1 && r2 == 1 {
		wantTop1 = 1
	}
	if multi.N != 1 || multi.Top1 != wantTop1 || math.Abs(multi.MRR-1/float64(r1)) > 1e-9 || math.Abs(multi.GoldNLL-(-math.Log(p1)-math.Log(p2))) > 1e-5 {
		t.Errorf("multi-piece answer: %+v, want top1 %g MRR 1/%d NLL %g", multi, wantTop1, r1, -math.Log(p1)-math.Log(p2))
	}
}

func TestEvalDeterminismAndBatching(t *testing.T) {
	m := newTestModel(t, 8)
	ctx := context.Background()
	texts := []string{
		"the cat sat on the mat .", "i want to read a book", "paris is the capital of france .",
		"the sun and the moon", "the dog is blue , the cat is red .", "it is a good day to walk",
		strings.Repeat("the dog sat on the mat . ", 8),
	}
	var items []EvalItem
	for i, tx := range texts[:6] {
		w := strings.Fields(tx)
		g := w[i%len(w)]
		w[i%len(w)] = "[MASK]"
		items = append(items, EvalItem{ID: tx, Text: strings.Join(w, " "), Gold: []string{g}})
	}
	base, err := m.Evaluate(ctx, items, EvalOptions{BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	mt := func(o MaskedTokenOptions) MaskedTokenMetrics {
		t.Helper()
		r, err := m.MaskedTokenAccuracy(ctx, texts, o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mBase := mt(MaskedTokenOptions{Seed: 3, BatchSize: 1})
	tests := []struct {
		name string
		bs   int
	}{{"batch 2", 2}, {"batch 4", 4}, {"batch 32", 32}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Evaluate(ctx, items, EvalOptions{BatchSize: tc.bs})
			if err != nil {
				t.Fatal(err)
			}
			if got.N != base.N || got.Top1 != base.Top1 || got.Top5 != base.Top5 || math.Abs(got.MRR-base.MRR) > 1e-9 || math.Abs(got.GoldNLL-base.GoldNLL) > 1e-5 {
				t.Errorf("Evaluate %+v with batch %d, %+v with batch 1", got, tc.bs, base)
			}
			mg := mt(MaskedTokenOptions{Seed: 3, BatchSize: tc.bs})
			if mg.Tokens != mBase.Tokens || mg.Accuracy != mBase.Accuracy || math.Abs(mg.NLL-mBase.NLL) > 1e-5 {
				t.Errorf("MaskedTokenAccuracy %+v with batch %d, %+v with batch 1", mg, tc.bs, mBase)
			}
		})
	}
	if again := mt(MaskedTokenOptions{Seed: 3, BatchSize: 1}); again != mBase {
		t.Errorf("same seed: %+v then %+v", mBase, again)
	}
	if other := mt(MaskedTokenOptions{Seed: 4, BatchSize: 1}); other.Tokens == mBase.Tokens && other.NLL == mBase.NLL {
		t.Errorf("seeds 3 and 4 gave the same masks: %+v", other)
	}
	if mBase.Texts != len(texts) || mBase.Tokens < len(texts) || math.Abs(mBase.PseudoPerplexity-math.Exp(mBase.NLL)) > 1e-9 {
		t.Errorf("metrics %+v", mBase)
	}
	// Samples: deterministic per seed, and a text's masks do not depend
	// on the sample it is in.
	s1 := mt(MaskedTokenOptions{Seed: 3, MaxTexts: 3})
	s2 := mt(MaskedTokenOptions{Seed: 3, MaxTexts: 3})
	if s1 != s2 || s1.Texts != 3 {
		t.Errorf("sample of 3: %+v then %+v", s1, s2)
	}
	e1, err := m.Evaluate(ctx, items, EvalOptions{MaxItems: 2, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if e1.Items != 2 {
		t.Errorf("MaxItems 2 evaluated %d items", e1.Items)
	}
	if _, err := m.MaskedTokenAccuracy(ctx, texts, MaskedTokenOptions{MaskProb: 1.5}); err == nil {
		t.Error("MaskProb 1.5 accepted")
	}
}
