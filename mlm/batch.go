package mlm

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	lib "github.com/sugarme/gotch/libtch"

	"github.com/clozeloop/clozeloop/tokenize"
)

// ErrNoMask is wrapped by errors about texts without a mask token.
var ErrNoMask = errors.New("text has no mask token")

// prepared is one text tokenized for the model.
type prepared struct {
	ids   []int64 // [CLS] … [SEP], windowed to the model's maximum length
	masks []int   // positions of the mask token in ids
	err   error
}

// UserMaskToken is how users write a mask in texts (pool items, labels,
// eval sets, predict input), whatever the model: "[MASK]". For a model
// whose mask token differs (RoBERTa's and XLM-RoBERTa's "<mask>") it is
// replaced by the model's own before tokenization; "I want to [MASK] a
// book" becomes "I want to <mask> a book", where <mask> takes the space before it (lstrip),
// as in the Hugging Face fill-mask pipeline. The model's own mask token
// works in texts too.
const UserMaskToken = "[MASK]"

// userText replaces UserMaskToken in text by the tokenizer's mask token.
func (m *Model) userText(text string) string {
	if mt := m.tok.MaskToken(); mt != UserMaskToken {
		return strings.ReplaceAll(text, UserMaskToken, mt)
	}
	return text
}

// AnswerPieces returns the tokens each answer is trained and evaluated as
// by FineTune and Evaluate: the i-th answer written in place of the i-th
// mask of text (users' [MASK] or the model's own mask token), in text
// order; the counts must agree. For WordPiece the context does not matter;
// for byte-level BPE a word after a space is "Ġread" and at the start of a
// text "read"; for SentencePiece Unigram (XLM-RoBERTa) a word after a space
// or at the start of a text is "▁read" and one glued to the word before it
// "read" (see tokenize.Tokenizer.AnswerPieces). Pieces.Unknown
// reports an answer that maps to the unknown token.
func (m *Model) AnswerPieces(text string, answers []string) ([]tokenize.Pieces, error) {
	if m.tok == nil {
		return nil, errors.New("tokenize answers: model has no tokenizer")
	}
	p, err := m.tok.AnswerPieces(m.userText(text), answers)
	if err != nil {
		return nil, fmt.Errorf("tokenize answers: %w", err)
	}
	return p, nil
}

// prepare tokenizes text and finds its masks. A text longer than the
// model's maximum sequence length keeps a window of tokens around its
// masks.
func (m *Model) prepare(text string) prepared {
	if m.tok == nil {
		return prepared{err: errors.New("model has no tokenizer")}
	}
	enc, err := m.tok.Encode(m.userText(text))
	if err != nil {
		return prepared{err: fmt.Errorf("tokenize: %w", err)}
	}
	ids := make([]int64, len(enc.IDs))
	for i, id := range enc.IDs {
		ids[i] = int64(id)
	}
	return m.prepareIDs(ids)
}

// prepareIDs finds the masks in ids ([CLS] … [SEP]) and windows them.
func (m *Model) prepareIDs(ids []int64) prepared {
	maskID := int64(m.tok.MaskID())
	var masks []int
	for i, id := range ids {
		if id == maskID {
			masks = append(masks, i)
		}
	}
	if len(masks) == 0 {
		return prepared{err: fmt.Errorf("%w (%s)", ErrNoMask, m.tok.MaskToken())}
	}
	maxLen := m.cfg.MaxSequenceLength()
	if len(ids) <= maxLen {
		return prepared{ids: ids, masks: masks}
	}
	// Keep [CLS] and [SEP] and a window of the content around the masks.
	content := ids[1 : len(ids)-1]
	room := maxLen - 2
	first, last := masks[0]-1, masks[len(masks)-1]-1
	span := last - first + 1
	if span > room {
		return prepared{err: fmt.Errorf("masks span %d tokens, more than the %d the model takes", span, room)}
	}
	start := first - (room-span)/2
	start = max(0, min(start, len(content)-room))
	w := make([]int64, 0, maxLen)
	w = append(w, ids[0])
	w = append(w, content[start:start+room]...)
	w = append(w, ids[len(ids)-1])
	for i := range masks {
		masks[i] -= start
	}
	return prepared{ids: w, masks: masks}
}

