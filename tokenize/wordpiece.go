package tokenize

import (
	"unicode/utf8"
)

// span is a piece of normalised text: the byte range [start, end) in a
// normalized value.
type span struct{ start, end int }

// preTokenize splits normalised text the way Hugging Face's BertPreTokenizer
// does: whitespace separates words and is dropped, and every punctuation
// character becomes a word of its own.
func preTokenize(text []byte) []span {
	var out []span
	wordStart := -1
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRune(text[i:])
		switch {
		case isWhitespace(r):
			if wordStart >= 0 {
				out = append(out, span{wordStart, i})
				wordStart = -1
			}
		case isPunctuation(r):
			if wordStart >= 0 {
				out = append(out, span{wordStart, i})
				wordStart = -1
			}
			out = append(out, span{i, i + size})
		default:
			if wordStart < 0 {
				wordStart = i
			}
		}
		i += size
	}
	if wordStart >= 0 {
		out = append(out, span{wordStart, len(text)})
	}
	return out
}

// wordPiece splits one word into pieces by greedy longest-match-first, as
// Hugging Face's WordPiece model does: pieces after the first carry the
// continuing-subword prefix; a word longer than maxChars characters, or one
// with a part no vocabulary entry matches, becomes the single unknown token.
// It appends (id, start, end) triples, with byte offsets relative to word, to
// dst and reports whether the word was known.
func (wp *wordPieceModel) wordPiece(t *Tokenizer, word string, dst []piece) ([]piece, bool) {
	if utf8.RuneCountInString(word) > wp.maxChars {
		return append(dst, piece{id: t.unkID, start: 0, end: len(word)}), false
	}
	n := len(dst)
	buf := make([]byte, 0, len(wp.prefix)+len(word))
	for start := 0; start < len(word); {
		end := len(word)
		found := -1
		for start < end {
			buf = buf[:0]
			if start > 0 {
				buf = append(buf, wp.prefix...)
			}
			buf = append(buf, word[start:end]...)
			if id, ok := t.ids[string(buf)]; ok {
				found = id
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if found < 0 {
			return append(dst[:n], piece{id: t.unkID, start: 0, end: len(word)}), false
		}
		dst = append(dst, piece{id: found, start: start, end: end})
		start = end
	}
	return dst, true
}

// piece is one token of a word: its id and byte range.
type piece struct {
	id         int
	start, end int
	// tok is the token's text in the encoding when it is not the
	// vocabulary entry of id (Unigram's unknown pieces keep their text).
	tok string
}
