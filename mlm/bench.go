package mlm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/tokenize"
)

// SyntheticTokenizer returns an uncased WordPiece tokenizer over n tokens:
// [PAD], [UNK], [CLS], [SEP], [MASK] and the words "w5" … "w<n-1>", for
// benchmarks and tests with random-weight models of any vocabulary size.
func SyntheticTokenizer(n int) (*tokenize.Tokenizer, error) {
	if n < 6 {
		return nil, fmt.Errorf("synthetic tokenizer: need at least 6 tokens, got %d", n)
	}
	vocab := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for i := len(vocab); i < n; i++ {
		vocab = append(vocab, "w"+strconv.Itoa(i))
	}
	tok, err := tokenize.FromVocab(vocab, tokenize.DefaultOptions())
	if err != nil {
		return nil, fmt.Errorf("synthetic tokenizer: %w", err)
	}
	return tok, nil
}

// SyntheticItems returns n pool items for SyntheticTokenizer(vocab), each
// minLen to maxLen tokens long including [CLS] and [SEP], with one mask at
// a random position; the same arguments give the same items.
func SyntheticItems(n, minLen, maxLen, vocab int, seed uint64) []ScoreItem {
	rng := rand.New(rand.NewPCG(seed, 0x62656e6368))
	items := make([]ScoreItem, n)
	for i := range items {
		l := minLen
		if maxLen > minLen {
			l += rng.IntN(maxLen - minLen + 1)
		}
		words := make([]string, max(l-2, 1))
		for j := range words {
			words[j] = "w" + strconv.Itoa(5+rng.IntN(vocab-5))
		}
		words[rng.IntN(len(words))] = "[MASK]"
		items[i] = ScoreItem{ID: strconv.Itoa(i), Text: strings.Join(words, " ")}
	}
	return items
}

// ScoreBenchResult is the outcome of BenchScore.
type ScoreBenchResult struct {
	Items       int     `json:"items"`
	Seconds     float64 `json:"seconds"`
	ItemsPerSec float64 `json:"items_per_sec"`
}

// BenchScore scores items once to warm up (the first batch only) and then
// times a full Score pass over them.
func (m *Model) BenchScore(ctx context.Context, items []ScoreItem, opts ScoreOptions) (ScoreBenchResult, error) {
	warm := items[:min(len(items), max(opts.BatchSize, 1))]
	if _, err := m.Score(ctx, warm, opts, nil); err != nil {
		return ScoreBenchResult{}, err
	}
	start := time.Now()
	res, err := m.Score(ctx, items, opts, nil)
	if err != nil {
		return ScoreBenchResult{}, err
	}
	secs := time.Since(start).Seconds()
	for _, r := range res {
		if r.Err != "" {
			return ScoreBenchResult{}, fmt.Errorf("bench item %s: %s", r.ID, r.Err)
		}
	}
	return ScoreBenchResult{Items: len(items), Seconds: secs, ItemsPerSec: float64(len(items)) / secs}, nil
}
