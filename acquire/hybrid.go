package acquire

import (
	"context"
	"fmt"
)

// DefaultHybridFactor is the default ratio of the uncertainty shortlist to
// the batch size in [Hybrid].
const DefaultHybridFactor = 10

// Hybrid shortlists the Factor·k most uncertain candidates by one measure,
// then picks k of them by k-center greedy on the embeddings (labelled
// embeddings are initial centres; without them the most uncertain item is
// the first centre). The batch is thus uncertain and free of near
// duplicates. Selection.Score is the item's uncertainty (as
// [Candidate.Uncertainty]); the Rank is the k-center order.
//
// Cost: O(n log(Factor·k)) for the shortlist plus O(Factor·k·(m + k)·d) for
// k-center greedy.
type Hybrid struct {
	// By is the uncertainty measure of the shortlist; zero means Entropy.
	By Measure
	// Factor is the shortlist size divided by k; zero means DefaultHybridFactor.
	Factor int
	// Metric is the embedding distance; zero means Cosine.
	Metric Metric
}

func (h Hybrid) norm() Hybrid {
	if h.By == 0 {
		h.By = Entropy
	}
	if h.Factor <= 0 {
		h.Factor = DefaultHybridFactor
	}
	if h.Metric == 0 {
		h.Metric = Cosine
	}
	return h
}

// Name returns "hybrid", with parameters when they are not the defaults.
func (h Hybrid) Name() string {
	h = h.norm()
	if h.By == Entropy && h.Factor == DefaultHybridFactor && h.Metric == Cosine {
		return "hybrid"
	}
	return fmt.Sprintf("hybrid(by=%s,factor=%d,metric=%s)", h.By, h.Factor, h.Metric)
}

// Select implements [Strategy].
func (h Hybrid) Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error) {
	h = h.norm()
	if _, ok := measureNames[h.By]; !ok {
		return nil, fmt.Errorf("hybrid: unknown measure %v", h.By)
	}
	if h.Metric != Cosine && h.Metric != L2 {
		return nil, fmt.Errorf("hybrid: unknown metric %v", h.Metric)
	}
	idx, err := eligible(ctx, cands, k, opts, requirements{measures: []Measure{h.By}, embedding: true})
	if err != nil {
		return nil, fmt.Errorf("hybrid: %w", err)
	}
	if len(idx) == 0 {
		return []Selection{}, nil
	}
	n := k * h.Factor
	if n/h.Factor != k { // overflow
		n = len(idx)
	}
	short := rankBy(cands, idx, n, h.By)
	sub := make([]int, len(short))
	for i, e := range short {
		sub[i] = e.idx
	}
	picks, err := greedy(ctx, cands, sub, k, 0, opts.Labelled, h.Metric)
	if err != nil {
		return nil, fmt.Errorf("hybrid: %w", err)
	}
	out := make([]Selection, len(picks))
	for r, p := range picks {
		j := sub[p.pos]
		c := &cands[j]
		reason := fmt.Sprintf("hybrid: %s=%.6g (uncertainty rank %d of %d), %s distance %.4g to nearest centre",
			h.By, c.Raw(h.By), p.pos+1, len(sub), h.Metric, p.dist)
		if p.seed {
			reason = fmt.Sprintf("hybrid: %s=%.6g (most uncertain, first centre)", h.By, c.Raw(h.By))
		}
		out[r] = Selection{ID: c.ID, Index: j, Score: c.Uncertainty(h.By), Rank: r + 1, Reason: reason}
	}
	return out, nil
}
