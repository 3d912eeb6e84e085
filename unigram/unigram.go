// Package unigram is the unigram-frequency baseline for cloze evaluation:
// a context-free predictor that ranks whole words by how often they occur
// in a corpus and predicts that same ranked list at every mask.
//
// # How the baseline is computed
//
// Words. A text is split at white space (Unicode white space, as
// strings.Fields does); each field has its leading and trailing
// punctuation and symbols removed (characters that are neither letters,
// digits nor marks), so "dog," and "(dog)" give "dog" while inner
// hyphens and apostrophes stay ("well-known", "dog's"). The remainder is
// normalised as an uncased BERT tokenizer normalises text (tokenize.Normalizer
// with CleanText, StripAccents and Lowercase: "Café" gives "cafe"). Empty
// results and fields containing "[MASK]" are not words.
//
// Counting. Counter counts every word of every line of the corpus (AddText)
// or single words (AddWord, for example the gold answers of a training pool).
// Model ranks the words by decreasing count, ties broken by the word in
// byte order, so the list is deterministic: rank 1 is the most frequent
// word.
//
// Scoring. As mlm.Evaluate, the unit is the answer: an item with two masks
// counts twice, and every mask receives the same ranked list. A gold answer
// is normalised as a corpus word; its rank is its position in the list, or
// the length of the list plus one when the corpus never contains it (it is
// then wrong at top-1 and top-5 and contributes 1/(V+1) to the MRR). An
// answer is correct at top-1 when its rank is 1 and at top-5 when its rank
// is at most 5; the MRR is the mean of 1/rank. This matches mlm.Evaluate's
// notion of a correct answer for one-word answers of an uncased model
// (that is, the answer compared after lowercasing and accent stripping);
// a model answer of several word pieces must get every piece right, which
// is the same as predicting the whole word here. The baseline has no
// context and no probability model of pieces, so it reports no NLL.
package unigram

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/clozeloop/clozeloop/tokenize"
)

// maskToken is the cloze blank; a field holding it is not a word.
const maskToken = "[MASK]"

// normalizer is the uncased BERT normaliser used for words and answers.
func normalizer() tokenize.Normalizer {
	return tokenize.Normalizer{CleanText: true, StripAccents: true, Lowercase: true}
}

// Normalize returns the baseline's form of one word: punctuation and
// symbols trimmed at both ends, lowercased and accents stripped. It returns
// "" for a field that is not a word.
func Normalize(word string) string {
	return normalizeWith(normalizer(), word)
}

func normalizeWith(nz tokenize.Normalizer, word string) string {
	if strings.Contains(word, maskToken) {
		return ""
	}
	w := strings.TrimFunc(word, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	})
	if w == "" {
		return ""
	}
	return strings.TrimSpace(nz.Normalize(w))
}

// Counter counts words. The zero value is not usable; call NewCounter.
type Counter struct {
	nz     tokenize.Normalizer
	counts map[string]int64
	total  int64
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter {
	return &Counter{nz: normalizer(), counts: map[string]int64{}}
}

// AddText counts every word of text.
func (c *Counter) AddText(text string) {
	for _, f := range strings.Fields(text) {
		c.AddWord(f)
	}
}

// AddWord counts one word (normalised; ignored when it is not a word).
func (c *Counter) AddWord(word string) {
	if w := normalizeWith(c.nz, word); w != "" {
		c.counts[w]++
		c.total++
	}
}

// AddFile counts the words of every line of the text file at path.
func (c *Counter) AddFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("unigram corpus: %w", err)
	}
	defer f.Close()
	if err := c.AddReader(ctx, f); err != nil {
		return fmt.Errorf("unigram corpus %s: %w", path, err)
	}
	return nil
}

// AddReader counts the words of every line read from r.
func (c *Counter) AddReader(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := br.ReadString('\n')
		c.AddText(line)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", n+1, err)
		}
	}
}

