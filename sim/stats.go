package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// DefaultBootstrapResamples is the number of bootstrap resamples of a
// confidence interval.
const DefaultBootstrapResamples = 10000

// BootstrapOptions configure the paired comparisons' confidence intervals.
type BootstrapOptions struct {
	// Resamples is the number of resamples (default
	// DefaultBootstrapResamples).
	Resamples int
	// Seed seeds the resampling: the same seed and data give the same
	// interval.
	Seed uint64
}

// BootstrapMeanCI returns a percentile bootstrap confidence interval at the
// given level (0.95 for 95 %) for the mean of x: the mean of resamples
// random resamples of x with replacement, drawn with seed, and the
// (1 − level)/2 and (1 + level)/2 quantiles of those means (nearest rank).
// The interval always lies within [min(x), max(x)]. An empty x gives NaNs.
func BootstrapMeanCI(x []float64, level float64, resamples int, seed uint64) (lo, hi float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	if resamples <= 0 {
		resamples = DefaultBootstrapResamples
	}
	rng := rand.New(rand.NewPCG(seed, 0x626f6f74)) // "boot"
	means := make([]float64, resamples)
	n := len(x)
	for b := range means {
		var s float64
		for range n {
			s += x[rng.IntN(n)]
		}
		means[b] = s / float64(n)
	}
	sort.Float64s(means)
	alpha := (1 - level) / 2
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(resamples))) - 1
		return means[min(max(i, 0), resamples-1)]
	}
	return q(alpha), q(1 - alpha)
}

// SignTestP returns the exact two-sided sign-test p-value of wins against
// losses (ties are left out beforehand): the probability, under a fair coin
// over the n = wins + losses untied pairs, of a split at least as uneven,
// 2 · P(X ≤ min(wins, losses)) for X ~ Binomial(n, 1/2), capped at 1. With
// no untied pair it is 1.
func SignTestP(wins, losses int) float64 {
	n := wins + losses
	if n == 0 {
		return 1
	}
	k := min(wins, losses)
	if n <= 50 {
		// Exact: the binomial coefficients are integers below 2^53.
		var sum, c float64 = 0, 1 // c = C(n, i)
		for i := 0; i <= k; i++ {
			sum += c
			c = c * float64(n-i) / float64(i+1)
		}
		return math.Min(1, math.Ldexp(sum, 1-n))
	}
	// Sum C(n, i) / 2^n for i ≤ k in log space.
	var p float64
	lc, _ := math.Lgamma(float64(n + 1))
	for i := 0; i <= k; i++ {
		li, _ := math.Lgamma(float64(i + 1))
		lr, _ := math.Lgamma(float64(n - i + 1))
		p += math.Exp(lc - li - lr - float64(n)*math.Ln2)
	}
	return math.Min(1, 2*p)
}

// PairedDiff compares one metric of a strategy with random's, seed by seed.
type PairedDiff struct {
	// Seeds are the seeds both strategies ran with; Diffs the strategy's
	// value minus random's for each of them.
	Seeds []int64   `json:"seeds"`
	Diffs []float64 `json:"diffs"`
	// Mean is the mean difference; CILow and CIHigh its 95 % percentile
	// bootstrap confidence interval (BootstrapMeanCI).
	Mean   float64 `json:"mean"`
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
	// Wins, Losses and Ties count the seeds where the strategy was above,
	// below or equal to random; SignP is the two-sided sign-test p-value
	// of Wins against Losses (SignTestP).
	Wins   int     `json:"wins"`
	Losses int     `json:"losses"`
	Ties   int     `json:"ties"`
	SignP  float64 `json:"sign_p"`
}

// Paired computes the PairedDiff of the values a and b (strategy and
// random) of the same seeds: diffs[i] = a[i] − b[i].
func Paired(seeds []int64, a, b []float64, opts BootstrapOptions) (PairedDiff, error) {
	if len(a) != len(b) || len(a) != len(seeds) {
		return PairedDiff{}, fmt.Errorf("paired comparison: %d seeds, %d and %d values", len(seeds), len(a), len(b))
	}
	d := PairedDiff{Seeds: append([]int64(nil), seeds...), Diffs: make([]float64, len(a))}
	for i := range a {
		d.Diffs[i] = a[i] - b[i]
		switch {
		case d.Diffs[i] > 0:
			d.Wins++
		case d.Diffs[i] < 0:
			d.Losses++
		default:
			d.Ties++
		}
	}
	d.Mean = MeanSD(d.Diffs).Mean
	d.CILow, d.CIHigh = BootstrapMeanCI(d.Diffs, 0.95, opts.Resamples, opts.Seed)
	d.SignP = SignTestP(d.Wins, d.Losses)
	return d, nil
}
