package acquire

import (
	"context"
	"fmt"
	"math"
)

// A Candidate is one pool item with the scores the model computed for it.
// See the package documentation for the orientation of each measure.
type Candidate struct {
	// ID identifies the item; it must be non-empty and unique in a call.
	ID string
	// LeastConfidence is 1 − p(top1), aggregated over the item's masks.
	LeastConfidence float64
	// Margin is p(top1) − p(top2), aggregated over the item's masks;
	// smaller means more uncertain.
	Margin float64
	// Entropy is the predictive entropy in nats, aggregated over the masks.
	Entropy float64
	// BALD is the MC-dropout mutual information, aggregated over the masks.
	BALD float64
	// Embedding is the hidden state at the mask position(s), used by the
	// diversity strategies (kcenter, hybrid). All embeddings in a call must
	// have the same length.
	Embedding []float32
	// Surprisal is the pretrained MLM's surprisal of the item, used for
	// cold-start seeding (ALPS-style).
	Surprisal float64
	// Domain is the evidence that the item's text comes from the target
	// (the items the model should learn) rather than from the pool at
	// large: the log-likelihood ratio of its words under the two
	// (dataset.DomainScorer.Evidence), used by the [Domain] strategy.
	Domain float64
}

// Measure names one per-item score of a [Candidate].
type Measure int

// The measures a strategy can rank by.
const (
	LeastConfidence Measure = iota + 1
	Margin
	Entropy
	BALD
	Surprisal
)

var measureNames = map[Measure]string{
	LeastConfidence: "least-confidence",
	Margin:          "margin",
	Entropy:         "entropy",
	BALD:            "bald",
	Surprisal:       "surprisal",
}

// String returns the measure's name as [ParseMeasure] accepts it.
func (m Measure) String() string {
	if s, ok := measureNames[m]; ok {
		return s
	}
	return fmt.Sprintf("Measure(%d)", int(m))
}

// ParseMeasure returns the measure with the given name: least-confidence
// (or lc), margin, entropy, bald or surprisal.
func ParseMeasure(name string) (Measure, error) {
	if name == "lc" {
		return LeastConfidence, nil
	}
	for m, s := range measureNames {
		if s == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown measure %q (valid: least-confidence, lc, margin, entropy, bald, surprisal)", name)
}

// Raw returns c's value for m as stored in the candidate.
func (c *Candidate) Raw(m Measure) float64 {
	switch m {
	case LeastConfidence:
		return c.LeastConfidence
	case Margin:
		return c.Margin
	case Entropy:
		return c.Entropy
	case BALD:
		return c.BALD
	case Surprisal:
		return c.Surprisal
	}
	return math.NaN()
}

// Uncertainty returns c's value for m oriented so that higher means more
// informative (select first): the raw value for every measure except Margin,
// for which it is 1 − Margin.
func (c *Candidate) Uncertainty(m Measure) float64 {
	if m == Margin {
		return 1 - c.Margin
	}
	return c.Raw(m)
}

// A Selection is one chosen item.
type Selection struct {
	// ID is the candidate's ID.
	ID string `json:"id"`
	// Index is the candidate's position in the slice given to Select.
	Index int `json:"index"`
	// Score is the value the strategy ranked by, oriented so that higher
	// was preferred (for kcenter: the distance to the nearest centre when
	// the item was picked).
	Score float64 `json:"score"`
	// Rank is the 1-based position in the batch: 1 was chosen first.
	Rank int `json:"rank"`
	// Reason says in words why the item was chosen.
	Reason string `json:"reason"`
}

// IDSet is a set of item IDs.
type IDSet map[string]struct{}

// NewIDSet returns a set holding ids.
func NewIDSet(ids ...string) IDSet {
	s := make(IDSet, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

// Has reports whether id is in s; a nil set holds nothing.
func (s IDSet) Has(id string) bool {
	_, ok := s[id]
	return ok
}

// SelectOptions are the inputs of a selection besides the candidates.
type SelectOptions struct {
	// Seed drives every random choice (random strategy, kcenter sampling).
	Seed int64
	// Exclude holds IDs that must not be selected: already labelled or
	// in flight with annotators.
	Exclude IDSet
	// Labelled holds the embeddings of already labelled items; the
	// diversity strategies use them as initial centres. Their length must
	// match the candidates' embeddings.
	Labelled [][]float32
	// Target holds embeddings of a target sample (items like those the
	// model should learn) for the target-aware density strategy
	// ([Density] with Target).
	Target [][]float32
}

// requirements says which candidate fields a strategy reads.
type requirements struct {
	measures  []Measure
	embedding bool
}

// eligible validates the inputs of a selection and returns the indices of
// the candidates that are not excluded, in input order.
func eligible(ctx context.Context, cands []Candidate, k int, opts SelectOptions, req requirements) ([]int, error) {
	if k <= 0 {
		return nil, fmt.Errorf("batch size k = %d: must be positive", k)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	seen := make(map[string]int, len(cands))
	idx := make([]int, 0, len(cands))
	dim := -1
	for i := range cands {
		c := &cands[i]
		if c.ID == "" {
			return nil, fmt.Errorf("candidate %d: empty ID", i)
		}
		if j, dup := seen[c.ID]; dup {
			return nil, fmt.Errorf("candidate %d: duplicate ID %q (also candidate %d)", i, c.ID, j)
		}
		seen[c.ID] = i
		if opts.Exclude.Has(c.ID) {
			continue
		}
		for _, m := range req.measures {
			if v := c.Raw(m); math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("candidate %q: %s is %v", c.ID, m, v)
			}
		}
		if req.embedding {
			if len(c.Embedding) == 0 {
				return nil, fmt.Errorf("candidate %q: no embedding (the strategy needs one)", c.ID)
			}
			if dim < 0 {
				dim = len(c.Embedding)
			} else if len(c.Embedding) != dim {
				return nil, fmt.Errorf("candidate %q: embedding has %d dimensions, others have %d", c.ID, len(c.Embedding), dim)
			}
			if err := checkFinite(c.Embedding); err != nil {
				return nil, fmt.Errorf("candidate %q: embedding: %w", c.ID, err)
			}
		}
		idx = append(idx, i)
	}
	if req.embedding {
		for j, e := range opts.Labelled {
			if dim >= 0 && len(e) != dim {
				return nil, fmt.Errorf("labelled embedding %d has %d dimensions, candidates have %d", j, len(e), dim)
			}
			if len(e) == 0 {
				return nil, fmt.Errorf("labelled embedding %d is empty", j)
			}
			if err := checkFinite(e); err != nil {
				return nil, fmt.Errorf("labelled embedding %d: %w", j, err)
			}
		}
	}
	return idx, nil
}

func checkFinite(v []float32) error {
	for i, x := range v {
		if x-x != 0 { // NaN or ±Inf
			return fmt.Errorf("component %d is %v", i, x)
		}
	}
	return nil
}

// splitmix64 is a bijective 64-bit mixer (Steele, Lea and Flood).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashUniform returns a uniform number in [0, 1) determined by seed and id.
func hashUniform(seed int64, id string) float64 {
	h := uint64(14695981039346656037) // FNV-1a 64
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	x := splitmix64(h ^ splitmix64(uint64(seed)))
	return float64(x>>11) / (1 << 53)
}
