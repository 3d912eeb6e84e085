package mlm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/tokenize"
	"github.com/clozeloop/clozeloop/torchrt"
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
	lengths := make([]int, n)
	for i := range lengths {
		lengths[i] = minLen
		if maxLen > minLen {
			lengths[i] += rng.IntN(maxLen - minLen + 1)
		}
	}
	return SyntheticItemsOfLengths(lengths, vocab, seed)
}

// SyntheticItemsOfLengths returns one pool item for SyntheticTokenizer(vocab)
// per entry of lengths, lengths[i] tokens long including [CLS] and [SEP]
// (at least 3), with one mask at a random position; the same arguments
// give the same items.
func SyntheticItemsOfLengths(lengths []int, vocab int, seed uint64) []ScoreItem {
	rng := rand.New(rand.NewPCG(seed, 0x6974656d73))
	items := make([]ScoreItem, len(lengths))
	for i, l := range lengths {
		words := make([]string, max(l-2, 1))
		for j := range words {
			words[j] = "w" + strconv.Itoa(5+rng.IntN(vocab-5))
		}
		words[rng.IntN(len(words))] = "[MASK]"
		items[i] = ScoreItem{ID: strconv.Itoa(i), Text: strings.Join(words, " ")}
	}
	return items
}

// ForwardFLOPs returns the multiply-add FLOPs (2 per multiply-accumulate)
// of a BERT forward pass over batch items of length tokens, as bench_ref.py's
// forward_flops counts them:
//
//	encoder = layers × (2·B·L·(4·H² + 2·H·I) + 4·B·L²·H)
//	head    = 2·headRows·(H² + H·V)
//
// with B = batch, L = length, H = hidden size, I = intermediate size and
// V = vocabulary size. The encoder term counts the query, key, value and
// output projections (4·H² per token), the two feed-forward matrices
// (2·H·I per token), Q·Kᵀ and softmax(·)·V (2·L²·H each per item); the head
// term counts the MLM head's dense layer and vocabulary projection at
// headRows positions (batch when the head runs at one mask per item, B·L
// at every position). Embeddings, LayerNorm, GELU, softmax and biases are
// left out: they are a few percent at these sizes. ModernBERT's gated MLP
// has three H·I matrices (Wi is 2I×H), so its feed-forward term is 3·H·I;
// its local layers compute the full L² scores (masked), as counted.
func ForwardFLOPs(cfg Config, batch, length, headRows int) (encoder, head float64) {
	B, L := float64(batch), float64(length)
	H, I, V := float64(cfg.HiddenSize), float64(cfg.IntermediateSize), float64(cfg.VocabSize)
	ffn := 2 * H * I
	if cfg.ModelType == ModelTypeModernBERT {
		ffn = 3 * H * I
	}
	encoder = float64(cfg.NumHiddenLayers) * (2*B*L*(4*H*H+ffn) + 4*B*L*L*H)
	head = 2 * float64(headRows) * (H*H + H*V)
	return encoder, head
}

// BenchOptions bound a timed benchmark loop. Zero values take the defaults
// noted.
type BenchOptions struct {
	// Warmup untimed runs (default 1; negative: none) precede the timed
	// runs.
	Warmup int
	// MinRuns timed runs at least (default 1).
	MinRuns int
	// MinTime keeps timing runs until the timed runs add up to this long.
	MinTime time.Duration
	// MaxTime stops timing after this long (after at least one run),
	// whatever MinRuns and MinTime ask; zero means no cap.
	MaxTime time.Duration
}

// BenchResult is the outcome of a timed benchmark loop. Per-second rates
// use the median run.
type BenchResult struct {
	// Items and Tokens are the items and tokens (padding excluded) of one
	// run.
	Items  int `json:"items"`
	Tokens int `json:"tokens"`
	// Runs is the number of timed runs, Seconds their total and
	// MedianSeconds the median run.
	Runs          int     `json:"runs"`
	Seconds       float64 `json:"seconds"`
	MedianSeconds float64 `json:"median_seconds"`
	ItemsPerSec   float64 `json:"items_per_sec"`
	TokensPerSec  float64 `json:"tokens_per_sec"`
	// Loss is the last training step's loss (BenchTrain only).
	Loss float64 `json:"loss,omitempty"`
}

