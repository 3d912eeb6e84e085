package tokenize

import (
	"container/heap"
	"encoding/json"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// bpeModel is a byte-level BPE model with its ByteLevel pre-tokeniser,
// post-processor and decoder, as in RoBERTa's and GPT-2's tokenizer.json.
type bpeModel struct {
	// merges maps a pair of token ids to the merge's rank and result.
	merges map[[2]int]bpeMerge
	// mergeList keeps the merges in rank order, for saving.
	mergeList [][2]string

	unkToken     string // "" for none: characters outside the vocabulary are dropped
	unkID        int
	fuseUnk      bool
	ignoreMerges bool // a word that is a vocabulary token is taken whole

	addPrefixSpace bool // pre-tokeniser: a space in front of each stretch of text that lacks one
	useRegex       bool // pre-tokeniser: split by the GPT-2 pattern
	// trimOffsets (post-processor) removes the spaces a token starts or
	// ends with from its offsets; ppPrefixSpace is the post-processor's
	// add_prefix_space, which keeps the space of the first token.
	trimOffsets   bool
	ppPrefixSpace bool
	// processor names the post-processor ("RobertaProcessing",
	// "TemplateProcessing", "ByteLevel" or "" for none), for saving.
	processor string
	// normalizer is the tokenizer.json normalizer component (nil for
	// none), for saving; the Tokenizer's chain runs it.
	normalizer json.RawMessage

	// cache holds the tokens of words seen before (string → []piece), up
	// to cacheCapacity words shorter than cacheMaxLen bytes, as Hugging
	// Face's BPE does.
	cache     sync.Map
	cacheSize atomic.Int64
}

// bpeMerge is one merge rule: its rank (lower merges first) and the id of
// the merged token.
type bpeMerge struct {
	rank, id int
}

const (
	cacheCapacity = 10_000
	cacheMaxLen   = 256
)

// tokenize implements model: the ByteLevel pre-tokeniser (prefix space,
// GPT-2 split, byte-level mapping) and BPE on each piece.
func (b *bpeModel) tokenize(t *Tokenizer, text []byte, start, end int, opts encodeOpts, dst []piece) []piece {
	if start >= end {
		return dst
	}
	seg := text[start:end]
	// w is the segment with the optional prefix space; wStart maps a byte
	// of w to the start of its byte in seg (the prefix space to the first
	// character, as Hugging Face aligns it).
	prefix := b.addPrefixSpace && !opts.noPrefixSpace && seg[0] != ' '
	w := seg
	shift := 0
	if prefix {
		w = make([]byte, 0, len(seg)+1)
		w = append(append(w, ' '), seg...)
		shift = 1
	}
	// The range of w[i] in seg: the whole character it belongs to.
	charRange := func(i int) (int, int) {
		if prefix && i == 0 {
			_, size := utf8.DecodeRune(seg)
			return 0, size
		}
		j := i - shift
		s := j
		for s > 0 && !utf8.RuneStart(seg[s]) && j-s < utf8.UTFMax-1 {
			s--
		}
		r, size := utf8.DecodeRune(seg[s:])
		if r == utf8.RuneError && size == 1 || s+size <= j {
			return j, j + 1
		}
		return s, s + size
	}
	var ends []int
	if b.useRegex {
		ends = splitGPT2(w, nil)
	} else {
		ends = []int{len(w)}
	}
	var mapped []byte
	var word []piece
	from := 0
	for _, to := range ends {
		mapped = appendByteLevel(mapped[:0], w[from:to])
		word = b.word(t, mapped, word[:0])
		for _, p := range word {
			// p covers w[from+p.start : from+p.end] (one mapped character
			// per byte of w).
			s, _ := charRange(from + p.start)
			_, e := charRange(from + p.end - 1)
			dst = append(dst, piece{id: p.id, start: start + s, end: start + e})
		}
		from = to
	}
	return dst
}

// word applies BPE to one pre-tokenised piece in byte-level form and
// appends its tokens to dst, with ranges counted in bytes of the original
// piece (one byte-level character each).
func (b *bpeModel) word(t *Tokenizer, mapped []byte, dst []piece) []piece {
	if v, ok := b.cache.Load(string(mapped)); ok {
		return append(dst, v.([]piece)...)
	}
	n := len(dst)
	if id, ok := t.ids[string(mapped)]; ok && b.ignoreMerges {
		dst = append(dst, piece{id: id, start: 0, end: utf8.RuneCount(mapped)})
	} else {
		dst = b.merge(t, mapped, dst)
	}
	if len(mapped) < cacheMaxLen && b.cacheSize.Load() < cacheCapacity {
		if _, loaded := b.cache.LoadOrStore(string(mapped), append([]piece(nil), dst[n:]...)); !loaded {
			b.cacheSize.Add(1)
		}
	}
	return dst
}

// symbol is a token of a word being merged, in a doubly linked list over
// the initial characters.
type symbol struct {
	id         int
	prev, next int // -1 at the ends
	start, len int // in characters of the word
}

// merge splits mapped into characters, looks each up (a character outside
// the vocabulary becomes the unknown token, fused with its unknown
// neighbours when fuseUnk is set, or is dropped when there is no unknown
// token) and applies the merges lowest rank first, leftmost first among
// equal ranks, as Hugging Face's Word::merge_all does.
func (b *bpeModel) merge(t *Tokenizer, mapped []byte, dst []piece) []piece {
	syms := make([]symbol, 0, len(mapped)/2+1)
	unk := -1 // index in syms of the pending unknown symbol
	pos := 0
	add := func(id, start, n int) {
		syms = append(syms, symbol{id: id, prev: len(syms) - 1, next: -1, start: start, len: n})
	}
	for i := 0; i < len(mapped); pos++ {
		_, size := utf8.DecodeRune(mapped[i:])
		ch := mapped[i : i+size]
		i += size
		if id, ok := t.ids[string(ch)]; ok {
			unk = -1
			add(id, pos, 1)
			continue
		}
		if b.unkToken == "" {
			continue
		}
		if unk >= 0 && b.fuseUnk {
			syms[unk].len++
			continue
		}
		add(b.unkID, pos, 1)
		unk = len(syms) - 1
	}
	for i := range syms {
		if i+1 < len(syms) {
			syms[i].next = i + 1
		}
	}
	q := make(mergeHeap, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := b.merges[[2]int{syms[i].id, syms[i+1].id}]; ok {
			q = append(q, mergeEntry{pos: i, rank: m.rank, id: m.id})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		top := heap.Pop(&q).(mergeEntry)
		cur := &syms[top.pos]
		if cur.len == 0 || cur.next < 0 {
			continue
		}
		ri := cur.next
		right := syms[ri]
		if m, ok := b.merges[[2]int{cur.id, right.id}]; !ok || m.id != top.id {
			continue // stale entry
		}
		cur.id = top.id
		cur.len += right.len
		cur.next = right.next
		syms[ri].len = 0
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if m, ok := b.merges[[2]int{syms[cur.prev].id, cur.id}]; ok {
				heap.Push(&q, mergeEntry{pos: cur.prev, rank: m.rank, id: m.id})
			}
		}
		if cur.next >= 0 {
			if m, ok := b.merges[[2]int{cur.id, syms[cur.next].id}]; ok {
				heap.Push(&q, mergeEntry{pos: top.pos, rank: m.rank, id: m.id})
			}
		}
	}
	for _, s := range syms {
		if s.len > 0 {
			dst = append(dst, piece{id: s.id, start: s.start, end: s.start + s.len})
		}
	}
	return dst
}

// mergeEntry is a candidate merge of the symbol at pos with its right
// neighbour.
type mergeEntry struct {
	pos, rank, id int
}

// mergeHeap orders candidate merges by rank, then position.
type mergeHeap []mergeEntry

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeEntry)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// trim is the offset trimming of Hugging Face's ByteLevel and
// RobertaProcessing post-processors (process_offsets): a token's leading
// and trailing spaces ('Ġ' or whitespace characters) are removed from its
// offsets, except the single leading space of the first token when
// add_prefix_space put it there. Hugging Face counts in characters of the
// original text (transformers' offsets are character offsets), so a
// token's n spaces move its start n characters of text forward, and its
// end n characters back: not always the spaces themselves (the lone prefix
// space "Ġ" stands for the first character, which it then drops).
func (b *bpeModel) trim(enc *Encoding, text string) {
	if b.trimOffsets {
		trimSpaceOffsets(enc, text, b.ppPrefixSpace)
	}
}

