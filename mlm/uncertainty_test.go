package mlm

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/safetensors"
)

// binaryEntropy is −p·ln p − (1−p)·ln(1−p), in nats.
func binaryEntropy(p float64) float64 { return -p*math.Log(p) - (1-p)*math.Log(1-p) }

// fixedLogitsModel returns a test model whose masked-LM logits are bias at
// every position whatever the input: the word embeddings (which the
// decoder shares) are zero, so the head's output is exactly its bias.
func fixedLogitsModel(t *testing.T, bias []float32) *Model {
	t.Helper()
	m := newTestModel(t, 5)
	dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor {
		for i, x := range sd {
			var v []float32
			switch x.Name {
			case "bert.embeddings.word_embeddings.weight", "cls.predictions.decoder.weight":
				v = make([]float32, x.NumElements())
			case "cls.predictions.bias", "cls.predictions.decoder.bias":
				v = bias
			default:
				continue
			}
			var err error
			if sd[i], err = safetensors.FromFloat32s(x.Name, safetensors.F32, x.Shape, v); err != nil {
				t.Fatal(err)
			}
		}
		return sd
	})
	fixed, err := Load(context.Background(), dir, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fixed.Close() })
	return fixed
}

// TestScoreMeasuresClosedForm scores items with a model whose logits are
// set by hand and compares least confidence, margin, entropy and BALD
// with their closed forms: uniform over V tokens gives entropy ln V; two
// tokens at logits ln 3 and 0 with the rest at −10⁴ (probability exactly
// 0 in float32) give p = (3/4, 1/4), entropy h(3/4), least confidence 1/4
// and margin 1/2. Dropout cannot change logits that do not depend on the
// hidden states, so BALD is 0 (and not NaN, although most mean
// probabilities are 0).
func TestScoreMeasuresClosedForm(t *testing.T) {
	v := len(testVocab())
	cat, dog := 14, 15 // ids of "cat" and "dog" in testVocab
	peaked := make([]float32, v)
	for i := range peaked {
		peaked[i] = -1e4
	}
	peaked[cat], peaked[dog] = float32(math.Log(3)), 0
	tests := []struct {
		name                       string
		bias                       []float32
		lc, margin, entropy, top1p float64
		top1                       int
	}{
		{"uniform", make([]float32, v), 1 - 1/float64(v), 0, math.Log(float64(v)), 1 / float64(v), -1},
		{"3:1", peaked, 0.25, 0.5, binaryEntropy(0.75), 0.75, cat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := fixedLogitsModel(t, tc.bias)
			items := []ScoreItem{{ID: "one", Text: "i want to [MASK] a book"}, {ID: "two", Text: "the [MASK] sat on the [MASK] ."}}
			got, err := m.Score(context.Background(), items, ScoreOptions{TopK: 2, MCDropout: 4, Seed: 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range got {
				if s.Err != "" {
					t.Fatalf("item %s: %s", s.ID, s.Err)
				}
				checkMeasures(t, s, tc.lc, tc.margin, tc.entropy, tc.top1p)
				if tc.top1 >= 0 && s.Suggestions[0][0].ID != tc.top1 {
					t.Errorf("item %s: top suggestion %+v, want id %d", s.ID, s.Suggestions[0][0], tc.top1)
				}
			}
		})
	}
}

// checkMeasures compares an item's measures with their closed forms; BALD
// is 0 for the fixed-logits models, whose logits dropout cannot change.
func checkMeasures(t *testing.T, s ItemScore, lc, margin, entropy, top1p float64) {
	t.Helper()
	const tol = 1e-5
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"least confidence", s.LeastConfidence, lc},
		{"margin", s.Margin, margin},
		{"entropy", s.Entropy, entropy},
		{"BALD", s.BALD, 0},
		{"top-1 probability", s.Suggestions[0][0].Score, top1p},
	} {
		if !(math.Abs(c.got-c.want) <= tol) {
			t.Errorf("item %s: %s = %.7g, closed form %.7g", s.ID, c.what, c.got, c.want)
		}
	}
}

