package mlm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/tokenize"
	"github.com/clozeloop/clozeloop/torchrt"
)

// EvalItem is one labelled cloze item: a text with one or more mask tokens
// and the gold answer of each mask, in text order.
type EvalItem struct {
	ID   string
	Text string
	Gold []string
}

// EvalOptions configure Evaluate.
type EvalOptions struct {
	// BatchSize is the number of items per forward pass (default 32).
	BatchSize int
	// MaxItems, when positive and smaller than the number of items,
	// evaluates a random sample of that many items, drawn with Seed.
	MaxItems int
	// Seed picks the MaxItems sample; the same seed gives the same sample.
	Seed uint64
}

// EvalSkip names an item that was not evaluated and says why.
type EvalSkip struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// EvalMetrics are the cloze metrics of Evaluate. The unit is the answer
// (one mask of the original text with its gold answer): an item with two
// masks counts twice.
//
// A gold answer that the tokenizer splits into several word pieces is
// scored as fine-tuning trains it: its mask is expanded into as many masks
// as the answer has pieces, all predicted in one forward pass. The answer
// is correct at top-1 (top-5) when every piece ranks first (within the
// first five) at its mask; its reciprocal rank is that of the first piece;
// its NLL is the sum of the pieces' negative log-probabilities. Ranks are
// among the tokens the tokenizer knows, as FillMask's; probabilities are
// the softmax over the whole vocabulary, as FillMask's scores.
type EvalMetrics struct {
	// Items is the number of items evaluated, N the number of answers.
	Items int `json:"items"`
	N     int `json:"n"`
	// Top1 and Top5 are the fractions of answers predicted correctly.
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	// MRR is the mean reciprocal rank of the answers' first pieces.
	MRR float64 `json:"mrr"`
	// GoldNLL is the mean negative log-likelihood of the gold answers, in
	// nats (summed over the pieces of an answer).
	GoldNLL float64 `json:"gold_nll"`
	// Skipped counts the items not evaluated: a gold answer that maps to
	// the unknown token, is empty or contains a special token, a text
	// without masks or with a different number of masks than answers, a
	// text the tokenizer rejects or whose masks do not fit the model.
	Skipped int `json:"skipped"`
	// Skips names the skipped items and the reasons.
	Skips []EvalSkip `json:"skips,omitempty"`
}

// Evaluate measures how well the model predicts the gold answers of
// labelled cloze items (see EvalMetrics for the definitions). It runs in
// eval mode without gradients, batched by length, with the MLM head only at
// the masks, and is deterministic: the same model, items and options give
// the same metrics, whatever the batch size (up to float rounding). Items
// that cannot be evaluated are skipped and reported, not fatal; an error
// means the evaluation itself failed.
func (m *Model) Evaluate(ctx context.Context, items []EvalItem, opts EvalOptions) (EvalMetrics, error) {
	if m.tok == nil {
		return EvalMetrics{}, errors.New("evaluate: model has no tokenizer")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 32
	}
	if opts.MaxItems < 0 {
		return EvalMetrics{}, fmt.Errorf("evaluate: negative MaxItems %d", opts.MaxItems)
	}
	var met EvalMetrics
	var prep []prepared
	var labels [][]int64 // per prepared item, one label per mask
	var answers [][]int  // per prepared item, the piece count of each answer
	for _, i := range sampleIndices(len(items), opts.MaxItems, opts.Seed) {
		it := items[i]
		p, lab, counts, reason := m.prepareEvalItem(it)
		if reason != "" {
			met.Skipped++
			met.Skips = append(met.Skips, EvalSkip{ID: it.ID, Reason: reason})
			continue
		}
		prep = append(prep, p)
		labels = append(labels, lab)
		answers = append(answers, counts)
	}
	res, err := m.maskRanks(ctx, prep, labels, opts.BatchSize)
	if err != nil {
		return EvalMetrics{}, fmt.Errorf("evaluate: %w", err)
	}
	var top1, top5, rr, nll float64
	for i := range prep {
		r := res[i]
		k := 0
		for _, n := range answers[i] {
			ok1, ok5 := true, true
			var sum float64
			for j := k; j < k+n; j++ {
				ok1 = ok1 && r.rank[j] == 1
				ok5 = ok5 && r.rank[j] <= 5
				sum += r.nll[j]
			}
			if ok1 {
				top1++
			}
			if ok5 {
				top5++
			}
			rr += 1 / float64(r.rank[k])
			nll += sum
			met.N++
			k += n
		}
	}
	met.Items = len(prep)
	if met.N > 0 {
		n := float64(met.N)
		met.Top1, met.Top5, met.MRR, met.GoldNLL = top1/n, top5/n, rr/n, nll/n
	}
	return met, nil
}

