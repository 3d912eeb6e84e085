package acquire

import (
	"context"
	"fmt"
	"math"
	"strconv"
)

// Density is information density (Settles and Craven, 2008): uncertainty
// weighted by how representative an item is,
//
//	score = Uncertainty(By) · sim^Beta,
//	sim   = max(0, mean cosine similarity of the item's embedding to a reference set),
//
// so that an uncertain outlier (a near context-free fragment, an item of
// another domain) ranks below an equally uncertain item like many others.
// The reference set is the eligible candidates themselves (the pool or the
// pool sample being scored) or, with Target, the embeddings in
// SelectOptions.Target (a sample of what the user wants the model to learn,
// e.g. items like the evaluation set's): the target-aware variant, for
// pools that are mostly off-target.
//
// The mean cosine similarity to a set is the dot product of the item's unit
// embedding with the mean of the set's unit embeddings ([UnitCentroid],
// [CentroidSimilarity]), so the cost is O(n·d) for n candidates of
// dimension d, O(d) extra memory, plus a top-k heap. Ties are broken by ID.
// Selection.Score is the density-weighted score.
//
// With Sample set, the uncertainty term is left out and the batch is a
// seeded weighted random sample without replacement, each item drawn with
// probability proportional to sim^Beta (Efraimidis and Spirakis, 2006):
// random sampling steered towards the reference set, for when uncertainty
// buys the wrong items.
type Density struct {
	// By is the uncertainty measure; zero means Entropy. It is ignored
	// when Sample is set.
	By Measure
	// Sample draws a weighted random sample instead of ranking by
	// uncertainty ("by=random" in a spec).
	Sample bool
	// Beta weighs the similarity term; zero means 1.
	Beta float64
	// Target takes the similarity to SelectOptions.Target instead of to
	// the candidates.
	Target bool
}

func (d Density) norm() Density {
	if d.By == 0 {
		d.By = Entropy
	}
	if d.Beta == 0 {
		d.Beta = 1
	}
	return d
}

// Name returns "density" or "target", with parameters when they are not
// the defaults (entropy, beta 1).
func (d Density) Name() string {
	d = d.norm()
	name := "density"
	if d.Target {
		name = "target"
	}
	if !d.Sample && d.By == Entropy && d.Beta == 1 {
		return name
	}
	by := d.By.String()
	if d.Sample {
		by = "random"
	}
	return fmt.Sprintf("%s(by=%s,beta=%s)", name, by, strconv.FormatFloat(d.Beta, 'g', -1, 64))
}

