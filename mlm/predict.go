package mlm

import (
	"context"
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// FillOptions configure FillMask.
type FillOptions struct {
	// TopK is the number of predictions per mask (default 5). With Targets
	// it is capped at the number of distinct targets.
	TopK int
	// Targets restricts predictions to these words, scored as the Hugging
	// Face fill-mask pipeline does: a word that is not a vocabulary token
	// is replaced by the first word piece it tokenizes into.
	Targets []string
	// BatchSize is the number of texts per forward pass (default 32).
	BatchSize int
}

// Prediction is one candidate for one mask, with the fields of the
// Hugging Face fill-mask pipeline.
type Prediction struct {
	// Score is the token's probability at the mask.
	Score float64 `json:"score"`
	// Token is the token id.
	Token int `json:"token"`
	// TokenStr is the decoded token.
	TokenStr string `json:"token_str"`
	// Sequence is the text with this token in the mask, decoded as the
	// pipeline does (special tokens kept when the text has several masks).
	Sequence string `json:"sequence"`
}

// FillResult holds the predictions for one text: one list per mask, in
// text order, each sorted by decreasing score.
type FillResult struct {
	Text  string         `json:"text"`
	Masks [][]Prediction `json:"masks"`
}

// FillMask predicts the tokens at every mask of every text. A text without
// a mask, or one the tokenizer rejects, fails the call with an error naming
// it.
func (m *Model) FillMask(ctx context.Context, texts []string, opts FillOptions) ([]FillResult, error) {
	if m.tok == nil {
		return nil, fmt.Errorf("fill mask: model has no tokenizer")
	}
	if opts.TopK <= 0 {
		opts.TopK = 5
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 32
	}
	targets, err := m.targetIDs(opts.Targets)
	if err != nil {
		return nil, fmt.Errorf("fill mask: %w", err)
	}
	prep := make([]prepared, len(texts))
	for i, t := range texts {
		prep[i] = m.prepare(t)
		if prep[i].err != nil {
			return nil, fmt.Errorf("fill mask: text %d %q: %w", i+1, t, prep[i].err)
		}
	}
	out := make([]FillResult, len(texts))
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.unlock()
	guard := ts.NewNoGradGuard()
	defer guard.Drop()
	batches := lengthBatches(prep, opts.BatchSize)
	defer releaseAfter(len(batches))
	for _, b := range batches {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("fill mask: %w", err)
		}
		if err := m.fillBatch(prep, b, targets, opts.TopK, out); err != nil {
			return nil, fmt.Errorf("fill mask: %w", err)
		}
	}
	for i, t := range texts {
		out[i].Text = t
	}
	return out, nil
}

// targetIDs maps target words to token ids as the Hugging Face pipeline
// does: a vocabulary token as is, otherwise its first word piece;
// duplicates are removed, words that tokenize to nothing are skipped.
func (m *Model) targetIDs(targets []string) ([]int64, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	seen := map[int64]bool{}
	var ids []int64
	for _, w := range targets {
		id, ok := m.tok.TokenToID(w)
		if !ok {
			pieces, err := m.tok.WordPieces(w)
			if err != nil {
				return nil, fmt.Errorf("target %q: %w", w, err)
			}
			if len(pieces.IDs) == 0 {
				continue
			}
			id = pieces.IDs[0]
		}
		if !seen[int64(id)] {
			seen[int64(id)] = true
			ids = append(ids, int64(id))
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no target maps to a token: %q", targets)
	}
	return ids, nil
}

func (m *Model) fillBatch(prep []prepared, idx []int, targets []int64, topK int, out []FillResult) (err error) {
	defer catch(&err, "predict")
	var s scope
	defer s.free()
	logits, _ := m.maskLogits(&s, prep, idx, false)
	probs := s.consume(logits, s.softmax(logits, -1))
	k := min(topK, m.candidates())
	if targets == nil {
		probs = m.candidateColumns(&s, probs)
	} else {
		tt := s.int64s(targets, []int64{int64(len(targets))}, m.device)
		probs = s.consume(probs, s.indexSelect(probs, 1, tt))
		k = min(topK, len(targets))
	}
	vals, ind := s.topk(probs, int64(k))
	p, id := float32sOf(vals), int64sOf(ind)
	s.free()
	row := 0
	for _, i := range idx {
		it := prep[i]
		single := len(it.masks) == 1
		res := make([][]Prediction, len(it.masks))
		for j, pos := range it.masks {
			preds := make([]Prediction, k)
			for q := range preds {
				tokID := id[(row+j)*k+q]
				if targets != nil {
					tokID = targets[tokID]
				}
				str, err := m.tok.Decode([]int{int(tokID)}, false)
				check(err)
				seq := make([]int, 0, len(it.ids))
				for t, v := range it.ids {
					if t == pos {
						v = tokID
					}
					seq = append(seq, int(v))
				}
				sentence, err := m.tok.Decode(seq, single)
				check(err)
				preds[q] = Prediction{Score: float64(p[(row+j)*k+q]), Token: int(tokID), TokenStr: str, Sequence: sentence}
			}
			res[j] = preds
		}
		out[i].Masks = res
		row += len(it.masks)
	}
	return nil
}