// timeRuns calls warm opts.Warmup times, then run until opts is satisfied,
// and fills the timing fields of a BenchResult for items and tokens per run.
func timeRuns(ctx context.Context, opts BenchOptions, items, tokens int, warm, run func() error) (BenchResult, error) {
	warmup := opts.Warmup
	if warmup == 0 {
		warmup = 1
	}
	for range warmup {
		if err := warm(); err != nil {
			return BenchResult{}, err
		}
	}
	minRuns := max(opts.MinRuns, 1)
	var secs []float64
	var total time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return BenchResult{}, fmt.Errorf("benchmark: %w", err)
		}
		start := time.Now()
		if err := run(); err != nil {
			return BenchResult{}, err
		}
		d := time.Since(start)
		total += d
		secs = append(secs, d.Seconds())
		if (opts.MaxTime > 0 && total >= opts.MaxTime) || (len(secs) >= minRuns && total >= opts.MinTime) {
			break
		}
	}
	slices.Sort(secs)
	med := secs[len(secs)/2]
	if len(secs)%2 == 0 {
		med = (secs[len(secs)/2-1] + secs[len(secs)/2]) / 2
	}
	return BenchResult{
		Items: items, Tokens: tokens, Runs: len(secs), Seconds: total.Seconds(), MedianSeconds: med,
		ItemsPerSec: float64(items) / med, TokensPerSec: float64(tokens) / med,
	}, nil
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
	r, err := m.BenchScoreRuns(ctx, items, opts, BenchOptions{})
	if err != nil {
		return ScoreBenchResult{}, err
	}
	return ScoreBenchResult{Items: r.Items, Seconds: r.Seconds, ItemsPerSec: r.ItemsPerSec}, nil
}

// BenchScoreRuns times Score passes over items, the real pool-scoring path
// (tokenization, length buckets, head at the masks): each warm-up scores
// the first batch of items, each timed run all of them, as bopts bounds
// them. Tokens counts the tokenized items with [CLS] and [SEP]. An item
// that fails to score fails the benchmark.
func (m *Model) BenchScoreRuns(ctx context.Context, items []ScoreItem, opts ScoreOptions, bopts BenchOptions) (BenchResult, error) {
	if len(items) == 0 {
		return BenchResult{}, fmt.Errorf("benchmark score: no items")
	}
	tokens := 0
	for _, it := range items {
		p := m.prepare(it.Text)
		if p.err != nil {
			return BenchResult{}, fmt.Errorf("benchmark item %s: %w", it.ID, p.err)
		}
		tokens += len(p.ids)
	}
	score := func(items []ScoreItem) error {
		res, err := m.Score(ctx, items, opts, nil)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != "" {
				return fmt.Errorf("benchmark item %s: %s", r.ID, r.Err)
			}
		}
		return nil
	}
	warm := items[:min(len(items), max(opts.BatchSize, 1))]
	return timeRuns(ctx, bopts, len(items), tokens,
		func() error { return score(warm) }, func() error { return score(items) })
}

