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
	// WarmupRatio is the share of fine-tune steps spent warming up the
	// learning rate (default 0.1; negative for none).
	WarmupRatio float64
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
		BatchSize: x.e.BatchSize, Seed: uint64(opts.Seed), TopK: 2,
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

// FineTune implements Model. When no example can be trained on (every
// answer maps to the unknown token, say) the model is left unchanged and
// the examples are reported as skipped.
func (x *mlmModel) FineTune(ctx context.Context, examples []Example, opts FineTuneOptions) (FineTuneStats, error) {
	ex := make([]mlm.Example, len(examples))
	for i, e := range examples {
		ex[i] = mlm.Example{Text: e.Text, Answers: e.Answers}
	}
	warm := x.e.WarmupRatio
	if warm == 0 {
		warm = 0.1
	}
	res, err := x.m.FineTune(ctx, ex, nil, mlm.FineTuneOptions{
		Epochs: opts.Epochs, MaxSteps: opts.Steps, BatchSize: opts.BatchSize, LR: opts.LR,
		WarmupRatio: max(warm, 0), Seed: uint64(opts.Seed),
	}, nil)
	st := FineTuneStats{Steps: res.Steps, Trained: res.Trained, Skipped: len(res.Skipped), FinalLoss: res.FinalLoss}
	if errors.Is(err, mlm.ErrNoExamples) {
		return st, nil
	}
	return st, err
}

// Evaluate implements Model: a mask counts as correct at top-k when its
// gold word is a single vocabulary token (after the tokenizer's
// normalisation) among the model's k best predictions. Gold words that
// split into several word pieces, or map to the unknown token, can never
// be predicted in one token and count as wrong; so do the masks of items
// the model cannot read.
func (x *mlmModel) Evaluate(ctx context.Context, items []EvalItem) (Accuracy, error) {
	si := make([]mlm.ScoreItem, len(items))
	for i, it := range items {
		si[i] = mlm.ScoreItem{ID: it.ID, Text: it.Text}
	}
	res, err := x.m.Score(ctx, si, mlm.ScoreOptions{TopK: 5, BatchSize: x.e.BatchSize}, nil)
	if err != nil {
		return Accuracy{}, err
	}
	tok := x.m.Tokenizer()
	var acc Accuracy
	var top1, top5 int
	for i, it := range items {
		acc.Masks += len(it.Gold)
		r := res[i]
		if r.Err != "" {
			continue
		}
		for j, g := range it.Gold {
			if j >= len(r.Suggestions) {
				break
			}
			p, err := tok.WordPieces(g)
			if err != nil || p.Unknown || len(p.IDs) != 1 {
				continue
			}
			for k, s := range r.Suggestions[j] {
				if s.ID == p.IDs[0] {
					if k == 0 {
						top1++
					}
					top5++
					break
				}
			}
		}
	}
	if acc.Masks > 0 {
		acc.Top1 = float64(top1) / float64(acc.Masks)
		acc.Top5 = float64(top5) / float64(acc.Masks)
	}
	return acc, nil
}

// surprisalWords is the number of words per item whose surprisal is
// measured.
const surprisalWords = 3

// surprisalBatch is the number of items per FillMask call.
const surprisalBatch = 32

// Surprisal implements Model, ALPS-style: in each item, up to three words
// (letters only, chosen by a fixed hash) are masked one at a time, and the
// item's surprisal is the mean −ln p of the original word's first word
// piece at its mask under the model. An item with no such word, or one the
// model cannot read, gets 0.
func (x *mlmModel) Surprisal(ctx context.Context, items []Item) ([]float64, error) {
	tok := x.m.Tokenizer()
	type probe struct {
		item, mask int
		text       string
		target     string
		id         int
	}
	var probes []probe
	for i, it := range items {
		for _, pr := range surprisalProbes(it) {
			p, err := tok.WordPieces(pr.word)
			if err != nil || p.Unknown || len(p.IDs) == 0 {
				continue
			}
			probes = append(probes, probe{item: i, mask: pr.mask, text: pr.text, target: pr.word, id: p.IDs[0]})
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
