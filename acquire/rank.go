package acquire

import (
	"context"
	"fmt"
)

// Random selects uniformly at random, the baseline. Each candidate's random
// score is a hash of (SelectOptions.Seed, ID), so the batch depends only on
// the seed and the set of candidates, not on their order.
type Random struct{}

// Name returns "random".
func (Random) Name() string { return "random" }

// Select implements [Strategy].
func (Random) Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error) {
	idx, err := eligible(ctx, cands, k, opts, requirements{})
	if err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	top := topEntries(len(idx), k, func(i int) entry {
		j := idx[i]
		return entry{score: hashUniform(opts.Seed, cands[j].ID), id: cands[j].ID, idx: j}
	})
	return selections(top, func(e entry) string { return fmt.Sprintf("random (seed %d)", opts.Seed) }), nil
}

// Uncertainty selects the candidates with the highest
// [Candidate.Uncertainty] for one measure: least-confidence, margin (smallest
// top1 − top2 gap first), entropy, bald, or surprisal (cold-start seeding:
// the items the pretrained model finds most surprising). Ties are broken by
// ID.
type Uncertainty struct {
	// By is the measure ranked by.
	By Measure
}

// NewUncertainty returns the strategy ranking by m.
func NewUncertainty(m Measure) Uncertainty { return Uncertainty{By: m} }

// Name returns the measure's name.
func (u Uncertainty) Name() string { return u.By.String() }

// Select implements [Strategy].
func (u Uncertainty) Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error) {
	if _, ok := measureNames[u.By]; !ok {
		return nil, fmt.Errorf("uncertainty strategy: unknown measure %v", u.By)
	}
	idx, err := eligible(ctx, cands, k, opts, requirements{measures: []Measure{u.By}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.By, err)
	}
	top := rankBy(cands, idx, k, u.By)
	return selections(top, func(e entry) string {
		return fmt.Sprintf("%s=%.6g", u.By, cands[e.idx].Raw(u.By))
	}), nil
}

// rankBy returns the k most uncertain of cands[idx] by m, best first.
func rankBy(cands []Candidate, idx []int, k int, m Measure) []entry {
	return topEntries(len(idx), k, func(i int) entry {
		j := idx[i]
		return entry{score: cands[j].Uncertainty(m), id: cands[j].ID, idx: j}
	})
}

// selections turns ranked entries into Selections with 1-based ranks.
func selections(top []entry, reason func(entry) string) []Selection {
	out := make([]Selection, len(top))
	for i, e := range top {
		out[i] = Selection{ID: e.id, Index: e.idx, Score: e.score, Rank: i + 1, Reason: reason(e)}
	}
	return out
}