// prepareEvalItem tokenizes an item, expands each mask into one mask per
// word piece of its gold answer and windows the result. It returns the
// labels (one per expanded mask), the piece count of each answer, or the
// reason the item cannot be evaluated.
func (m *Model) prepareEvalItem(it EvalItem) (p prepared, labels []int64, counts []int, reason string) {
	text := m.userText(it.Text)
	enc, err := m.tok.Encode(text)
	if err != nil {
		return prepared{}, nil, nil, fmt.Sprintf("tokenize text: %v", err)
	}
	maskID := int64(m.tok.MaskID())
	n := countMasks(enc.IDs, maskID)
	if n == 0 {
		return prepared{}, nil, nil, fmt.Sprintf("text has no %s", m.tok.MaskToken())
	}
	if n != len(it.Gold) {
		return prepared{}, nil, nil, fmt.Sprintf("text has %d masks but %d gold answers", n, len(it.Gold))
	}
	all, err := m.tok.AnswerPieces(text, it.Gold)
	if err != nil {
		return prepared{}, nil, nil, fmt.Sprintf("tokenize gold answers: %v", err)
	}
	pieces := make([][]int64, len(it.Gold))
	for j, g := range it.Gold {
		if pieces[j], reason = m.goldPieces(g, all[j]); reason != "" {
			return prepared{}, nil, nil, fmt.Sprintf("gold answer %d: %s", j+1, reason)
		}
	}
	ids, labels := expandMasks(enc.IDs, maskID, pieces)
	for _, pc := range pieces {
		counts = append(counts, len(pc))
	}
	p = m.prepareIDs(ids)
	if p.err != nil {
		return prepared{}, nil, nil, p.err.Error()
	}
	return p, labels, counts, ""
}

// goldPieces checks the pieces p of a gold answer (its tokens at its mask)
// and returns their ids, or says why it cannot be scored: it is empty,
// maps to the unknown token or contains a special token.
func (m *Model) goldPieces(answer string, p tokenize.Pieces) ([]int64, string) {
	switch {
	case len(p.IDs) == 0:
		return nil, fmt.Sprintf("%q is empty after tokenization", answer)
	case p.Unknown:
		unk, _ := m.tok.IDToToken(m.tok.UNKID())
		return nil, fmt.Sprintf("%q maps to the unknown token %s (pieces %q)", answer, unk, p.Tokens)
	}
	ids := make([]int64, len(p.IDs))
	for k, id := range p.IDs {
		if m.tok.IsSpecial(id) {
			return nil, fmt.Sprintf("%q contains the special token %s", answer, p.Tokens[k])
		}
		ids[k] = int64(id)
	}
	return ids, ""
}

// MaskedTokenOptions configure MaskedTokenAccuracy.
type MaskedTokenOptions struct {
	// MaskProb is the probability that a token is masked (default 0.15);
	// every text has at least one masked token.
	MaskProb float64
	// Seed draws the masked positions (and the MaxTexts sample): the same
	// seed masks the same tokens.
	Seed uint64
	// MaxTexts, when positive and smaller than the number of texts,
	// evaluates a random sample of that many texts, drawn with Seed.
	MaxTexts int
	// BatchSize is the number of texts per forward pass (default 32).
	BatchSize int
}

// MaskedTokenMetrics are the results of MaskedTokenAccuracy.
type MaskedTokenMetrics struct {
	// Texts is the number of texts evaluated, Tokens the number of masked
	// tokens predicted.
	Texts  int `json:"texts"`
	Tokens int `json:"tokens"`
	// Accuracy is the fraction of masked tokens whose original token is
	// the model's top prediction.
	Accuracy float64 `json:"accuracy"`
	// NLL is the mean negative log-likelihood of the original tokens at
	// the masks, in nats.
	NLL float64 `json:"nll"`
	// PseudoPerplexity is exp(NLL).
	PseudoPerplexity float64 `json:"pseudo_perplexity"`
	// Skipped counts texts that were not evaluated: empty after
	// tokenization (no ordinary token to mask) or rejected by the
	// tokenizer.
	Skipped int `json:"skipped"`
}