// BenchTrain times fine-tuning steps, the path FineTune takes for each
// optimizer step: a forward pass in train mode (dropout on) over batch
// random sequences of length tokens with one labelled mask each,
// cross-entropy at the masks (the head runs only there), backward,
// gradient clipping at norm 1 and an AdamW update with the default options
// at lr 1e-4. Each warm-up and each timed run is one step; the model's
// weights change. TokensPerSec counts every input token.
func (m *Model) BenchTrain(ctx context.Context, batch, length int, bopts BenchOptions) (res BenchResult, err error) {
	if batch < 1 || length < 3 || length > m.cfg.MaxSequenceLength() {
		return BenchResult{}, fmt.Errorf("benchmark train: batch %d must be positive and length %d in [3, %d]",
			batch, length, m.cfg.MaxSequenceLength())
	}
	items := benchTrainBatch(batch, length, m.cfg.VocabSize, m.seed)
	if err := m.lock(); err != nil {
		return BenchResult{}, err
	}
	defer m.unlock()
	prev, err := ts.GradSetEnabled(true)
	if err != nil {
		return BenchResult{}, fmt.Errorf("benchmark train: enable gradients: %w", err)
	}
	defer ts.GradSetEnabled(prev)
	opt, err := newAdamW(m.NamedParameters(), AdamWOptions{})
	if err != nil {
		return BenchResult{}, fmt.Errorf("benchmark train: %w", err)
	}
	defer opt.drop()
	var loss float64
	step := func() error {
		l, _, err := m.microStep(items, 1, 1)
		if err != nil {
			return err
		}
		loss = l
		_, err = m.optimizerStep(opt, 1e-4, 1)
		return err
	}
	res, err = timeRuns(ctx, bopts, batch, batch*length, step, step)
	if err != nil {
		return BenchResult{}, fmt.Errorf("benchmark train: %w", err)
	}
	res.Loss = loss
	return res, nil
}

// benchTrainBatch returns batch sequences of length tokens ([CLS] … [SEP]
// with random words) with one labelled mask each.
func benchTrainBatch(batch, length, vocab int, seed uint64) []trainItem {
	rng := rand.New(rand.NewPCG(seed, 0x747261696e))
	items := make([]trainItem, batch)
	for b := range items {
		ids := make([]int64, length)
		for i := range ids {
			ids[i] = int64(5 + rng.IntN(vocab-5))
		}
		ids[0], ids[length-1] = 2, 3
		p := 1 + rng.IntN(length-2)
		label := ids[p]
		ids[p] = 4
		items[b] = trainItem{ids: ids, pos: []int{p}, labels: []int64{label}}
	}
	return items
}

// BenchTrainMemory runs steps optimizer steps of fine-tuning (loss,
// backward, AdamW) on synthetic batches of batch sequences whose lengths
// cycle through lengths, as bucketing by length makes them, with the
// training loop's own settings except the C heap trimming: the allocator's
// free memory is handed back every trimEvery steps (0: never). sample is
// called after every step with the number of steps done; its error stops
// the run.
func (m *Model) BenchTrainMemory(ctx context.Context, batch int, lengths []int, steps, trimEvery int, sample func(step int) error) error {
	if batch < 1 || steps < 1 || trimEvery < 0 || len(lengths) == 0 {
		return fmt.Errorf("benchmark train memory: batch %d and steps %d must be positive, trim every %d not negative, lengths %v not empty",
			batch, steps, trimEvery, lengths)
	}
	batches := make([][]trainItem, len(lengths))
	for i, l := range lengths {
		if l < 3 || l > m.cfg.MaxSequenceLength() {
			return fmt.Errorf("benchmark train memory: length %d not in [3, %d]", l, m.cfg.MaxSequenceLength())
		}
		batches[i] = benchTrainBatch(batch, l, m.cfg.VocabSize, m.seed+uint64(i))
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.unlock()
	prev, err := ts.GradSetEnabled(true)
	if err != nil {
		return fmt.Errorf("benchmark train memory: enable gradients: %w", err)
	}
	defer ts.GradSetEnabled(prev)
	opt, err := newAdamW(m.NamedParameters(), AdamWOptions{})
	if err != nil {
		return fmt.Errorf("benchmark train memory: %w", err)
	}
	defer opt.drop()
	for step := 1; step <= steps; step++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, _, err := m.microStep(batches[(step-1)%len(batches)], 1, 1); err != nil {
			return fmt.Errorf("benchmark train memory: step %d: %w", step, err)
		}
		if _, err := m.optimizerStep(opt, 1e-4, 1); err != nil {
			return fmt.Errorf("benchmark train memory: step %d: %w", step, err)
		}
		if trimEvery > 0 && step%trimEvery == 0 {
			torchrt.ReleaseMemory()
		}
		if err := sample(step); err != nil {
			return err
		}
	}
	return nil
}