// Select implements [Strategy]. It fails when Target is set and
// SelectOptions.Target is empty or its embeddings do not match the
// candidates'.
func (d Density) Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error) {
	d = d.norm()
	name := d.Name()
	req := requirements{measures: []Measure{d.By}, embedding: true}
	if d.Sample {
		req.measures = nil
	} else if _, ok := measureNames[d.By]; !ok {
		return nil, fmt.Errorf("%s: unknown measure %v", name, d.By)
	}
	if !(d.Beta > 0) || math.IsInf(d.Beta, 0) {
		return nil, fmt.Errorf("%s: beta %v must be a positive number", name, d.Beta)
	}
	idx, err := eligible(ctx, cands, k, opts, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(idx) == 0 {
		return []Selection{}, nil
	}
	var centroid []float64
	if d.Target {
		if len(opts.Target) == 0 {
			return nil, fmt.Errorf("%s: no target embeddings (the strategy needs a target sample)", name)
		}
		dim := len(cands[idx[0]].Embedding)
		for j, e := range opts.Target {
			if len(e) != dim {
				return nil, fmt.Errorf("%s: target embedding %d has %d dimensions, candidates have %d", name, j, len(e), dim)
			}
			if err := checkFinite(e); err != nil {
				return nil, fmt.Errorf("%s: target embedding %d: %w", name, j, err)
			}
		}
		centroid = UnitCentroid(opts.Target)
	} else {
		ref := make([][]float32, len(idx))
		for i, j := range idx {
			ref[i] = cands[j].Embedding
		}
		centroid = UnitCentroid(ref)
	}
	sims := make([]float64, len(cands))
	for _, j := range idx {
		sims[j] = CentroidSimilarity(cands[j].Embedding, centroid)
	}
	ref := "pool"
	if d.Target {
		ref = "target"
	}
	if d.Sample {
		top := weightedSample(cands, idx, sims, k, d.Beta, opts.Seed)
		return selections(top, func(e entry) string {
			return fmt.Sprintf("%s: weighted random draw (seed %d), weight (%s similarity %.4f)^%g", name, opts.Seed, ref, sims[e.idx], d.Beta)
		}), nil
	}
	top := topEntries(len(idx), k, func(i int) entry {
		j := idx[i]
		return entry{score: DensityScore(cands[j].Uncertainty(d.By), sims[j], d.Beta), id: cands[j].ID, idx: j}
	})
	return selections(top, func(e entry) string {
		return fmt.Sprintf("%s: %s=%.6g × (%s similarity %.4f)^%g", name, d.By, cands[e.idx].Raw(d.By), ref, sims[e.idx], d.Beta)
	}), nil
}

// weightedSample draws k of cands[idx] without replacement, each with
// probability proportional to max(0, sims[j])^beta, by the keys of
// WeightedDrawKey with the similarities scaled so that the largest weight
// is 1 (the draw is the same; the keys stay small). Items of weight 0 come
// last, by ID. Selection.Score is the key.
func weightedSample(cands []Candidate, idx []int, sims []float64, k int, beta float64, seed int64) []entry {
	maxSim := 0.0
	for _, j := range idx {
		maxSim = math.Max(maxSim, sims[j])
	}
	return topEntries(len(idx), k, func(i int) entry {
		j := idx[i]
		key := -math.MaxFloat64
		if maxSim > 0 {
			key = WeightedDrawKey(seed, cands[j].ID, sims[j]/maxSim, beta)
		}
		return entry{score: key, id: cands[j].ID, idx: j}
	})
}

// WeightedDrawKey is item id's key in a seeded random draw without
// replacement in which each item is drawn with probability proportional
// to max(0, sim)^beta (Efraimidis and Spirakis): the items with the k
// largest keys are such a draw of k. The key is log(u)/w for the weight w
// and a uniform u in (0, 1] that depends only on seed and id, taken in log
// space, beta·log(sim) − log(−log u), which ranks the same but neither
// underflows nor ties for large beta or small similarities. Keys of
// different pools compare, so the shards of a pool can each keep their
// largest and the merge of those is the draw over the whole pool. An item
// of weight 0 (sim ≤ 0) gets −MaxFloat64, below every other key.
func WeightedDrawKey(seed int64, id string, sim, beta float64) float64 {
	if !(sim > 0) || math.IsInf(sim, 0) || !(beta > 0) || math.IsInf(beta, 0) {
		return -math.MaxFloat64
	}
	return LogWeightedDrawKey(seed, id, beta*math.Log(sim))
}

// LogWeightedDrawKey is WeightedDrawKey for an item of weight exp(logw):
// logw − log(−log u), clamped to ±MaxFloat64. Keys of both functions
// compare.
func LogWeightedDrawKey(seed int64, id string, logw float64) float64 {
	if math.IsNaN(logw) {
		return -math.MaxFloat64
	}
	e := -math.Log(1 - hashUniform(seed, id)) // Exp(1), > 0 since u < 1
	return math.Max(-math.MaxFloat64, math.Min(math.MaxFloat64, logw-math.Log(e)))
}

// TargetDrawBeta is the exponent of the workflow's "target-random"
// strategy: a random draw weighted by similarity^16 to the target sample,
// Density{Target: true, Sample: true, Beta: 16} ("target(by=random,beta=16)"
// in the simulation), which bought 54–57% target items from a pool with
// 10% of them and led random sampling at 320 labels in top-5 in 10 of 10
// seeds and in top-1 in 8 of 10 (README).
const TargetDrawBeta = 16

// UnitCentroid returns the mean of the unit vectors of vecs (zero vectors
// count as zero): the vector whose dot product with a unit vector u is the
// mean cosine similarity of u to vecs. It is nil for no vectors.
func UnitCentroid(vecs [][]float32) []float64 {
	if len(vecs) == 0 {
		return nil
	}
	var c []float64
	for _, v := range vecs {
		if c == nil {
			c = make([]float64, len(v))
		}
		AddUnit(c, v)
	}
	for i := range c {
		c[i] /= float64(len(vecs))
	}
	return c
}

// AddUnit adds the unit vector of v to sum (nothing for a zero vector), to
// build a centroid a vector at a time; sum and v must have the same length.
func AddUnit(sum []float64, v []float32) {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		return
	}
	n = math.Sqrt(n)
	for i, x := range v {
		sum[i] += float64(x) / n
	}
}

// CentroidSimilarity returns the mean cosine similarity of v to the
// vectors whose UnitCentroid is centroid: v's unit vector · centroid, in
// [−1, 1]; 0 for a zero v or a length mismatch.
func CentroidSimilarity(v []float32, centroid []float64) float64 {
	if len(v) != len(centroid) {
		return 0
	}
	var dot, n float64
	for i, x := range v {
		dot += float64(x) * centroid[i]
		n += float64(x) * float64(x)
	}
	if n == 0 {
		return 0
	}
	return dot / math.Sqrt(n)
}

// DensityScore is the information-density score u · max(0, sim)^beta of an
// item of uncertainty u (≥ 0, oriented as [Candidate.Uncertainty]) and mean
// similarity sim to the reference set.
func DensityScore(u, sim, beta float64) float64 {
	if sim <= 0 {
		return 0
	}
	return u * math.Pow(sim, beta)
}
