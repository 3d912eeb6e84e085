package mlm

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/torchrt"
)

// ScoreItem is one pool item to score: a text with one or more mask tokens.
type ScoreItem struct {
	ID   string
	Text string
}

// Aggregation combines per-mask scores of an item with several masks.
type Aggregation string

// The aggregations of ScoreOptions.Aggregate.
const (
	AggregateMean Aggregation = "mean"
	AggregateMax  Aggregation = "max"
)

// ScoreOptions configure Score.
type ScoreOptions struct {
	// Aggregate combines the scores of an item's masks: "mean" (default) or
	// "max" (for margin, where small is uncertain, "max" takes the
	// smallest margin, i.e. the most uncertain mask).
	Aggregate Aggregation
	// MCDropout is the number of dropout samples for BALD; 0 skips BALD.
	MCDropout int
	// Embeddings asks for the final hidden state at the mask positions
	// (averaged over an item's masks).
	Embeddings bool
	// TopK is the number of suggestions kept per mask (default 5).
	TopK int
	// BatchSize is the number of items per forward pass (default 32).
	BatchSize int
	// Seed seeds the dropout masks of MCDropout.
	Seed uint64
	// Answers, when set, is the closed answer set of a task whose masks
	// take one of a few words (fill-mask as a classifier: a verbaliser
	// word per class). The measures and suggestions are then those of the
	// model's distribution renormalised over these words, the classifier's
	// own uncertainty, instead of over the whole vocabulary, where the
	// mass on words that are never an answer would dominate. Words map to
	// tokens as FillOptions.Targets do; at least two distinct tokens.
	Answers []string
}

// suggestionText is Suggestion.Token for id: the decoded token, spaces
// trimmed (for WordPiece, the vocabulary entry itself).
func (m *Model) suggestionText(id int) string {
	s, err := m.tok.Decode([]int{id}, false)
	if err != nil {
		tok, _ := m.tok.IDToToken(id)
		return tok
	}
	return strings.TrimSpace(s)
}

// Suggestion is one candidate token for a mask with its probability.
// Token is the token as text, usable as an answer: the vocabulary entry
// for WordPiece ("read", "##ing"), the decoded token without its leading
// space for byte-level BPE ("read" for "Ġread") and SentencePiece Unigram
// ("read" for "▁read").
type Suggestion struct {
	Token string  `json:"token"`
	ID    int     `json:"id"`
	Score float64 `json:"score"`
}

// ItemScore is the uncertainty of one item. Measures follow the
// conventions of package acquire: LeastConfidence is 1 − p(top1), Margin
// is p(top1) − p(top2) (small is uncertain), Entropy is in nats, BALD is
// the MC-dropout mutual information (nats; 0 without MCDropout).
type ItemScore struct {
	ID              string         `json:"id"`
	LeastConfidence float64        `json:"least_confidence"`
	Margin          float64        `json:"margin"`
	Entropy         float64        `json:"entropy"`
	BALD            float64        `json:"bald"`
	Masks           int            `json:"masks"`
	Embedding       []float32      `json:"embedding,omitempty"`
	Suggestions     [][]Suggestion `json:"suggestions"`
	// Err says why the item could not be scored (no mask, masks too far
	// apart for the model's length, text the tokenizer rejects); its
	// measures are then zero.
	Err string `json:"error,omitempty"`
}

// Score computes uncertainty measures, top-k suggestions and optionally
// embeddings for every item, in input order. Items that cannot be scored
// carry Err instead of failing the call. Texts are tokenized once, sorted
// by length and batched with minimal padding; the MLM head runs only at
// the mask positions, without gradients. progress (may be nil) is called
// after every batch with the number of items done and the total.
func (m *Model) Score(ctx context.Context, items []ScoreItem, opts ScoreOptions, progress func(done, total int)) ([]ItemScore, error) {
	if opts.Aggregate == "" {
		opts.Aggregate = AggregateMean
	}
	if opts.Aggregate != AggregateMean && opts.Aggregate != AggregateMax {
		return nil, fmt.Errorf("score: unknown aggregation %q (want mean or max)", opts.Aggregate)
	}
	if opts.TopK <= 0 {
		opts.TopK = 5
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 32
	}
	if opts.MCDropout < 0 {
		return nil, fmt.Errorf("score: negative MC-dropout sample count %d", opts.MCDropout)
	}
	answers, err := m.answerIDs(opts.Answers)
	if err != nil {
		return nil, err
	}
	prep := make([]prepared, len(items))
	out := make([]ItemScore, len(items))
	for i, it := range items {
		prep[i] = m.prepare(it.Text)
		out[i].ID = it.ID
		if prep[i].err != nil {
			out[i].Err = prep[i].err.Error()
		}
	}
	batches := lengthBatches(prep, opts.BatchSize)
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.unlock()
	guard := ts.NewNoGradGuard()
	defer guard.Drop()
	if opts.MCDropout > 0 {
		if err := torchrt.ManualSeed(opts.Seed); err != nil {
			return nil, err
		}
	}
	defer releaseAfter(len(batches))
	done := len(items)
	for _, b := range batches {
		done -= len(b)
	}
	for bi, b := range batches {
		if bi > 0 && bi%releaseEvery == 0 {
			torchrt.ReleaseMemory()
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("score: %w", err)
		}
		if err := m.scoreBatch(prep, b, answers, opts, out); err != nil {
			return nil, fmt.Errorf("score batch of %d items: %w", len(b), err)
		}
		done += len(b)
		if progress != nil {
			progress(done, len(items))
		}
	}
	return out, nil
}

