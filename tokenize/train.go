package tokenize

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
)

// TrainOptions configure TrainWordPiece.
type TrainOptions struct {
	// VocabSize is the target vocabulary size, special tokens and alphabet
	// included. Training stops earlier when no pair is left to merge.
	VocabSize int
	// MinFrequency is the smallest pair count that is still merged.
	MinFrequency int
	// SpecialTokens come first in the vocabulary, in this order. Empty
	// means [PAD], [UNK], [CLS], [SEP], [MASK] (ids 0–4). The list must
	// contain those five names.
	SpecialTokens []string
	// Lowercase lowercases (and, unless StripAccents says otherwise, strips
	// accents from) the corpus and the resulting tokenizer's input.
	Lowercase bool
	// StripAccents overrides accent stripping; nil follows Lowercase.
	StripAccents *bool
	// LimitAlphabet keeps at most this many distinct characters, the most
	// frequent ones; 0 keeps all.
	LimitAlphabet int
	// ContinuingPrefix marks pieces that continue a word; empty means "##".
	ContinuingPrefix string
}

// DefaultSpecialTokens returns the special tokens of vocabularies clozeloop
// trains, in id order: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
func DefaultSpecialTokens() []string {
	return []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
}

// TrainWordPiece learns a WordPiece vocabulary from corpus (one text per
// element) with Hugging Face's algorithm: the text is normalised and split
// into words as the resulting tokenizer will do, every word starts as its
// characters (later ones carrying the continuing prefix), and the most
// frequent adjacent pair is merged until the vocabulary is full (BPE
// training); every token created on the way is in the vocabulary. Ties are
// broken by the smaller pair of ids, and ids are assigned in a fixed order,
// so training is deterministic. The context is checked while reading and
// merging.
func TrainWordPiece(ctx context.Context, corpus iter.Seq2[string, error], opts TrainOptions) (*Tokenizer, error) {
	if opts.VocabSize <= 0 {
		return nil, fmt.Errorf("train wordpiece: vocabulary size must be positive, got %d", opts.VocabSize)
	}
	if opts.MinFrequency < 0 || opts.LimitAlphabet < 0 {
		return nil, errors.New("train wordpiece: min frequency and alphabet limit must not be negative")
	}
	specials := opts.SpecialTokens
	if len(specials) == 0 {
		specials = DefaultSpecialTokens()
	}
	for _, need := range DefaultSpecialTokens() {
		if !slices.Contains(specials, need) {
			return nil, fmt.Errorf("train wordpiece: special tokens %q lack %s", specials, need)
		}
	}
	prefix := opts.ContinuingPrefix
	if prefix == "" {
		prefix = "##"
	}
	tokOpts := DefaultOptions()
	tokOpts.Lowercase = opts.Lowercase
	tokOpts.StripAccents = opts.StripAccents
	tokOpts.ContinuingSubwordPrefix = prefix
	norm := Normalizer{CleanText: true, HandleChineseChars: true, Lowercase: opts.Lowercase, StripAccents: opts.Lowercase}
	if opts.StripAccents != nil {
		norm.StripAccents = *opts.StripAccents
	}

	// Count words.
	counts := map[string]int64{}
	n := 0
	for line, err := range corpus {
		if err != nil {
			return nil, fmt.Errorf("train wordpiece: read corpus: %w", err)
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("train wordpiece: %w", err)
			}
		}
		nt := norm.normalize(line, 0)
		for _, w := range preTokenize(nt.text) {
			counts[string(nt.text[w.start:w.end])]++
		}
	}
	vocab, err := trainBPE(ctx, counts, specials, prefix, opts)
	if err != nil {
		return nil, fmt.Errorf("train wordpiece: %w", err)
	}
	t, err := FromVocab(vocab, tokOpts)
	if err != nil {
		return nil, fmt.Errorf("train wordpiece: %w", err)
	}
	return t, nil
}

