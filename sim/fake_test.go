package sim

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/clozeloop/clozeloop/acquire"
)

// fakeEngine is a deterministic stand-in for the model: its accuracy grows
// with the number of distinct correctly answered items trained on, weighted
// by a per-item "value" that the fake's uncertainty reports. Uncertainty
// sampling beats random on it by construction: the fake checks plumbing
// (scores reach the strategy, results reach the summary), not whether a
// strategy is any good.
type fakeEngine struct {
	gold map[string][]string

	mu      sync.Mutex
	scored  [][]string // item IDs of every Score call, for the tests
	answers [][]string // ScoreOptions.Answers of every Score call
	replays []int      // replay texts of every FineTune call
	starts  int
}

func (e *fakeEngine) Start(ctx context.Context) (Model, error) {
	e.mu.Lock()
	e.starts++
	e.mu.Unlock()
	return &fakeModel{e: e, trained: map[string]bool{}}, nil
}

type fakeModel struct {
	e       *fakeEngine
	trained map[string]bool
	closed  bool
}

// value is the item's worth to the fake model, in [0, 1).
func value(id string) float64 { return hashUniform(99, "value", id, 0) }

func (m *fakeModel) Score(ctx context.Context, items []Item, opts ScoreOptions) ([]acquire.Candidate, error) {
	if m.closed {
		return nil, fmt.Errorf("fake: closed")
	}
	ids := make([]string, len(items))
	out := make([]acquire.Candidate, len(items))
	for i, it := range items {
		ids[i] = it.ID
		v := value(it.ID)
		c := acquire.Candidate{ID: it.ID, LeastConfidence: v, Margin: 1 - v, Entropy: 3 * v}
		if opts.MCDropout > 0 {
			c.BALD = v / 2
		}
		if opts.Embeddings {
			c.Embedding = []float32{float32(math.Cos(7 * v)), float32(math.Sin(7 * v)), float32(v)}
		}
		out[i] = c
	}
	m.e.mu.Lock()
	m.e.scored = append(m.e.scored, ids)
	m.e.answers = append(m.e.answers, opts.Answers)
	m.e.mu.Unlock()
	return out, nil
}

func (m *fakeModel) Surprisal(ctx context.Context, items []Item) ([]float64, error) {
	out := make([]float64, len(items))
	for i, it := range items {
		out[i] = hashUniform(5, "surprisal", it.ID, 0)
	}
	return out, nil
}

func (m *fakeModel) FineTune(ctx context.Context, examples []Example, replay []string, opts FineTuneOptions) (FineTuneStats, error) {
	m.e.mu.Lock()
	m.e.replays = append(m.e.replays, len(replay))
	m.e.mu.Unlock()
	for _, ex := range examples {
		g := m.e.gold[ex.ID]
		ok := len(g) == len(ex.Answers)
		for i := range g {
			ok = ok && g[i] == ex.Answers[i]
		}
		if ok {
			m.trained[ex.ID] = true
		}
	}
	return FineTuneStats{Steps: len(examples), Trained: len(examples), FinalLoss: 1 / float64(1+len(m.trained))}, nil
}

func (m *fakeModel) Evaluate(ctx context.Context, items []EvalItem) (Accuracy, error) {
	ids := make([]string, 0, len(m.trained))
	for id := range m.trained {
		ids = append(ids, id)
	}
	sort.Strings(ids) // a fixed order keeps the float sum reproducible
	var s float64
	for _, id := range ids {
		s += value(id)
	}
	top1 := math.Min(1, 0.1+0.01*s)
	return Accuracy{Top1: top1, Top5: math.Min(1, top1+0.2), MRR: math.Min(1, top1+0.1), NLL: 5 - top1, Masks: len(items)}, nil
}

// AnswerPieces counts one piece per three letters, rounded up.
func (m *fakeModel) AnswerPieces(text string, answers []string) []int {
	out := make([]int, len(answers))
	for i, a := range answers {
		out[i] = (len(a) + 2) / 3
	}
	return out
}

func (m *fakeModel) Close() error {
	m.closed = true
	return nil
}

// fakeData returns a pool of n one-mask items with distinct gold words
// drawn from a small vocabulary, and 10 eval items.
func fakeData(n int) *Data {
	d := &Data{Gold: map[string][]string{}}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("item%04d", i)
		d.Pool = append(d.Pool, Item{ID: id, Text: fmt.Sprintf("sentence %d has a [MASK] here", i)})
		d.Gold[id] = []string{fmt.Sprintf("w%d", i%37)}
	}
	for i := 0; i < 10; i++ {
		d.Eval = append(d.Eval, EvalItem{ID: fmt.Sprintf("e%d", i), Text: "the [MASK] ran", Gold: []string{"dog"}})
	}
	return d
}
