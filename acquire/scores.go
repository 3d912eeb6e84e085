package acquire

import (
	"fmt"
	"math"
)

// Scores are the uncertainty measures of one masked position (or of an item,
// after [Aggregate]). Orientation as in [Candidate]: Margin is the raw
// top1 − top2 probability gap (smaller = more uncertain), the others are
// higher = more uncertain.
type Scores struct {
	LeastConfidence float64 `json:"least_confidence"`
	Margin          float64 `json:"margin"`
	Entropy         float64 `json:"entropy"`
	BALD            float64 `json:"bald"`
}

// probSumTolerance is how far from 1 a probability vector may sum.
const probSumTolerance = 1e-3

// Float is the element type the score helpers accept.
type Float interface{ ~float32 | ~float64 }

// ProbScores computes least confidence, margin and entropy (nats, with
// 0 log 0 = 0) of one probability distribution. It makes one pass and no
// allocations. It fails on an empty vector, a negative, NaN or infinite
// entry, or a sum further than 1e-3 from 1. BALD is left 0.
func ProbScores[T Float](p []T) (Scores, error) {
	if len(p) == 0 {
		return Scores{}, fmt.Errorf("probability scores: empty distribution")
	}
	var top1, top2, sum, plogp float64
	for i, v := range p {
		x := float64(v)
		if !(x >= 0) || math.IsInf(x, 1) {
			return Scores{}, fmt.Errorf("probability scores: entry %d is %v", i, x)
		}
		sum += x
		if x > 0 {
			plogp += x * math.Log(x)
		}
		if x > top1 {
			top1, top2 = x, top1
		} else if x > top2 {
			top2 = x
		}
	}
	if math.Abs(sum-1) > probSumTolerance {
		return Scores{}, fmt.Errorf("probability scores: entries sum to %v, want 1", sum)
	}
	return Scores{LeastConfidence: 1 - top1, Margin: top1 - top2, Entropy: nonNeg(-plogp)}, nil
}

// LogitScores computes the same measures as [ProbScores] from unnormalised
// logits, through a numerically stable softmax (two passes, no
// allocations). Entries of −Inf (forbidden tokens) have probability 0; NaN,
// +Inf or all −Inf are errors.
func LogitScores[T Float](logits []T) (Scores, error) {
	if len(logits) == 0 {
		return Scores{}, fmt.Errorf("logit scores: empty logits")
	}
	m := math.Inf(-1)
	for i, v := range logits {
		x := float64(v)
		if math.IsNaN(x) || math.IsInf(x, 1) {
			return Scores{}, fmt.Errorf("logit scores: entry %d is %v", i, x)
		}
		if x > m {
			m = x
		}
	}
	if math.IsInf(m, -1) {
		return Scores{}, fmt.Errorf("logit scores: every logit is -Inf")
	}
	// z = Σ e^(l−m), s = Σ e^(l−m)·(l−m); H = ln z − s/z.
	var z, s float64
	second := math.Inf(-1)
	seenTop := false
	for _, v := range logits {
		d := float64(v) - m
		if math.IsInf(d, -1) {
			continue
		}
		if d == 0 && !seenTop {
			seenTop = true
		} else if d > second {
			second = d
		}
		e := math.Exp(d)
		z += e
		s += e * d
	}
	p1 := 1 / z
	p2 := math.Exp(second) / z // 0 when there is no second entry
	return Scores{LeastConfidence: 1 - p1, Margin: p1 - p2, Entropy: nonNeg(math.Log(z) - s/z)}, nil
}

// TopKScores computes the measures from the k largest entries only, for
// when the full distribution never leaves the device. top holds the k
// largest weights in any order; total is the sum of all vocab weights (1 for
// probabilities, the softmax partition sum for exponentiated logits). Least
// confidence and margin are exact. The entropy spreads the probability mass
// outside top evenly over the other vocab − k tokens: exact when that rest is
// uniform and an upper bound of the true entropy otherwise. It needs k ≥ 2
// (or k = vocab) and fails when the top mass exceeds total by more than
// 1e-3 relative.
func TopKScores[T Float](top []T, total float64, vocab int) (Scores, error) {
	k := len(top)
	if k == 0 || vocab < k {
		return Scores{}, fmt.Errorf("top-k scores: %d entries for a vocabulary of %d", k, vocab)
	}
	if k < 2 && vocab > 1 {
		return Scores{}, fmt.Errorf("top-k scores: need at least 2 entries for the margin, got %d", k)
	}
	if !(total > 0) || math.IsInf(total, 1) {
		return Scores{}, fmt.Errorf("top-k scores: total %v must be positive and finite", total)
	}
	var top1, top2, mass, plogp float64
	for i, v := range top {
		x := float64(v)
		if !(x >= 0) || math.IsInf(x, 1) {
			return Scores{}, fmt.Errorf("top-k scores: entry %d is %v", i, x)
		}
		p := x / total
		mass += p
		if p > 0 {
			plogp += p * math.Log(p)
		}
		if p > top1 {
			top1, top2 = p, top1
		} else if p > top2 {
			top2 = p
		}
	}
	rest := 1 - mass
	if rest < -probSumTolerance {
		return Scores{}, fmt.Errorf("top-k scores: top entries hold %v of the total, more than all of it", mass)
	}
	if rest > 0 && vocab > k {
		plogp += rest * math.Log(rest/float64(vocab-k))
	}
	return Scores{LeastConfidence: 1 - top1, Margin: top1 - top2, Entropy: nonNeg(-plogp)}, nil
}

