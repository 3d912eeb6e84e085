package acquire

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A MixPart is one strategy of a [Mix] with its share of the batch.
type MixPart struct {
	Strategy Strategy
	Weight   float64
}

// Mix splits each batch between strategies by weight, e.g. 80 % entropy and
// 20 % random ("entropy:0.8,random:0.2"). Quotas are k·weight/Σweight
// rounded by largest remainder (ties to the earlier part). Parts select in
// order, each excluding what earlier parts chose, so the batch has no
// duplicates; items chosen by earlier parts count as labelled centres for
// later diversity parts. When a part finds fewer candidates than its quota,
// later parts (then the first part again) fill the gap, so the batch holds
// min(k, eligible) items. Ranks run over the whole batch in part order.
type Mix struct {
	parts []MixPart
}

// NewMix returns a mix of parts. Weights must be positive and finite, and a
// part may not itself be a Mix.
func NewMix(parts ...MixPart) (Mix, error) {
	if len(parts) == 0 {
		return Mix{}, fmt.Errorf("mix: no parts")
	}
	for i, p := range parts {
		if p.Strategy == nil {
			return Mix{}, fmt.Errorf("mix: part %d has no strategy", i)
		}
		if _, nested := p.Strategy.(Mix); nested {
			return Mix{}, fmt.Errorf("mix: part %d is itself a mix", i)
		}
		if !(p.Weight > 0) || math.IsInf(p.Weight, 1) {
			return Mix{}, fmt.Errorf("mix: part %d (%s) has weight %v, want a positive number", i, p.Strategy.Name(), p.Weight)
		}
	}
	return Mix{parts: append([]MixPart(nil), parts...)}, nil
}

// Parts returns the mix's parts.
func (m Mix) Parts() []MixPart { return append([]MixPart(nil), m.parts...) }

// Name returns the spec, e.g. "entropy:0.8,random:0.2".
func (m Mix) Name() string {
	s := make([]string, len(m.parts))
	for i, p := range m.parts {
		s[i] = p.Strategy.Name() + ":" + strconv.FormatFloat(p.Weight, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

// Quotas returns how many of k items each part selects.
func (m Mix) Quotas(k int) []int {
	q := make([]int, len(m.parts))
	if k <= 0 || len(m.parts) == 0 {
		return q
	}
	var total float64
	for _, p := range m.parts {
		total += p.Weight
	}
	rem := make([]float64, len(m.parts))
	left := k
	for i, p := range m.parts {
		exact := float64(k) * p.Weight / total
		q[i] = int(math.Floor(exact))
		rem[i] = exact - float64(q[i])
		left -= q[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		q[best]++
		rem[best] = -1
	}
	return q
}

// Select implements [Strategy].
func (m Mix) Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error) {
	if len(m.parts) == 0 {
		return nil, fmt.Errorf("mix: no parts")
	}
	if _, err := eligible(ctx, cands, k, opts, requirements{}); err != nil {
		return nil, fmt.Errorf("mix: %w", err)
	}
	exclude := make(IDSet, len(opts.Exclude)+k)
	for id := range opts.Exclude {
		exclude[id] = struct{}{}
	}
	labelled := append([][]float32(nil), opts.Labelled...)
	var out []Selection
	run := func(i, quota int) (int, error) {
		p := m.parts[i]
		sel, err := p.Strategy.Select(ctx, cands, quota, SelectOptions{Seed: opts.Seed, Exclude: exclude, Labelled: labelled})
		if err != nil {
			return 0, fmt.Errorf("mix part %d (%s): %w", i, p.Strategy.Name(), err)
		}
		for _, s := range sel {
			exclude[s.ID] = struct{}{}
			if e := cands[s.Index].Embedding; len(e) > 0 {
				labelled = append(labelled, e)
			}
			s.Rank = len(out) + 1
			s.Reason = "mix[" + p.Strategy.Name() + "]: " + s.Reason
			out = append(out, s)
		}
		return len(sel), nil
	}
	for i, q := range m.Quotas(k) {
		if q == 0 {
			continue
		}
		if _, err := run(i, q); err != nil {
			return nil, err
		}
	}
	for i := range m.parts {
		if len(out) >= k {
			break
		}
		got, err := run(i, k-len(out))
		if err != nil {
			return nil, err
		}
		if got == 0 {
			break // nothing eligible is left for any part
		}
	}
	if out == nil {
		out = []Selection{}
	}
	return out, nil
}
