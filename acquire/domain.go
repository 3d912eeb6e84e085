package acquire

import (
	"context"
	"fmt"
	"math"
	"strconv"
)

// Domain selects the items whose text is most likely from the target:
// those with the highest Candidate.Domain, the log-likelihood ratio of the
// item's words under a model of a target sample against one of the pool
// (dataset.DomainScorer.Evidence). It uses no model output at all, so it
// is for a pool that is mostly off-target, where what the model is unsure
// of is mostly what the user does not need (see the README's mixed pool).
//
// With Sample set, the batch is instead a seeded weighted random sample
// without replacement in which each item is drawn with probability
// proportional to exp(Beta·Domain) ([LogWeightedDrawKey]). With Beta 1
// that weight is the ratio P_target(text)/P_pool(text), so the draw
// resamples the pool towards the target's distribution (sampling
// importance resampling): a random sample of target-like items rather
// than the most typical ones. Selection.Score is Domain, or the draw key.
// Ties are broken by ID.
type Domain struct {
	// Sample draws a weighted random sample instead of taking the highest
	// evidence ("by=random" in a spec).
	Sample bool
	// Beta scales the evidence of the weighted draw; zero means 1.
	Beta float64
}

// Name returns "domain", or "domain(by=random)" with the beta when it is
// not 1.
func (d Domain) Name() string {
	switch {
	case !d.Sample:
		return "domain"
	case d.Beta == 0 || d.Beta == 1:
		return "domain(by=random)"
	}
	return fmt.Sprintf("domain(by=random,beta=%s)", strconv.FormatFloat(d.Beta, 'g', -1, 64))
}

// Select implements [Strategy]. It fails on a Domain that is not a finite
// number.
func (d Domain) Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error) {
	name := d.Name()
	beta := d.Beta
	if beta == 0 {
		beta = 1
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return nil, fmt.Errorf("%s: beta %v must be a positive number", name, d.Beta)
	}
	idx, err := eligible(ctx, cands, k, opts, requirements{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, j := range idx {
		if v := cands[j].Domain; math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: candidate %q: domain evidence is %v", name, cands[j].ID, v)
		}
	}
	if d.Sample {
		top := topEntries(len(idx), k, func(i int) entry {
			j := idx[i]
			return entry{score: LogWeightedDrawKey(opts.Seed, cands[j].ID, beta*cands[j].Domain), id: cands[j].ID, idx: j}
		})
		return selections(top, func(e entry) string {
			return fmt.Sprintf("%s: weighted random draw (seed %d), weight exp(%g × domain evidence %.3f)", name, opts.Seed, beta, cands[e.idx].Domain)
		}), nil
	}
	top := topEntries(len(idx), k, func(i int) entry {
		j := idx[i]
		return entry{score: cands[j].Domain, id: cands[j].ID, idx: j}
	})
	return selections(top, func(e entry) string {
		return fmt.Sprintf("%s: domain evidence %.3f", name, cands[e.idx].Domain)
	}), nil
}
