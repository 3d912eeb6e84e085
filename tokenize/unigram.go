package tokenize

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unigramModel is a SentencePiece Unigram model (as in XLM-RoBERTa's
// tokenizer.json) with the Metaspace pre-tokeniser (or none), the decoder
// chain and the post-processor's offset trimming. The normaliser chain
// lives on the Tokenizer.
type unigramModel struct {
	scores       []float64 // per id
	unkScore     float64   // the smallest score minus 10, as Hugging Face
	unkID        int       // -1 for none: an unknown character is an error
	byteFallback bool
	byteIDs      [256]int // ids of <0x00> … <0xFF>; -1 where missing
	maxLen       int      // the longest piece in bytes

	meta metaspace

	decoders    []decodeStep // nil: tokens are joined with spaces
	trimOffsets bool         // RobertaProcessing's trim_offsets
	ppPrefix    bool         // RobertaProcessing's add_prefix_space

	// raw keeps the tokenizer.json components the model was loaded with,
	// written back unchanged by Save.
	raw unigramRaw
}

// unigramRaw are the JSON components of a Unigram tokenizer.json.
type unigramRaw struct {
	normalizer, preTokenizer, postProcessor, decoder []byte
}

// metaspace is the Metaspace pre-tokeniser: spaces become the replacement
// character, which is prepended to a stretch of text (always, only to the
// stretch at the start of the text, or never), and the text is split
// before each replacement character.
type metaspace struct {
	on      bool // false: no pre-tokeniser, the model sees whole stretches
	repl    string
	prepend string // "always", "first" or "never"
	split   bool
}

// errUnknownChar is the error of a text with a character outside the
// vocabulary of a Unigram model without unk_id (Hugging Face fails too).
var errUnknownChar = errors.New("encountered an unknown character but the Unigram model has no unk_id")

// tokenize implements model: Metaspace on text[start:end], then the
// Unigram model on each piece. Offsets come back in bytes of text: every
// byte of the pre-tokenised piece remembers the byte of text it stands for
// (a replacement character its space, a prepended one the first
// character), which is how Hugging Face aligns them.
func (u *unigramModel) tokenize(t *Tokenizer, text []byte, start, end int, opts encodeOpts, dst []piece) []piece {
	if start >= end {
		return dst
	}
	seg := text[start:end]
	w := make([]byte, 0, len(seg)+8)
	src := make([]int, 0, len(seg)+8)
	if !u.meta.on {
		w = append(w, seg...)
		for i := range seg {
			src = append(src, start+i)
		}
	} else {
		for i, b := range seg {
			if b == ' ' {
				w = append(w, u.meta.repl...)
				for range len(u.meta.repl) {
					src = append(src, start+i)
				}
				continue
			}
			w = append(w, b)
			src = append(src, start+i)
		}
		prepend := false
		switch {
		case opts.forcePrefix:
			prepend = true
		case opts.noPrefixSpace:
		case u.meta.prepend == "always":
			prepend = true
		case u.meta.prepend == "first":
			prepend = opts.atTextStart
		}
		if prepend && len(w) > 0 && !bytes.HasPrefix(w, []byte(u.meta.repl)) {
			pw := make([]byte, 0, len(w)+len(u.meta.repl))
			ps := make([]int, 0, cap(pw))
			pw = append(append(pw, u.meta.repl...), w...)
			for range len(u.meta.repl) {
				ps = append(ps, src[0])
			}
			w, src = pw, append(ps, src...)
		}
	}
	if opts.wordStarts != nil && u.meta.on {
		repl := []byte(u.meta.repl)
		for i := len(repl); i < len(w); i++ {
			if bytes.HasPrefix(w[i-len(repl):], repl) && !bytes.HasPrefix(w[i:], repl) {
				*opts.wordStarts = append(*opts.wordStarts, src[i])
			}
		}
	}
	from := 0
	emit := func(to int) {
		if from >= to {
			return
		}
		n := len(dst)
		dst = u.encodeWord(t, w[from:to], dst)
		for k := n; k < len(dst); k++ {
			dst[k].start, dst[k].end = src[from+dst[k].start], src[from+dst[k].end-1]+1
		}
		from = to
	}
	if u.meta.on && u.meta.split {
		repl := []byte(u.meta.repl)
		for i := 1; i < len(w); i++ {
			if bytes.HasPrefix(w[i:], repl) {
				emit(i)
			}
		}
	}
	emit(len(w))
	return dst
}

// unigramNode is the best segmentation of a text prefix that ends at a
// byte position: the score of the path, where its last piece starts and
// that piece's id.
type unigramNode struct {
	score float64
	start int
	id    int
	set   bool
}

// encodeWord segments word with the Viterbi algorithm as Hugging Face's
// Unigram::encode_optimized does and appends the tokens with byte ranges
// in word. Candidates are visited by start position, shorter pieces first,
// and only a strictly better score replaces a path, so among equal scores
// the path whose last piece starts earliest wins. A character with no
// single-character piece gets an unknown node scored min_score - 10;
// adjacent unknown pieces are fused, and with byte_fallback a fused
// unknown piece becomes its bytes' <0xXX> tokens (when all exist), all with
// the piece's range. Errors (an unknown character without unk_id) are
// raised as a panic that encodeSafe turns into an error.
func (u *unigramModel) encodeWord(t *Tokenizer, word []byte, dst []piece) []piece {
	n := len(word)
	best := make([]unigramNode, n+1)
	best[0].set = true
	for pos := 0; pos < n; {
		_, mblen := utf8.DecodeRune(word[pos:])
		base := best[pos].score
		single := false
		for l := 1; l <= u.maxLen && pos+l <= n; l++ {
			id, ok := t.ids[string(word[pos:pos+l])]
			if !ok {
				continue
			}
			cand := u.scores[id] + base
			if node := &best[pos+l]; !node.set || cand > node.score {
				*node = unigramNode{score: cand, start: pos, id: id, set: true}
			}
			if l == mblen {
				single = true
			}
		}
		if !single {
			cand := u.unkScore + base
			if node := &best[pos+mblen]; !node.set || cand > node.score {
				if u.unkID < 0 {
					panic(encodeError{errUnknownChar})
				}
				*node = unigramNode{score: cand, start: pos, id: u.unkID, set: true}
			}
		}
		pos += mblen
	}
	// Backtrack, fusing unknown pieces.
	var spans [][2]int
	unkEnd := -1
	for end := n; end > 0; {
		node := best[end]
		if u.unkID >= 0 && node.id == u.unkID {
			if unkEnd < 0 {
				unkEnd = end
			}
		} else {
			if unkEnd >= 0 {
				spans = append(spans, [2]int{end, unkEnd})
				unkEnd = -1
			}
			spans = append(spans, [2]int{node.start, end})
		}
		end = node.start
	}
	if unkEnd >= 0 {
		spans = append(spans, [2]int{0, unkEnd})
	}
	for k := len(spans) - 1; k >= 0; k-- {
		s, e := spans[k][0], spans[k][1]
		str := string(word[s:e])
		if id, ok := t.ids[str]; ok {
			dst = append(dst, piece{id: id, start: s, end: e, tok: str})
			continue
		}
		if u.byteFallback && u.hasBytes(word[s:e]) {
			for _, b := range word[s:e] {
				dst = append(dst, piece{id: u.byteIDs[b], start: s, end: e, tok: byteToken(b)})
			}
			continue
		}
		if u.unkID < 0 {
			panic(encodeError{errUnknownChar})
		}
		dst = append(dst, piece{id: u.unkID, start: s, end: e, tok: str})
	}
	return dst
}

// hasBytes reports whether every byte of b has its <0xXX> token.
func (u *unigramModel) hasBytes(b []byte) bool {
	for _, c := range b {
		if u.byteIDs[c] < 0 {
			return false
		}
	}
	return true
}

// byteToken is the byte-fallback token of b, "<0x41>" for 'A'.
func byteToken(b byte) string { return fmt.Sprintf("<0x%02X>", b) }

// encodeError carries an encoding error through a panic to encodeSafe.
type encodeError struct{ err error }

// trim implements model: RobertaProcessing's offset trimming when it is
// configured, else nothing.
func (u *unigramModel) trim(enc *Encoding, text string) {
	if u.trimOffsets {
		trimSpaceOffsets(enc, text, u.ppPrefix)
	}
}

// decode implements model with the decoder chain; without decoder the
// tokens are joined with spaces, as Hugging Face does.
func (u *unigramModel) decode(tokens []string) string {
	if u.decoders == nil {
		return strings.Join(tokens, " ")
	}
	for _, d := range u.decoders {
		tokens = d.decodeChain(tokens)
	}
	return strings.Join(tokens, "")
}

// decodeStep is one decoder of a chain (Hugging Face's decode_chain).
type decodeStep interface {
	decodeChain(tokens []string) []string
}

// metaspaceDecoder turns replacement characters back into spaces, dropping
// those of the first token unless the prepend scheme is "never".
type metaspaceDecoder struct {
	repl    rune
	prepend string
}

func (d metaspaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		var b strings.Builder
		for _, r := range tok {
			if r == d.repl {
				if i == 0 && d.prepend != "never" {
					continue
				}
				r = ' '
			}
			b.WriteRune(r)
		}
		out[i] = b.String()
	}
	return out
}

