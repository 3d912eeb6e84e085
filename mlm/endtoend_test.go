package mlm

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// endToEndExamples are the labelled items the architectures' end-to-end
// tests fine-tune on: single and double masks, a capitalised answer at the
// start of a text.
func endToEndExamples() []Example {
	return []Example{
		{Text: "the cat sat on the [MASK] .", Answers: []string{"mat"}},
		{Text: "the dog sat on the [MASK] .", Answers: []string{"rug"}},
		{Text: "I want to [MASK] a book", Answers: []string{"read"}},
		{Text: "I want to [MASK] a letter", Answers: []string{"write"}},
		{Text: "[MASK] cat sat on a mat .", Answers: []string{"The"}},
		{Text: "the [MASK] sat on the [MASK] .", Answers: []string{"dog", "rug"}},
	}
}

// endToEndEvalItems are endToEndExamples as evaluation items.
func endToEndEvalItems() []EvalItem {
	var items []EvalItem
	for i, e := range endToEndExamples() {
		items = append(items, EvalItem{ID: string(rune('a' + i)), Text: e.Text, Gold: e.Answers})
	}
	return items
}

// checkScoreSuggestions scores one item and requires five suggestions
// written as answers: without the tokenizer's word marker (marker, 0 for
// none) or a leading space.
func checkScoreSuggestions(t *testing.T, m *Model, marker rune) {
	t.Helper()
	scores, err := m.Score(context.Background(), []ScoreItem{{ID: "a", Text: "the dog sat on the [MASK] ."}}, ScoreOptions{TopK: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 1 || scores[0].Masks != 1 || len(scores[0].Suggestions[0]) != 5 {
		t.Fatalf("Score: %+v", scores)
	}
	for _, s := range scores[0].Suggestions[0] {
		if (marker != 0 && strings.ContainsRune(s.Token, marker)) || strings.HasPrefix(s.Token, " ") {
			t.Errorf("suggestion %q is not written as an answer", s.Token)
		}
	}
}

// checkFineTuneLearns evaluates endToEndExamples, fine-tunes on them for
// epochs (with replay) and evaluates again: the gold NLL must halve and
// top-1 rise. It returns the metrics before and after.
func checkFineTuneLearns(t *testing.T, m *Model, epochs int) (before, after EvalMetrics) {
	t.Helper()
	ctx := context.Background()
	examples, items := endToEndExamples(), endToEndEvalItems()
	before, err := m.Evaluate(ctx, items, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if before.Items != len(items) || before.N != len(items)+1 {
		t.Fatalf("Evaluate before: %+v", before)
	}
	ft, err := m.FineTune(ctx, examples, []string{"the cat sat on the mat .", "I want to read a book"}, FineTuneOptions{
		Epochs: epochs, BatchSize: 4, LR: 3e-3, Seed: 1, ReplayWeight: 0.2,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ft.Trained != len(examples) || len(ft.Skipped) != 0 {
		t.Fatalf("FineTune trained %d, skipped %+v", ft.Trained, ft.Skipped)
	}
	after, err = m.Evaluate(ctx, items, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gold NLL %.3f → %.3f, top-1 %.2f → %.2f", before.GoldNLL, after.GoldNLL, before.Top1, after.Top1)
	if !(after.GoldNLL < before.GoldNLL/2) || after.Top1 <= before.Top1 {
		t.Errorf("fine-tuning did not learn the items: NLL %.3f → %.3f, top-1 %.2f → %.2f", before.GoldNLL, after.GoldNLL, before.Top1, after.Top1)
	}
	return before, after
}

// checkReloadedSame requires the reloaded model m2 to predict texts as m
// does and to evaluate endToEndEvalItems as m did after fine-tuning
// (after). It returns m's predictions.
func checkReloadedSame(t *testing.T, m, m2 *Model, texts []string, after EvalMetrics) []FillResult {
	t.Helper()
	ctx := context.Background()
	r1, err := m.FillMask(ctx, texts, FillOptions{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := m2.FillMask(ctx, texts, FillOptions{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(r1, r2, func(a, b FillResult) bool {
		return slices.EqualFunc(a.Masks, b.Masks, func(x, y []Prediction) bool { return slices.Equal(x, y) })
	}) {
		t.Errorf("predictions differ after Save and Load:\n%+v\n%+v", r1, r2)
	}
	again, err := m2.Evaluate(ctx, endToEndEvalItems(), EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.GoldNLL != after.GoldNLL || again.Top1 != after.Top1 {
		t.Errorf("Evaluate after reload %+v, before save %+v", again, after)
	}
	return r1
}
