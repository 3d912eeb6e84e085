package sim

import (
	"fmt"
	"sort"
)

// NoiseOptions make the oracle imperfect.
type NoiseOptions struct {
	// WrongRate is the probability, per answered item, that every answer
	// of the item is replaced by a different gold word drawn at random
	// from the whole oracle.
	WrongRate float64 `json:"wrong_rate"`
	// SkipRate is the probability that the oracle skips an item (no
	// answer; the item still counts as a label used).
	SkipRate float64 `json:"skip_rate"`
}

// Validate checks that the rates are probabilities.
func (n NoiseOptions) Validate() error {
	if !(n.WrongRate >= 0 && n.WrongRate <= 1) {
		return fmt.Errorf("wrong-answer rate %v: want a number in [0, 1]", n.WrongRate)
	}
	if !(n.SkipRate >= 0 && n.SkipRate <= 1) {
		return fmt.Errorf("skip rate %v: want a number in [0, 1]", n.SkipRate)
	}
	return nil
}

// Answer is the oracle's response for one item.
type Answer struct {
	ItemID  string
	Answers []string
	// Skipped reports that the oracle gave no answer.
	Skipped bool
	// Wrong reports that the answers are deliberately wrong.
	Wrong bool
}

// Oracle answers pool items from gold labels. Its answers depend only on
// the seed and the item, not on the order of the questions.
type Oracle struct {
	gold  map[string][]string
	words []string // distinct gold words, sorted
	noise NoiseOptions
	seed  int64
}

// NewOracle returns an oracle over gold (item ID → one answer per mask).
func NewOracle(gold map[string][]string, noise NoiseOptions, seed int64) (*Oracle, error) {
	if err := noise.Validate(); err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	set := map[string]struct{}{}
	for id, g := range gold {
		if len(g) == 0 {
			return nil, fmt.Errorf("oracle: item %q has no gold answer", id)
		}
		for _, w := range g {
			set[w] = struct{}{}
		}
	}
	words := make([]string, 0, len(set))
	for w := range set {
		words = append(words, w)
	}
	sort.Strings(words)
	if noise.WrongRate > 0 && len(words) < 2 {
		return nil, fmt.Errorf("oracle: a wrong-answer rate needs at least two distinct gold words, have %d", len(words))
	}
	return &Oracle{gold: gold, words: words, noise: noise, seed: seed}, nil
}

// Ask returns the oracle's answer for the item, or an error if the item has
// no gold answer.
func (o *Oracle) Ask(itemID string) (Answer, error) {
	g, ok := o.gold[itemID]
	if !ok {
		return Answer{}, fmt.Errorf("oracle: no gold answer for item %q", itemID)
	}
	a := Answer{ItemID: itemID}
	if o.noise.SkipRate > 0 && hashUniform(o.seed, "skip", itemID, 0) < o.noise.SkipRate {
		a.Skipped = true
		return a, nil
	}
	a.Answers = append([]string(nil), g...)
	if o.noise.WrongRate > 0 && hashUniform(o.seed, "wrong", itemID, 0) < o.noise.WrongRate {
		a.Wrong = true
		for i, w := range a.Answers {
			// Draw among the other words: index in words without w.
			j := int(hashUniform(o.seed, "word", itemID, i) * float64(len(o.words)-1))
			if k := sort.SearchStrings(o.words, w); k < len(o.words) && o.words[k] == w && j >= k {
				j++
			}
			a.Answers[i] = o.words[j]
		}
	}
	return a, nil
}

// splitmix64 is a bijective 64-bit mixer (Steele, Lea and Flood).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashUniform returns a uniform number in [0, 1) determined by its inputs.
func hashUniform(seed int64, purpose, id string, n int) float64 {
	h := uint64(14695981039346656037) // FNV-1a 64
	for _, s := range []string{purpose, "\x00", id} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	x := splitmix64(h ^ splitmix64(uint64(seed)^splitmix64(uint64(n))))
	return float64(x>>11) / (1 << 53)
}