// TestScoreAnswersClosedForm scores with a closed answer set: logits ln 4
// for "red", ln 3 for "cat", 0 for "dog" and every other token. Over the
// whole vocabulary "red" leads; over the answers cat and dog the
// distribution is (3/4, 1/4) whatever the other tokens hold, so the
// measures are those of TestScoreMeasuresClosedForm's 3:1 case and the
// suggestions name only answers.
func TestScoreAnswersClosedForm(t *testing.T) {
	v := len(testVocab())
	cat, dog, red := 14, 15, 20 // ids in testVocab
	bias := make([]float32, v)
	bias[red], bias[cat] = float32(math.Log(4)), float32(math.Log(3))
	m := fixedLogitsModel(t, bias)
	items := []ScoreItem{{ID: "one", Text: "i want to [MASK] a book"}, {ID: "two", Text: "the [MASK] sat on the [MASK] ."}}
	ctx := context.Background()

	whole, err := m.Score(ctx, items[:1], ScoreOptions{TopK: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if whole[0].Suggestions[0][0].ID != red {
		t.Fatalf("without answers the top suggestion is %+v, want red", whole[0].Suggestions[0][0])
	}
	got, err := m.Score(ctx, items, ScoreOptions{TopK: 5, MCDropout: 2, Seed: 1, Answers: []string{"cat", "dog", "cats"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		if s.Err != "" {
			t.Fatalf("item %s: %s", s.ID, s.Err)
		}
		checkMeasures(t, s, 0.25, 0.5, binaryEntropy(0.75), 0.75)
		for _, sugg := range s.Suggestions {
			if len(sugg) != 2 || sugg[0].ID != cat || sugg[1].ID != dog || sugg[0].Token != "cat" {
				t.Errorf("item %s: suggestions %+v, want cat then dog only", s.ID, sugg)
			}
		}
	}

	for _, bad := range [][]string{{"cat"}, {"cat", "cats"}} {
		if _, err := m.Score(ctx, items, ScoreOptions{Answers: bad}, nil); err == nil || !strings.Contains(err.Error(), "at least 2") {
			t.Errorf("answers %q: error %v, want one asking for at least 2 tokens", bad, err)
		}
	}
}

// TestMutualInformationClosedForm gives BALD's last step hand-set draws:
// two draws (3/4, 1/4) and (1/4, 3/4) average to (1/2, 1/2), so BALD is
// ln 2 − h(3/4); three draws (0.9, 0.1), (0.5, 0.5), (0.1, 0.9) give
// ln 2 − (2·h(0.9) + ln 2)/3; identical draws give 0; a token whose every
// draw is 0 adds nothing.
func TestMutualInformationClosedForm(t *testing.T) {
	tests := []struct {
		name  string
		draws [][]float64 // one row per draw: the distribution over tokens
		want  float64
	}{
		{"two opposite", [][]float64{{0.75, 0.25}, {0.25, 0.75}}, math.Ln2 - binaryEntropy(0.75)},
		{"three", [][]float64{{0.9, 0.1}, {0.5, 0.5}, {0.1, 0.9}}, math.Ln2 - (2*binaryEntropy(0.9)+math.Ln2)/3},
		{"identical", [][]float64{{0.6, 0.4}, {0.6, 0.4}}, 0},
		{"zero column", [][]float64{{0.75, 0.25, 0}, {0.25, 0.75, 0}}, math.Ln2 - binaryEntropy(0.75)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.draws[0])
			sum := make([]float32, n)
			ent := 0.0
			for _, d := range tc.draws {
				for j, p := range d {
					sum[j] += float32(p)
					if p > 0 {
						ent -= p * math.Log(p)
					}
				}
			}
			var got []float64
			var err error
			ts.NoGrad(func() {
				var s scope
				defer s.free()
				defer catch(&err, "mutual information")
				sumP := s.float32s(sum, []int64{1, int64(n)}, gotch.CPU)
				sumEnt := s.float32s([]float32{float32(ent)}, []int64{1}, gotch.CPU)
				got = mutualInformation(&s, sumP, sumEnt, len(tc.draws))
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !(math.Abs(got[0]-tc.want) <= 1e-6) {
				t.Errorf("BALD %v, closed form %.7g", got, tc.want)
			}
		})
	}
}
