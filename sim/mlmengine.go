package sim

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"
	"unicode"

	"github.com/clozeloop/clozeloop/acquire"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/tokenize"
)

// MLMEngine is the Engine over package mlm: every Start loads the
// checkpoint folder Dir (config.json, weights, tokenizer files) afresh.
type MLMEngine struct {
	// Dir is the starting checkpoint.
	Dir string
	// Options say where and with how many threads the model runs.
	Options mlm.Options
	// BatchSize is the number of items per forward pass when scoring and
	// evaluating (default 32).
	BatchSize int
	// Aggregate combines the scores of an item's masks (default mean).
	Aggregate mlm.Aggregation
}

// Start implements Engine.
func (e *MLMEngine) Start(ctx context.Context) (Model, error) {
	m, err := mlm.Load(ctx, e.Dir, e.Options)
	if err != nil {
		return nil, err
	}
	return &mlmModel{m: m, e: e}, nil
}

// mlmModel adapts an *mlm.Model to Model.
type mlmModel struct {
	m *mlm.Model
	e *MLMEngine
}

func (x *mlmModel) Close() error { return x.m.Close() }

func toScoreItems(items []Item) []mlm.ScoreItem {
	out := make([]mlm.ScoreItem, len(items))
	for i, it := range items {
		out[i] = mlm.ScoreItem{ID: it.ID, Text: it.Text}
	}
	return out
}

// Score implements Model. Items the model cannot score (see
// mlm.ItemScore.Err) are left out of the result.
func (x *mlmModel) Score(ctx context.Context, items []Item, opts ScoreOptions) ([]acquire.Candidate, error) {
	res, err := x.m.Score(ctx, toScoreItems(items), mlm.ScoreOptions{
		Aggregate: x.e.Aggregate, MCDropout: opts.MCDropout, Embeddings: opts.Embeddings,
		BatchSize: x.e.BatchSize, Seed: uint64(opts.Seed), TopK: 2, Answers: opts.Answers,
	}, nil)
	if err != nil {
		return nil, err
	}
	out := make([]acquire.Candidate, 0, len(res))
	for _, r := range res {
		if r.Err != "" {
			continue
		}
		out = append(out, acquire.Candidate{
			ID: r.ID, LeastConfidence: r.LeastConfidence, Margin: r.Margin,
			Entropy: r.Entropy, BALD: r.BALD, Embedding: r.Embedding,
		})
	}
	return out, nil
}

// FineTune implements Model with the options the workflow's FineTune
// activity gives mlm.FineTune (activities/mlmengine): epochs or steps,
// batch size, learning rate, warm-up, replay weight and replay texts. When
// no example can be trained on (every answer maps to the unknown token,
// say) the model is left unchanged and the examples are reported as
// skipped.
func (x *mlmModel) FineTune(ctx context.Context, examples []Example, replay []string, opts FineTuneOptions) (FineTuneStats, error) {
	ex := make([]mlm.Example, len(examples))
	for i, e := range examples {
		ex[i] = mlm.Example{Text: e.Text, Answers: e.Answers}
	}
	o := mlm.FineTuneOptions{
		Epochs: opts.Epochs, MaxSteps: opts.Steps, BatchSize: opts.BatchSize, LR: opts.LR,
		WarmupRatio: opts.WarmupRatio, Seed: uint64(opts.Seed),
	}
	if opts.ReplayWeight > 0 {
		o.ReplayWeight = opts.ReplayWeight
	} else {
		replay = nil
	}
	res, err := x.m.FineTune(ctx, ex, replay, o, nil)
	st := FineTuneStats{Steps: res.Steps, Trained: res.Trained, Skipped: len(res.Skipped), FinalLoss: res.FinalLoss}
	if errors.Is(err, mlm.ErrNoExamples) {
		return st, nil
	}
	return st, err
}

// Evaluate implements Model with mlm's Evaluate, the code of the workflow's
// Evaluate activity: a gold answer of several word pieces is expanded into
// one mask per piece and counts as correct when every piece is predicted;
// items the model cannot evaluate (an answer mapping to the unknown token,
// say) are skipped and counted in Accuracy.Skipped. (The activity
// evaluates in chunks and averages them weighted by answers, which gives
// the same numbers up to float rounding.)
func (x *mlmModel) Evaluate(ctx context.Context, items []EvalItem) (Accuracy, error) {
	ev := make([]mlm.EvalItem, len(items))
	for i, it := range items {
		ev[i] = mlm.EvalItem{ID: it.ID, Text: it.Text, Gold: it.Gold}
	}
	met, err := x.m.Evaluate(ctx, ev, mlm.EvalOptions{BatchSize: x.e.BatchSize})
	if err != nil {
		return Accuracy{}, err
	}
	return Accuracy{Top1: met.Top1, Top5: met.Top5, MRR: met.MRR, NLL: met.GoldNLL, Masks: met.N, Skipped: met.Skipped}, nil
}