// releaseEvery is how many batches a long pass runs between returns of
// the C allocator's free memory to the operating system.
const releaseEvery = 64

// releaseAfter hands the C allocator's free memory back to the operating
// system at the end of a pass of n batches of more than one batch. A pass
// of one batch (a sentence to predict, the suggestions the annotation page
// asks for) leaves it to the next call, which needs the same memory again:
// trimming after each such request was 5% of a warm serving process's CPU
// (bench predict --cpuprofile) and faulted the memory back in on the next
// request. Tensors above 32 MiB are unmapped when freed in any case
// (torchrt.UseHugePages).
func releaseAfter(n int) {
	if n > 1 {
		torchrt.ReleaseMemory()
	}
}

// maskStats are the per-mask measures of one batch.
type maskStats struct {
	topP   []float32 // [M, k]
	topID  []int64   // [M, k]
	ent    []float32 // [M]
	bald   []float64 // [M] or nil
	hidden []float32 // [M, H] or nil
	k      int
}

// answerIDs maps ScoreOptions.Answers to token ids (nil without them).
func (m *Model) answerIDs(words []string) ([]int64, error) {
	if len(words) == 0 {
		return nil, nil
	}
	if m.tok == nil {
		return nil, fmt.Errorf("score: answers need a tokenizer, and the model has none")
	}
	ids, err := m.targetIDs(words)
	if err != nil {
		return nil, fmt.Errorf("score: answers: %w", err)
	}
	if len(ids) < 2 {
		return nil, fmt.Errorf("score: answers %q map to %d distinct token(s); a closed answer set needs at least 2", words, len(ids))
	}
	return ids, nil
}

// answerColumns returns the columns of logits [M, vocab] (a handle of s)
// for the answer ids, consuming logits, or logits itself without answers.
func (m *Model) answerColumns(s *scope, logits lib.Ctensor, answers []int64) lib.Ctensor {
	if answers == nil {
		return logits
	}
	ids := s.int64s(answers, []int64{int64(len(answers))}, m.device)
	return s.consume(logits, s.indexSelect(logits, 1, ids))
}

func (m *Model) scoreBatch(prep []prepared, idx []int, answers []int64, opts ScoreOptions, out []ItemScore) (err error) {
	defer catch(&err, "score")
	k := min(max(opts.TopK, 2), m.candidates())
	if answers != nil {
		k = min(max(opts.TopK, 2), len(answers))
	}
	var s scope
	defer s.free()
	logits, hidden := m.maskLogits(&s, prep, idx, false)
	logits = m.answerColumns(&s, logits, answers)
	st := maskStats{k: k}
	logp := s.consume(logits, s.logSoftmax(logits, -1))
	p := s.exp(logp)
	ent := s.consume(logp, s.entropy(p, logp))
	if answers == nil {
		p = m.candidateColumns(&s, p)
	}
	vals, ind := s.topk(p, int64(k))
	st.topP, st.topID, st.ent = float32sOf(vals), int64sOf(ind), float32sOf(ent)
	if answers != nil {
		for i, c := range st.topID {
			st.topID[i] = answers[c]
		}
	}
	if opts.Embeddings {
		st.hidden = float32sOf(hidden)
	}
	s.free()
	if opts.MCDropout > 0 {
		st.bald = m.bald(prep, idx, answers, opts.MCDropout)
	}
	m.fillScores(prep, idx, st, opts, out)
	return nil
}

// entropy returns −Σ p·log p over the last dimension of p and its log.
func (s *scope) entropy(p, logp lib.Ctensor) lib.Ctensor {
	pl := s.mul(p, logp)
	sum := s.consume(pl, s.sumDim(pl, -1, gotch.Float))
	return s.consume(sum, s.neg(sum))
}