// trimSpaceOffsets is the offset trimming of the ByteLevel and
// RobertaProcessing post-processors (see bpeModel.trim); prefixSpace is
// the post-processor's add_prefix_space.
func trimSpaceOffsets(enc *Encoding, text string, prefixSpace bool) {
	isSpace := func(r rune) bool { return r == byteLevel[' '] || unicode.IsSpace(r) }
	for i, tok := range enc.Tokens {
		lead, trail := 0, 0
		for _, r := range tok {
			if !isSpace(r) {
				break
			}
			lead++
		}
		for rest := tok; rest != ""; {
			r, size := utf8.DecodeLastRuneInString(rest)
			if !isSpace(r) {
				break
			}
			trail++
			rest = rest[:len(rest)-size]
		}
		o := &enc.Offsets[i]
		if lead > 0 {
			if (i == 0 || o[0] == 0) && prefixSpace && lead == 1 {
				lead = 0
			}
			for ; lead > 0 && o[0] < o[1]; lead-- {
				_, size := utf8.DecodeRuneInString(text[o[0]:])
				o[0] = min(o[0]+size, o[1])
			}
		}
		if trail > 0 && utf8.RuneCountInString(text[:o[1]]) >= trail {
			end := o[1]
			for ; trail > 0; trail-- {
				_, size := utf8.DecodeLastRuneInString(text[:end])
				end -= size
			}
			o[1] = max(end, o[0])
		}
	}
}

// decode implements model with the ByteLevel decoder.
func (b *bpeModel) decode(tokens []string) string { return decodeByteLevel(tokens) }