// BALDScore computes the BALD mutual information H(mean p) − mean H(p) of S
// MC-dropout samples of one distribution (each a probability vector of the
// same length), in nats, without allocating. It fails on fewer than one
// sample, unequal lengths, or entries that are negative, NaN or infinite.
func BALDScore[T Float](samples [][]T) (float64, error) {
	if len(samples) == 0 {
		return 0, fmt.Errorf("bald: no samples")
	}
	n := len(samples[0])
	if n == 0 {
		return 0, fmt.Errorf("bald: empty distribution")
	}
	for s, p := range samples {
		if len(p) != n {
			return 0, fmt.Errorf("bald: sample %d has %d entries, sample 0 has %d", s, len(p), n)
		}
	}
	inv := 1 / float64(len(samples))
	var hMean, sumH float64 // −Σ m ln m and Σ_s Σ_i p ln p
	for i := 0; i < n; i++ {
		var m float64
		for s, p := range samples {
			x := float64(p[i])
			if !(x >= 0) || math.IsInf(x, 1) {
				return 0, fmt.Errorf("bald: sample %d entry %d is %v", s, i, x)
			}
			if x > 0 {
				sumH += x * math.Log(x)
				m += x
			}
		}
		m *= inv
		if m > 0 {
			hMean -= m * math.Log(m)
		}
	}
	return nonNeg(hMean + sumH*inv), nil
}

// Aggregation says how the scores of an item's masks combine into one.
type Aggregation int

// The aggregations over an item's masks.
const (
	// AggregateMean averages every measure over the masks.
	AggregateMean Aggregation = iota + 1
	// AggregateMax keeps the most uncertain mask per measure: the largest
	// least confidence, entropy and BALD, the smallest margin.
	AggregateMax
)

// String returns "mean" or "max".
func (a Aggregation) String() string {
	switch a {
	case AggregateMean:
		return "mean"
	case AggregateMax:
		return "max"
	}
	return fmt.Sprintf("Aggregation(%d)", int(a))
}

// ParseAggregation returns the aggregation named "mean" or "max".
func ParseAggregation(name string) (Aggregation, error) {
	switch name {
	case "mean":
		return AggregateMean, nil
	case "max":
		return AggregateMax, nil
	}
	return 0, fmt.Errorf("unknown aggregation %q (valid: mean, max)", name)
}

// Aggregate combines the scores of an item's masks. It fails on no masks,
// an unknown aggregation, or a NaN score.
func Aggregate(perMask []Scores, agg Aggregation) (Scores, error) {
	if len(perMask) == 0 {
		return Scores{}, fmt.Errorf("aggregate: no masks")
	}
	if agg != AggregateMean && agg != AggregateMax {
		return Scores{}, fmt.Errorf("aggregate: unknown aggregation %v", agg)
	}
	out := perMask[0]
	for i, s := range perMask {
		if math.IsNaN(s.LeastConfidence) || math.IsNaN(s.Margin) || math.IsNaN(s.Entropy) || math.IsNaN(s.BALD) {
			return Scores{}, fmt.Errorf("aggregate: mask %d has a NaN score: %+v", i, s)
		}
		if i == 0 {
			continue
		}
		if agg == AggregateMean {
			out.LeastConfidence += s.LeastConfidence
			out.Margin += s.Margin
			out.Entropy += s.Entropy
			out.BALD += s.BALD
			continue
		}
		out.LeastConfidence = math.Max(out.LeastConfidence, s.LeastConfidence)
		out.Margin = math.Min(out.Margin, s.Margin)
		out.Entropy = math.Max(out.Entropy, s.Entropy)
		out.BALD = math.Max(out.BALD, s.BALD)
	}
	if agg == AggregateMean {
		n := float64(len(perMask))
		out.LeastConfidence /= n
		out.Margin /= n
		out.Entropy /= n
		out.BALD /= n
	}
	return out, nil
}

// nonNeg clamps rounding residue below zero to zero.
func nonNeg(x float64) float64 {
	if x < 0 {
		return 0
	}
	return x
}