// lengthBatches returns the indices of the usable items (err == nil),
// sorted by length and cut into batches of at most batchSize, so that each
// batch pads little.
func lengthBatches(items []prepared, batchSize int) [][]int {
	var idx []int
	for i, it := range items {
		if it.err == nil {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return len(items[idx[a]].ids) < len(items[idx[b]].ids) })
	var out [][]int
	for len(idx) > 0 {
		n := min(batchSize, len(idx))
		out = append(out, idx[:n:n])
		idx = idx[n:]
	}
	return out
}

// batchInputs builds, on s, the padded input ids, the attention mask and
// the flat mask positions (b*T+t) of the items idx. mask is nil when no
// item is padded (every item has the batch's length, as a batch of one
// always does): the forward pass then skips masking, which changes nothing
// in the result.
func (m *Model) batchInputs(s *scope, items []prepared, idx []int) (ids, mask, flat lib.Ctensor) {
	T := 0
	nMasks := 0
	padded := false
	for _, i := range idx {
		T = max(T, len(items[i].ids))
		nMasks += len(items[i].masks)
	}
	for _, i := range idx {
		padded = padded || len(items[i].ids) < T
	}
	B := len(idx)
	idBuf := make([]int64, B*T)
	var maskBuf []int64
	if padded {
		maskBuf = make([]int64, B*T)
	}
	flatBuf := make([]int64, 0, nMasks)
	pad := int64(m.cfg.PadTokenID)
	for b, i := range idx {
		row := idBuf[b*T : (b+1)*T]
		n := copy(row, items[i].ids)
		for j := n; j < T; j++ {
			row[j] = pad
		}
		if padded {
			for j := 0; j < n; j++ {
				maskBuf[b*T+j] = 1
			}
		}
		for _, p := range items[i].masks {
			flatBuf = append(flatBuf, int64(b*T+p))
		}
	}
	shape := []int64{int64(B), int64(T)}
	ids = s.int64s(idBuf, shape, m.device)
	if padded {
		mask = s.int64s(maskBuf, shape, m.device)
	}
	flat = s.int64s(flatBuf, []int64{int64(len(flatBuf))}, m.device)
	return ids, mask, flat
}

// maskLogits runs the batch idx on s and returns the MLM logits at every
// mask [M, vocab] (items in idx order, masks in text order) and the hidden
// states there [M, hidden]. The caller holds the model lock and runs under
// no-grad unless train.
func (m *Model) maskLogits(s *scope, items []prepared, idx []int, train bool) (logits, hidden lib.Ctensor) {
	ids, mask, flat := m.batchInputs(s, items, idx)
	h := m.forward(s, ids, mask, nil, train)
	s.drop(ids)
	if mask != nil {
		s.drop(mask)
	}
	at := s.consume(h, s.gather(h, flat))
	s.drop(flat)
	return m.head(s, at), at
}

// countMasks returns how many of ids are maskID.
func countMasks(ids []int, maskID int64) int {
	n := 0
	for _, id := range ids {
		if int64(id) == maskID {
			n++
		}
	}
	return n
}

// expandMasks replaces the k-th mask of ids with len(pieces[k]) masks, one
// per word piece of the k-th answer, and returns the new ids and the label
// (piece id) of each expanded mask in order. ids must hold len(pieces) masks.
func expandMasks(ids []int, maskID int64, pieces [][]int64) (out, labels []int64) {
	out = make([]int64, 0, len(ids)+4)
	k := 0
	for _, id := range ids {
		if int64(id) != maskID {
			out = append(out, int64(id))
			continue
		}
		for _, pc := range pieces[k] {
			out = append(out, maskID)
			labels = append(labels, pc)
		}
		k++
	}
	return out, labels
}