// trainBPE is Hugging Face's BpeTrainer with a continuing-subword prefix;
// it returns the vocabulary in id order.
func trainBPE(ctx context.Context, counts map[string]int64, specials []string, prefix string, opts TrainOptions) ([]string, error) {
	var id2w []string
	w2id := map[string]int32{}
	add := func(s string) int32 {
		if id, ok := w2id[s]; ok {
			return id
		}
		id := int32(len(id2w))
		id2w = append(id2w, s)
		w2id[s] = id
		return id
	}
	for _, s := range specials {
		add(s)
	}

	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Strings(words)

	// Alphabet: characters by total count, limited, then in code point order.
	alpha := map[rune]int64{}
	for _, w := range words {
		for _, r := range w {
			alpha[r] += counts[w]
		}
	}
	kept := make([]rune, 0, len(alpha))
	for r := range alpha {
		kept = append(kept, r)
	}
	if opts.LimitAlphabet > 0 && len(kept) > opts.LimitAlphabet {
		sort.Slice(kept, func(i, j int) bool {
			if alpha[kept[i]] != alpha[kept[j]] {
				return alpha[kept[i]] > alpha[kept[j]]
			}
			return kept[i] < kept[j]
		})
		kept = kept[:opts.LimitAlphabet]
	}
	slices.Sort(kept)
	inAlpha := make(map[rune]bool, len(kept))
	for _, r := range kept {
		add(string(r))
		inAlpha[r] = true
	}

	// Words as symbol sequences.
	syms := make([][]int32, len(words))
	wc := make([]int64, len(words))
	for i, w := range words {
		wc[i] = counts[w]
		first := true
		for _, r := range w {
			if inAlpha[r] {
				s := string(r)
				if !first {
					s = prefix + s
				}
				syms[i] = append(syms[i], add(s))
			}
			first = false
		}
	}

	pairCounts := map[uint64]int64{}
	where := map[uint64][]int32{}
	for i, s := range syms {
		for k := 0; k+1 < len(s); k++ {
			p := pairKey(s[k], s[k+1])
			pairCounts[p] += wc[i]
			where[p] = append(where[p], int32(i))
		}
	}
	q := &mergeQueue{}
	pushAll := func() {
		keys := make([]uint64, 0, len(where))
		for p := range where {
			keys = append(keys, p)
		}
		slices.Sort(keys)
		for _, p := range keys {
			if c := pairCounts[p]; c > 0 {
				pos := where[p]
				slices.Sort(pos)
				heap.Push(q, &merge{pair: p, count: c, pos: slices.Compact(pos)})
			}
			delete(where, p)
		}
	}
	pushAll()

	var changes []pairChange
	for steps := 0; len(id2w) < opts.VocabSize && q.Len() > 0; steps++ {
		if steps%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		top := heap.Pop(q).(*merge)
		if c := pairCounts[top.pair]; top.count != c {
			top.count = c
			heap.Push(q, top)
			continue
		}
		if top.count < 1 || int64(opts.MinFrequency) > top.count {
			break
		}
		a, b := int32(top.pair>>32), int32(uint32(top.pair))
		newID := add(id2w[a] + strings.TrimPrefix(id2w[b], prefix))
		for _, iw := range top.pos {
			changes = mergeWord(&syms[iw], a, b, newID, changes[:0])
			for _, ch := range changes {
				pairCounts[ch.pair] += int64(ch.delta) * wc[iw]
				if ch.delta > 0 {
					where[ch.pair] = append(where[ch.pair], iw)
				}
			}
		}
		pushAll()
	}
	return id2w, nil
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

type pairChange struct {
	pair  uint64
	delta int32
}

// mergeWord replaces every adjacent (c1, c2) in *w by rep, left to right,
// and reports how pair counts change, as Hugging Face's Word::merge does.
func mergeWord(w *[]int32, c1, c2, rep int32, changes []pairChange) []pairChange {
	s := *w
	out := s[:0]
	for i := 0; i < len(s); {
		if s[i] == c1 && i+1 < len(s) && s[i+1] == c2 {
			if len(out) > 0 {
				prev := out[len(out)-1]
				changes = append(changes, pairChange{pairKey(prev, c1), -1}, pairChange{pairKey(prev, rep), 1})
			}
			if i+2 < len(s) {
				next := s[i+2]
				changes = append(changes, pairChange{pairKey(c2, next), -1}, pairChange{pairKey(rep, next), 1})
			}
			out = append(out, rep)
			i += 2
			continue
		}
		out = append(out, s[i])
		i++
	}
	*w = out
	return changes
}

// merge is a candidate pair with its count and the words containing it.
type merge struct {
	pair  uint64
	count int64
	pos   []int32
}

// mergeQueue is a max-heap by count, then by smaller pair.
type mergeQueue []*merge

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].count != q[j].count {
		return q[i].count > q[j].count
	}
	return q[i].pair < q[j].pair
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(*merge)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
