package acquire

import (
	"context"
	"fmt"
	"math"
)

// DefaultKCenterCap is the default number of candidates k-center greedy
// works on; larger pools are sampled down to it (see [KCenter]).
const DefaultKCenterCap = 10000

// Metric is the distance between embeddings.
type Metric int

// The distance metrics of the diversity strategies.
const (
	// Cosine is 1 − cos(a, b), in [0, 2].
	Cosine Metric = iota + 1
	// L2 is the Euclidean distance.
	L2
)

// String returns "cosine" or "l2".
func (m Metric) String() string {
	switch m {
	case Cosine:
		return "cosine"
	case L2:
		return "l2"
	}
	return fmt.Sprintf("Metric(%d)", int(m))
}

// ParseMetric returns the metric named "cosine" or "l2".
func ParseMetric(name string) (Metric, error) {
	switch name {
	case "cosine":
		return Cosine, nil
	case "l2":
		return L2, nil
	}
	return 0, fmt.Errorf("unknown metric %q (valid: cosine, l2)", name)
}

// KCenter is k-center greedy (the core-set method of Sener and Savarese):
// it repeatedly picks the candidate farthest from every centre chosen so
// far, starting from the labelled embeddings as centres. Without labelled
// embeddings the first pick is the candidate closest to the pool's centroid.
// Selection.Score is the distance to the nearest centre when the item was
// picked (0 for that first pick). Ties are broken by ID.
//
// Cost is O(c·(m + k)·d) for c candidates, m labelled embeddings and
// dimension d. When more than Cap candidates are eligible, a seeded sample
// of max(Cap, k) of them (the lowest hash of seed and ID, so independent of
// order) is used.
type KCenter struct {
	// Metric is the embedding distance; zero means Cosine.
	Metric Metric
	// Cap bounds the candidates considered; zero means DefaultKCenterCap.
	Cap int
}

// Name returns "kcenter", with parameters when they are not the defaults.
func (kc KCenter) Name() string {
	m, c := kc.norm()
	if m == Cosine && c == DefaultKCenterCap {
		return "kcenter"
	}
	return fmt.Sprintf("kcenter(metric=%s,cap=%d)", m, c)
}

func (kc KCenter) norm() (Metric, int) {
	m, c := kc.Metric, kc.Cap
	if m == 0 {
		m = Cosine
	}
	if c <= 0 {
		c = DefaultKCenterCap
	}
	return m, c
}

// Select implements [Strategy].
func (kc KCenter) Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error) {
	metric, capN := kc.norm()
	if metric != Cosine && metric != L2 {
		return nil, fmt.Errorf("kcenter: unknown metric %v", metric)
	}
	idx, err := eligible(ctx, cands, k, opts, requirements{embedding: true})
	if err != nil {
		return nil, fmt.Errorf("kcenter: %w", err)
	}
	if len(idx) == 0 {
		return []Selection{}, nil
	}
	if limit := max(capN, k); len(idx) > limit {
		sample := topEntries(len(idx), limit, func(i int) entry {
			j := idx[i]
			return entry{score: hashUniform(opts.Seed, cands[j].ID), id: cands[j].ID, idx: j}
		})
		idx = idx[:0]
		for _, e := range sample {
			idx = append(idx, e.idx)
		}
	}
	picks, err := greedy(ctx, cands, idx, k, -1, opts.Labelled, metric)
	if err != nil {
		return nil, fmt.Errorf("kcenter: %w", err)
	}
	out := make([]Selection, len(picks))
	for r, p := range picks {
		c := &cands[idx[p.pos]]
		reason := fmt.Sprintf("kcenter: %s distance %.4g to nearest centre", metric, p.dist)
		if p.seed {
			reason = "kcenter: first centre (closest to the pool centroid)"
		}
		out[r] = Selection{ID: c.ID, Index: idx[p.pos], Score: p.dist, Rank: r + 1, Reason: reason}
	}
	return out, nil
}

// pick is one k-center choice: a position in the candidate subset and its
// distance to the nearest centre at the time (seed: it was the first centre).
type pick struct {
	pos  int
	dist float64
	seed bool
}

// space holds embeddings prepared for a metric: unit vectors for cosine.
type space struct {
	metric Metric
	d      int
	vecs   []float32 // row-major, one row per candidate
}