// byteFallbackDecoder turns runs of <0xXX> tokens into the text of their
// bytes, or into one U+FFFD per token when the bytes are not UTF-8.
type byteFallbackDecoder struct{}

func (byteFallbackDecoder) decodeChain(tokens []string) []string {
	var out []string
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\ufffd")
			}
		}
		pending = pending[:0]
	}
	for _, tok := range tokens {
		if b, ok := parseByteToken(tok); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, tok)
	}
	flush()
	return out
}

// parseByteToken reads "<0xXX>" as Hugging Face's ByteFallback decoder
// does (six bytes, two characters parsed as a base-16 u8, which also takes
// a leading '+').
func parseByteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	digits := tok[3:5]
	if digits[0] == '+' {
		digits = digits[1:]
	}
	v, err := strconv.ParseUint(digits, 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// fuseDecoder joins all tokens into one.
type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// replaceDecoder replaces a literal string in every token.
type replaceDecoder struct {
	pattern, content string
}

func (d replaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		if d.pattern == "" {
			out[i] = tok
			continue
		}
		out[i] = strings.ReplaceAll(tok, d.pattern, d.content)
	}
	return out
}

// stripDecoder removes up to start leading and stop trailing copies of a
// character from every token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (d stripDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		rs := []rune(tok)
		lo, hi := 0, len(rs)
		for k := 0; k < d.start && k < len(rs) && rs[k] == d.content; k++ {
			lo = k + 1
		}
		for k := 0; k < d.stop && len(rs)-k-1 >= lo && rs[len(rs)-k-1] == d.content; k++ {
			hi = len(rs) - k - 1
		}
		out[i] = string(rs[lo:hi])
	}
	return out
}