// AnswerPieces implements Model: the number of tokens each answer is
// split into in place of its mask in text, as mlm's FineTune and Evaluate
// split it (mlm.Model.AnswerPieces: with byte-level BPE, "Ġread" after a
// space; with SentencePiece Unigram, "▁read" where Metaspace starts a
// word). An answer they cannot use (empty, mapping to the unknown token
// or holding a special token) counts 0, and so do all the answers when
// they cannot be tokenized at the masks of text (for byte-level BPE, when
// their number is not the text's number of masks).
func (x *mlmModel) AnswerPieces(text string, answers []string) []int {
	out := make([]int, len(answers))
	all, err := x.m.AnswerPieces(text, answers)
	if err != nil {
		return out
	}
	for i, p := range all {
		if usablePieces(x.m.Tokenizer(), p) {
			out[i] = len(p.IDs)
		}
	}
	return out
}

// usablePieces reports whether fine-tuning and evaluation can use an
// answer of pieces p: it has tokens, none unknown and none special.
func usablePieces(tok *tokenize.Tokenizer, p tokenize.Pieces) bool {
	if p.Unknown || len(p.IDs) == 0 {
		return false
	}
	for _, id := range p.IDs {
		if tok.IsSpecial(id) {
			return false
		}
	}
	return true
}

// surprisalWords is the number of words per item whose surprisal is
// measured.
const surprisalWords = 3

// surprisalBatch is the number of items per FillMask call.
const surprisalBatch = 32

// Surprisal implements Model, ALPS-style: in each item, up to three words
// (letters only, chosen by a fixed hash) are masked one at a time, and the
// item's surprisal is the mean −ln p of the original word's first token
// at its mask under the model, the word tokenized as an answer at that
// mask (mlm.Model.AnswerPieces: with byte-level BPE, "Ġread" after a
// space; with Unigram, "▁read"). An item with no such word, or one the model cannot read, gets
// 0.
func (x *mlmModel) Surprisal(ctx context.Context, items []Item) ([]float64, error) {
	tok := x.m.Tokenizer()
	type probe struct {
		item, mask int
		text       string
		target     string // the first token, a vocabulary entry
		id         int
	}
	var probes []probe
	for i, it := range items {
		for _, pr := range surprisalProbes(it) {
			// Every mask gets the word; only the probe's own pieces are used.
			answers := make([]string, strings.Count(pr.text, mlm.UserMaskToken))
			for k := range answers {
				answers[k] = pr.word
			}
			all, err := x.m.AnswerPieces(pr.text, answers)
			if err != nil || pr.mask >= len(all) || !usablePieces(tok, all[pr.mask]) {
				continue
			}
			p := all[pr.mask]
			probes = append(probes, probe{item: i, mask: pr.mask, text: pr.text, target: p.Tokens[0], id: p.IDs[0]})
		}
	}
	sum := make([]float64, len(items))
	cnt := make([]int, len(items))
	for start := 0; start < len(probes); start += surprisalBatch {
		b := probes[start:min(start+surprisalBatch, len(probes))]
		texts := make([]string, len(b))
		targets := make([]string, len(b))
		for i, p := range b {
			texts[i], targets[i] = p.text, p.target
		}
		res, err := x.m.FillMask(ctx, texts, mlm.FillOptions{TopK: len(b), Targets: targets, BatchSize: x.e.BatchSize})
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// One unreadable text fails the whole call: retry one by one
			// and leave the unreadable ones out.
			res = make([]mlm.FillResult, len(b))
			for i := range b {
				r, err := x.m.FillMask(ctx, texts[i:i+1], mlm.FillOptions{TopK: len(b), Targets: targets, BatchSize: 1})
				if err == nil {
					res[i] = r[0]
				} else if ctx.Err() != nil {
					return nil, err
				}
			}
		}
		for i, p := range b {
			if p.mask >= len(res[i].Masks) {
				continue
			}
			for _, pred := range res[i].Masks[p.mask] {
				if pred.Token == p.id {
					sum[p.item] += -math.Log(math.Max(pred.Score, 1e-12))
					cnt[p.item]++
					break
				}
			}
		}
	}
	out := make([]float64, len(items))
	for i := range out {
		if cnt[i] > 0 {
			out[i] = sum[i] / float64(cnt[i])
		}
	}
	return out, nil
}

// surprisalProbe is one item text with one extra word masked.
type surprisalProbe struct {
	text string
	word string
	mask int // index of the new mask among the text's masks
}

// surprisalProbes returns up to surprisalWords probes of it, chosen by a
// hash of the item ID and the word position.
func surprisalProbes(it Item) []surprisalProbe {
	fields := strings.Fields(it.Text)
	type cand struct {
		pos int
		h   float64
	}
	var cands []cand
	for i, f := range fields {
		if len([]rune(f)) < 2 || strings.Contains(f, "[MASK]") {
			continue
		}
		letters := true
		for _, r := range f {
			if !unicode.IsLetter(r) {
				letters = false
				break
			}
		}
		if letters {
			cands = append(cands, cand{i, hashUniform(0, "surprisal", it.ID, i)})
		}
	}
	sort.Slice(cands, func(a, b int) bool { return cands[a].h < cands[b].h })
	var out []surprisalProbe
	for _, c := range cands[:min(len(cands), surprisalWords)] {
		mask := 0
		for _, f := range fields[:c.pos] {
			mask += strings.Count(f, "[MASK]")
		}
		f2 := append([]string(nil), fields...)
		f2[c.pos] = "[MASK]"
		out = append(out, surprisalProbe{text: strings.Join(f2, " "), word: fields[c.pos], mask: mask})
	}
	return out
}

var _ Engine = (*MLMEngine)(nil)