// bald runs samples dropout forward passes and returns, per mask, the
// mutual information H(mean p) − mean H(p), over the answer ids when there
// are any.
func (m *Model) bald(prep []prepared, idx []int, answers []int64, samples int) []float64 {
	var s scope
	defer s.free()
	var sumP, sumEnt lib.Ctensor
	for range samples {
		logits, hidden := m.maskLogits(&s, prep, idx, true)
		s.drop(hidden)
		logits = m.answerColumns(&s, logits, answers)
		logp := s.consume(logits, s.logSoftmax(logits, -1))
		p := s.exp(logp)
		ent := s.consume(logp, s.entropy(p, logp))
		if sumP == nil {
			sumP, sumEnt = p, ent
			continue
		}
		s.add_(sumP, p)
		s.add_(sumEnt, ent)
		s.drop(p)
		s.drop(ent)
	}
	return mutualInformation(&s, sumP, sumEnt, samples)
}

// mutualInformation returns, per row, H(sumP/samples) − sumEnt/samples
// (at least 0): BALD from the summed probabilities [M, V] and summed
// entropies [M] of samples draws, handles of s. It scales sumP in place. A
// token whose mean probability underflowed to 0 adds nothing (0·log 0 = 0)
// instead of making the result NaN.
func mutualInformation(s *scope, sumP, sumEnt lib.Ctensor, samples int) []float64 {
	inv := floatScalar(1 / float64(samples))
	defer inv.free()
	s.mulScalar_(sumP, inv)
	tiny := floatScalar(math.SmallestNonzeroFloat32)
	defer tiny.free()
	floored := s.clampMin(sumP, tiny)
	logMean := s.consume(floored, s.log(floored))
	hMean := s.consume(logMean, s.entropy(sumP, logMean))
	hm, se := float32sOf(hMean), float32sOf(sumEnt)
	out := make([]float64, len(hm))
	for i := range hm {
		out[i] = math.Max(0, float64(hm[i])-float64(se[i])/float64(samples))
	}
	return out
}

// fillScores aggregates the per-mask measures of a batch into out.
func (m *Model) fillScores(prep []prepared, idx []int, st maskStats, opts ScoreOptions, out []ItemScore) {
	H := m.cfg.HiddenSize
	row := 0
	for _, i := range idx {
		n := len(prep[i].masks)
		o := &out[i]
		o.Masks = n
		o.Suggestions = make([][]Suggestion, n)
		var lc, mg, en, bd []float64
		for j := 0; j < n; j++ {
			r := row + j
			top := st.topP[r*st.k : (r+1)*st.k]
			ids := st.topID[r*st.k : (r+1)*st.k]
			lc = append(lc, 1-float64(top[0]))
			mg = append(mg, float64(top[0])-float64(top[1]))
			en = append(en, float64(st.ent[r]))
			if st.bald != nil {
				bd = append(bd, st.bald[r])
			}
			sugg := make([]Suggestion, min(opts.TopK, st.k))
			for q := range sugg {
				sugg[q] = Suggestion{Token: m.suggestionText(int(ids[q])), ID: int(ids[q]), Score: float64(top[q])}
			}
			o.Suggestions[j] = sugg
		}
		o.LeastConfidence = aggregate(lc, opts.Aggregate, false)
		o.Margin = aggregate(mg, opts.Aggregate, true)
		o.Entropy = aggregate(en, opts.Aggregate, false)
		o.BALD = aggregate(bd, opts.Aggregate, false)
		if st.hidden != nil {
			emb := make([]float32, H)
			for j := 0; j < n; j++ {
				for d, v := range st.hidden[(row+j)*H : (row+j+1)*H] {
					emb[d] += v
				}
			}
			for d := range emb {
				emb[d] /= float32(n)
			}
			o.Embedding = emb
		}
		row += n
	}
}

// aggregate combines per-mask values: the mean, or the most uncertain one
// (the largest, or the smallest when smallIsUncertain).
func aggregate(v []float64, how Aggregation, smallIsUncertain bool) float64 {
	if len(v) == 0 {
		return 0
	}
	if how == AggregateMax {
		best := v[0]
		for _, x := range v[1:] {
			if (smallIsUncertain && x < best) || (!smallIsUncertain && x > best) {
				best = x
			}
		}
		return best
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// candidates returns the number of ids predictions may name: the
// tokenizer's vocabulary when it is smaller than the model's.
func (m *Model) candidates() int {
	if m.tok != nil && m.tok.VocabSize() < m.cfg.VocabSize {
		return m.tok.VocabSize()
	}
	return m.cfg.VocabSize
}

// candidateColumns returns the columns of probs [M, vocab] (a handle of s)
// for the ids the tokenizer knows, consuming probs, or probs itself when
// the tokenizer knows all of them, so that suggestions never name an id
// without a token.
func (m *Model) candidateColumns(s *scope, probs lib.Ctensor) lib.Ctensor {
	n := m.candidates()
	if n == m.cfg.VocabSize {
		return probs
	}
	return s.consume(probs, s.narrow(probs, 1, 0, int64(n)))
}