// prepare copies rows into a space; on failure it returns the failing row.
func prepare(metric Metric, rows [][]float32, d int) (space, int, error) {
	s := space{metric: metric, d: d, vecs: make([]float32, len(rows)*d)}
	for i, r := range rows {
		row := s.vecs[i*d : (i+1)*d]
		copy(row, r)
		if metric != Cosine {
			continue
		}
		var n float64
		for _, x := range row {
			n += float64(x) * float64(x)
		}
		if n == 0 {
			return space{}, i, fmt.Errorf("zero vector has no cosine distance")
		}
		inv := float32(1 / math.Sqrt(n))
		for j := range row {
			row[j] *= inv
		}
	}
	return s, -1, nil
}

func (s *space) row(i int) []float32 { return s.vecs[i*s.d : (i+1)*s.d] }

// dist returns the metric's distance for cosine, and the SQUARED distance
// for L2 (monotone; see real).
func (s *space) dist(a, b []float32) float64 {
	if s.metric == Cosine {
		return math.Max(0, 1-float64(dot(a, b)))
	}
	return float64(sqDist(a, b))
}

// real converts a dist value to the metric's distance.
func (s *space) real(v float64) float64 {
	if s.metric == L2 {
		return math.Sqrt(v)
	}
	return v
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func sqDist(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0, d1, d2, d3 := a[i]-b[i], a[i+1]-b[i+1], a[i+2]-b[i+2], a[i+3]-b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// greedy runs k-center greedy over cands[idx] with the labelled embeddings
// as initial centres. Without labelled centres the first pick is position
// first, or (first < 0) the candidate closest to the centroid. Embeddings
// must already be validated.
func greedy(ctx context.Context, cands []Candidate, idx []int, k, first int, labelled [][]float32, metric Metric) ([]pick, error) {
	n := len(idx)
	d := len(cands[idx[0]].Embedding)
	rows := make([][]float32, n)
	for i, j := range idx {
		rows[i] = cands[j].Embedding
	}
	sp, bad, err := prepare(metric, rows, d)
	if err != nil {
		return nil, fmt.Errorf("candidate %q: embedding: %w", cands[idx[bad]].ID, err)
	}
	cen, bad, err := prepare(metric, labelled, d)
	if err != nil {
		return nil, fmt.Errorf("labelled embedding %d: %w", bad, err)
	}
	minD := make([]float64, n)
	for i := range minD {
		minD[i] = math.Inf(1)
	}
	for c := range labelled {
		if c%16 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		crow := cen.row(c)
		for i := range n {
			if v := sp.dist(sp.row(i), crow); v < minD[i] {
				minD[i] = v
			}
		}
	}
	chosen := make([]bool, n)
	picks := make([]pick, 0, min(k, n))
	add := func(p int, seed bool) {
		chosen[p] = true
		dist := 0.0
		if !seed {
			dist = sp.real(minD[p])
		}
		picks = append(picks, pick{pos: p, dist: dist, seed: seed})
		prow := sp.row(p)
		for i := range n {
			if chosen[i] {
				continue
			}
			if v := sp.dist(sp.row(i), prow); v < minD[i] {
				minD[i] = v
			}
		}
	}
	if len(labelled) == 0 {
		if first < 0 {
			first = closestToCentroid(&sp, n, func(i int) string { return cands[idx[i]].ID })
		}
		add(first, true)
	}
	for len(picks) < k && len(picks) < n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		best := -1
		for i := range n {
			if chosen[i] {
				continue
			}
			if best < 0 || minD[i] > minD[best] || (minD[i] == minD[best] && cands[idx[i]].ID < cands[idx[best]].ID) {
				best = i
			}
		}
		add(best, false)
	}
	return picks, nil
}

// closestToCentroid returns the row closest to the mean of the rows, ties
// broken by ID.
func closestToCentroid(sp *space, n int, id func(int) string) int {
	c := make([]float64, sp.d)
	for i := range n {
		for j, x := range sp.row(i) {
			c[j] += float64(x)
		}
	}
	cent := make([]float32, sp.d)
	var norm float64
	for j := range c {
		c[j] /= float64(n)
		norm += c[j] * c[j]
	}
	for j := range c {
		cent[j] = float32(c[j])
		if sp.metric == Cosine && norm > 0 {
			cent[j] = float32(c[j] / math.Sqrt(norm))
		}
	}
	best, bestD := 0, math.Inf(1)
	for i := range n {
		var v float64
		if sp.metric == Cosine && norm == 0 {
			v = 0 // centroid at the origin: every unit vector is equally close
		} else {
			v = sp.dist(sp.row(i), cent)
		}
		if v < bestD || (v == bestD && id(i) < id(best)) {
			best, bestD = i, v
		}
	}
	return best
}