// Model returns the ranked word list of the words counted so far. It fails
// when no word was counted.
func (c *Counter) Model() (*Model, error) {
	if len(c.counts) == 0 {
		return nil, fmt.Errorf("unigram baseline: the corpus has no words")
	}
	m := &Model{nz: c.nz, words: make([]string, 0, len(c.counts)), counts: c.counts, rank: make(map[string]int, len(c.counts)), total: c.total}
	for w := range c.counts {
		m.words = append(m.words, w)
	}
	slices.SortFunc(m.words, func(a, b string) int {
		if d := cmp.Compare(c.counts[b], c.counts[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for i, w := range m.words {
		m.rank[w] = i + 1
	}
	return m, nil
}

// Model is the unigram-frequency baseline: words ranked by decreasing
// corpus frequency. It is read-only and safe for concurrent use.
type Model struct {
	nz     tokenize.Normalizer
	words  []string
	counts map[string]int64
	rank   map[string]int
	total  int64
}

// Vocab returns the number of distinct words.
func (m *Model) Vocab() int { return len(m.words) }

// Tokens returns the number of words counted.
func (m *Model) Tokens() int64 { return m.total }

// Top returns the k most frequent words, most frequent first (all of them
// when k exceeds Vocab): the baseline's prediction at every mask.
func (m *Model) Top(k int) []string {
	return slices.Clone(m.words[:min(max(k, 0), len(m.words))])
}

// Count returns how often the (normalised) word occurred.
func (m *Model) Count(word string) int64 {
	return m.counts[normalizeWith(m.nz, word)]
}

// Counts returns a copy of the word counts, keyed by normalised word (the
// form dataset.NewFrequencyChooser takes).
func (m *Model) Counts() map[string]int {
	out := make(map[string]int, len(m.counts))
	for w, n := range m.counts {
		out[w] = int(n)
	}
	return out
}

// Rank returns the rank of the (normalised) answer in the list, from 1 for
// the most frequent word, or Vocab()+1 when the corpus does not contain it.
func (m *Model) Rank(answer string) int {
	if r, ok := m.rank[normalizeWith(m.nz, answer)]; ok {
		return r
	}
	return len(m.words) + 1
}

// Metrics are the baseline's cloze metrics, defined as mlm.EvalMetrics
// (the unit is the answer).
type Metrics struct {
	// Items is the number of items scored, N the number of answers.
	Items int `json:"items"`
	N     int `json:"n"`
	// Top1 and Top5 are the fractions of answers ranked first and within
	// the first five.
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	// MRR is the mean reciprocal rank of the answers.
	MRR float64 `json:"mrr"`
}

// Evaluate scores the gold answers of items (one list per item, one
// answer per mask) against the ranked list.
func (m *Model) Evaluate(ctx context.Context, gold [][]string) (Metrics, error) {
	var met Metrics
	var top1, top5, rr float64
	for i, answers := range gold {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return Metrics{}, fmt.Errorf("unigram baseline: %w", err)
			}
		}
		met.Items++
		for _, a := range answers {
			r, known := m.rank[normalizeWith(m.nz, a)]
			if !known {
				// Never right, even when the list is shorter than five.
				r = len(m.words) + 1
			}
			if known && r == 1 {
				top1++
			}
			if known && r <= 5 {
				top5++
			}
			rr += 1 / float64(r)
			met.N++
		}
	}
	if met.N > 0 {
		n := float64(met.N)
		met.Top1, met.Top5, met.MRR = top1/n, top5/n, rr/n
	}
	return met, nil
}

// Filter returns the baseline restricted to the words keep accepts, ranked
// as before among themselves: for example only the content words a cloze
// builder may blank, which is the fair frequency baseline for a set whose
// builder never blanks function words. Counts stay those of the full
// corpus; Tokens becomes the number of kept words counted. It fails when
// keep accepts no word.
func (m *Model) Filter(keep func(word string, count int64) bool) (*Model, error) {
	f := &Model{nz: m.nz, counts: map[string]int64{}, rank: map[string]int{}}
	for _, w := range m.words {
		n := m.counts[w]
		if !keep(w, n) {
			continue
		}
		f.words = append(f.words, w)
		f.counts[w] = n
		f.rank[w] = len(f.words)
		f.total += n
	}
	if len(f.words) == 0 {
		return nil, fmt.Errorf("unigram baseline: the filter keeps no word of %d", len(m.words))
	}
	return f, nil
}