// MaskedTokenAccuracy is the forgetting check on unlabelled held-out text:
// in every text a random MaskProb of the ordinary (non-special) tokens is
// replaced by the mask token, all at once, and the model predicts them in
// one forward pass. It reports the accuracy of the top prediction and the
// pseudo-perplexity, exp of the mean negative log-likelihood of the
// original tokens (of these simultaneous masks, not the one-token-at-a-time
// pseudo-log-likelihood). Texts longer than the model takes are cut to its
// maximum length. The masks depend only on Seed and each text's position
// in texts, so the result is deterministic and independent of BatchSize
// (up to float rounding).
func (m *Model) MaskedTokenAccuracy(ctx context.Context, texts []string, opts MaskedTokenOptions) (MaskedTokenMetrics, error) {
	if m.tok == nil {
		return MaskedTokenMetrics{}, errors.New("masked token accuracy: model has no tokenizer")
	}
	if opts.MaskProb == 0 {
		opts.MaskProb = 0.15
	}
	if !(opts.MaskProb > 0 && opts.MaskProb <= 1) {
		return MaskedTokenMetrics{}, fmt.Errorf("masked token accuracy: MaskProb %g outside (0, 1]", opts.MaskProb)
	}
	if opts.MaxTexts < 0 {
		return MaskedTokenMetrics{}, fmt.Errorf("masked token accuracy: negative MaxTexts %d", opts.MaxTexts)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 32
	}
	var met MaskedTokenMetrics
	var prep []prepared
	var labels [][]int64
	maxLen := m.cfg.MaxSequenceLength()
	maskID := int64(m.tok.MaskID())
	for n, i := range sampleIndices(len(texts), opts.MaxTexts, opts.Seed) {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return MaskedTokenMetrics{}, fmt.Errorf("masked token accuracy: %w", err)
			}
		}
		enc, err := m.tok.Encode(texts[i])
		if err != nil {
			met.Skipped++
			continue
		}
		ids := make([]int64, 0, min(len(enc.IDs), maxLen))
		for _, id := range enc.IDs {
			ids = append(ids, int64(id))
		}
		if len(ids) > maxLen {
			ids = append(ids[:maxLen-1], ids[len(ids)-1])
		}
		var cand []int
		for p, id := range ids {
			if !m.tok.IsSpecial(int(id)) {
				cand = append(cand, p)
			}
		}
		if len(cand) == 0 {
			met.Skipped++
			continue
		}
		rng := rand.New(rand.NewPCG(opts.Seed, uint64(i)))
		var pos []int
		for _, p := range cand {
			if rng.Float64() < opts.MaskProb {
				pos = append(pos, p)
			}
		}
		if len(pos) == 0 {
			pos = append(pos, cand[rng.IntN(len(cand))])
		}
		lab := make([]int64, len(pos))
		for j, p := range pos {
			lab[j] = ids[p]
			ids[p] = maskID
		}
		prep = append(prep, prepared{ids: ids, masks: pos})
		labels = append(labels, lab)
	}
	res, err := m.maskRanks(ctx, prep, labels, opts.BatchSize)
	if err != nil {
		return MaskedTokenMetrics{}, fmt.Errorf("masked token accuracy: %w", err)
	}
	var correct, nll float64
	for _, r := range res {
		for j := range r.rank {
			if r.rank[j] == 1 {
				correct++
			}
			nll += r.nll[j]
			met.Tokens++
		}
	}
	met.Texts = len(prep)
	if met.Tokens > 0 {
		met.Accuracy = correct / float64(met.Tokens)
		met.NLL = nll / float64(met.Tokens)
		met.PseudoPerplexity = math.Exp(met.NLL)
	}
	return met, nil
}

// sampleIndices returns 0 … n-1, or, when 0 < limit < n, a sorted random
// sample of limit of them drawn with seed.
func sampleIndices(n, limit int, seed uint64) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if limit <= 0 || limit >= n {
		return idx
	}
	rng := rand.New(rand.NewPCG(seed, 0x6576616c))
	rng.Shuffle(n, func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
	idx = idx[:limit]
	sort.Ints(idx)
	return idx
}

// labelScores are, for the masks of one item in text order, the rank of
// the label among the tokenizer's tokens (1 = top prediction) and its
// negative log-probability.
type labelScores struct {
	rank []int64
	nll  []float64
}

// maskRanks runs prep (labels[i] has one id per mask of prep[i]) in eval
// mode, batched by length, and returns each item's label scores.
func (m *Model) maskRanks(ctx context.Context, prep []prepared, labels [][]int64, batchSize int) ([]labelScores, error) {
	out := make([]labelScores, len(prep))
	if len(prep) == 0 {
		return out, nil
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.unlock()
	guard := ts.NewNoGradGuard()
	defer guard.Drop()
	batches := lengthBatches(prep, batchSize)
	defer releaseAfter(len(batches))
	for bi, b := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if bi > 0 && bi%releaseEvery == 0 {
			torchrt.ReleaseMemory()
		}
		if err := m.rankBatch(prep, labels, b, out); err != nil {
			return nil, fmt.Errorf("batch of %d items: %w", len(b), err)
		}
	}
	return out, nil
}

func (m *Model) rankBatch(prep []prepared, labels [][]int64, idx []int, out []labelScores) (err error) {
	defer catch(&err, "rank labels")
	var lab []int64
	for _, i := range idx {
		lab = append(lab, labels[i]...)
	}
	var s scope
	defer s.free()
	logits, _ := m.maskLogits(&s, prep, idx, false)
	logp := s.consume(logits, s.logSoftmax(logits, -1))
	lt := s.int64s(lab, []int64{int64(len(lab)), 1}, m.device)
	gold := s.gatherDim(logp, 1, lt)
	// Rank = 1 + the number of candidate tokens more probable than the
	// label.
	above := s.gtTensor(m.candidateColumns(&s, logp), gold)
	cnt := s.consume(above, s.sumDim(above, 1, gotch.Int64))
	g, c := float32sOf(gold), int64sOf(cnt)
	s.free()
	row := 0
	for _, i := range idx {
		n := len(prep[i].masks)
		r := labelScores{rank: make([]int64, n), nll: make([]float64, n)}
		for j := 0; j < n; j++ {
			r.rank[j] = c[row+j] + 1
			r.nll[j] = -float64(g[row+j])
		}
		out[i] = r
		row += n
	}
	return nil
}
