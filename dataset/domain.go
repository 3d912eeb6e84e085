package dataset

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
)

// DomainScorer ranks texts by how much more they look like a target sample
// than like the corpus they come from: Moore and Lewis's cross-entropy
// difference (Intelligent Selection of Language Model Training Data,
// 2010) with unigram word models,
//
//	score(t) = (1/|t|) Σ_{w ∈ t} [log P_target(w) − log P_corpus(w)],
//	P_target(w) = λ·c_target(w)/N_target + (1 − λ)·P_corpus(w),  λ = 1/2,
//
// where P_corpus is the corpus's word frequency with add-one smoothing. A
// target sample is small (a few hundred texts), so its own model is
// interpolated with the corpus's: with add-one smoothing alone, every word
// the sample lacks would get the same probability as the rarest corpus
// words, and texts full of rare off-target words would rank first. A word
// contributes log(1/2) when the sample lacks it, about 0 when it is as
// common in both (function words), and more the more typical of the sample
// it is. A high score means the text's words are common in the target
// sample and rare in the corpus: the part of a mostly off-target pool worth
// adapting the model on. Words are lower-cased runs of letters, digits and
// apostrophes; [MASK] blanks are not words. A text without words scores
// -Inf.
//
// Build one with [NewDomainScorer], feed the corpus with Add, then Score.
type DomainScorer struct {
	target, corpus map[string]int
	targetN        int
	corpusN        int
	vocab          int // words either model has seen, plus one
}

// domainLambda is the weight of the target sample's own model in
// P_target.
const domainLambda = 0.5

// NewDomainScorer returns a scorer for the target sample's texts; it fails
// when the sample has no word.
func NewDomainScorer(target []string) (*DomainScorer, error) {
	d := &DomainScorer{target: map[string]int{}, corpus: map[string]int{}}
	for _, t := range target {
		for _, w := range domainWords(t) {
			d.target[w]++
			d.targetN++
		}
	}
	if d.targetN == 0 {
		return nil, fmt.Errorf("domain scorer: the target sample (%d texts) has no word", len(target))
	}
	d.vocab = len(d.target) + 1
	return d, nil
}

// Add counts text's words into the corpus model.
func (d *DomainScorer) Add(text string) {
	for _, w := range domainWords(text) {
		if _, seen := d.corpus[w]; !seen {
			if _, inTarget := d.target[w]; !inTarget {
				d.vocab++
			}
		}
		d.corpus[w]++
		d.corpusN++
	}
}

// Score returns text's cross-entropy difference (see [DomainScorer]).
func (d *DomainScorer) Score(text string) float64 {
	s, n := d.logRatio(text)
	if n == 0 {
		return math.Inf(-1)
	}
	return s / float64(n)
}

// Evidence returns the summed log-likelihood ratio of text's words,
// Σ_{w ∈ t} [log P_target(w) − log P_corpus(w)]: Score times the number of
// words, the log of how much more likely the target's unigram model makes
// the text than the corpus's. Score, a mean per word, ranks texts for
// training a model on (Moore and Lewis); Evidence tells whether a text is
// from the target at all, as a naive Bayes classifier would, so a long
// text full of typical words outranks a short one with a single typical
// word. A text without words has evidence 0.
func (d *DomainScorer) Evidence(text string) float64 {
	s, _ := d.logRatio(text)
	return s
}

// logRatio returns the summed log-likelihood ratio of text's words and
// their number.
func (d *DomainScorer) logRatio(text string) (float64, int) {
	words := domainWords(text)
	var s float64
	for _, w := range words {
		pc := float64(d.corpus[w]+1) / float64(d.corpusN+d.vocab)
		pt := domainLambda*float64(d.target[w])/float64(d.targetN) + (1-domainLambda)*pc
		s += math.Log(pt) - math.Log(pc)
	}
	return s, len(words)
}

// domainWords returns the lower-cased words of text, blanks left out.
func domainWords(text string) []string {
	text = strings.ReplaceAll(text, MaskToken, " ")
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
}

// TopShare keeps the given share of a stream of scored texts, those with
// the highest scores, when the scores of the whole stream are known in
// advance: [NewTopShare] takes them, then Keep answers for each text in the
// same order. Ties at the threshold are kept in stream order until the
// share is full, so exactly ceil(share·n) texts are kept (at least one).
// Texts scoring -Inf (no words) are never kept. Use Reset before another
// pass over the same stream.
type TopShare struct {
	threshold float64
	ties      int // texts scoring exactly threshold that are kept
	left      int // of those, not yet seen in this pass
	Kept      int // how many texts a full pass keeps
}

// NewTopShare returns the filter keeping share (in (0, 1]) of the texts
// with the given scores.
func NewTopShare(scores []float64, share float64) (*TopShare, error) {
	if !(share > 0 && share <= 1) {
		return nil, fmt.Errorf("top share %g must be within (0, 1]", share)
	}
	sorted := slices.Clone(scores)
	sorted = slices.DeleteFunc(sorted, func(s float64) bool { return math.IsInf(s, -1) || math.IsNaN(s) })
	if len(sorted) == 0 {
		return nil, fmt.Errorf("top share: none of the %d texts has a word", len(scores))
	}
	slices.SortFunc(sorted, func(a, b float64) int { return cmp.Compare(b, a) })
	n := min(max(int(math.Ceil(share*float64(len(scores)))), 1), len(sorted))
	t := &TopShare{threshold: sorted[n-1], Kept: n}
	above := 0
	for _, s := range sorted[:n] {
		if s > t.threshold {
			above++
		}
	}
	t.ties = n - above
	t.left = t.ties
	return t, nil
}

// Keep reports whether the next text of the pass, scoring s, is kept.
func (t *TopShare) Keep(s float64) bool {
	switch {
	case s > t.threshold:
		return true
	case s == t.threshold && t.left > 0:
		t.left--
		return true
	}
	return false
}

// Reset starts another pass.
func (t *TopShare) Reset() { t.left = t.ties }
