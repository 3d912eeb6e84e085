package tokenize

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalizer is the BERT text normaliser of Hugging Face tokenizers
// (BertNormalizer), reimplemented so that it matches the Rust library
// character for character and keeps an alignment from every normalised byte
// to the original text.
type Normalizer struct {
	// CleanText drops NUL, U+FFFD, control, format, private-use, surrogate and
	// unassigned characters and turns every Unicode whitespace character into
	// an ASCII space.
	CleanText bool
	// HandleChineseChars puts spaces around CJK ideographs so that each
	// becomes a word of its own.
	HandleChineseChars bool
	// StripAccents decomposes text (NFD) and drops non-spacing marks.
	StripAccents bool
	// Lowercase applies the full Unicode lowercase mapping.
	Lowercase bool
}

// normalized is text after normalisation with, for each of its bytes, the
// byte range of the original character it came from.
type normalized struct {
	text  []byte
	align [][2]int
	// base is where the normalised segment starts in the original text:
	// the alignment of characters inserted before any other.
	base int
}

func (n *normalized) appendRune(r rune, start, end int) {
	var buf [utf8.UTFMax]byte
	k := utf8.EncodeRune(buf[:], r)
	n.text = append(n.text, buf[:k]...)
	for range k {
		n.align = append(n.align, [2]int{start, end})
	}
}

// originalRange maps the normalised byte range [start, end) back to the
// original text, as Hugging Face does: from the start of the first byte's
// character to the end of the last byte's character.
func (n *normalized) originalRange(start, end int) (int, int) {
	if start >= end || start >= len(n.align) {
		return 0, 0
	}
	return n.align[start][0], n.align[end-1][1]
}

// Normalize returns the normalised form of s.
func (nz Normalizer) Normalize(s string) string {
	return string(nz.normalize(s, 0).text)
}

// normalize normalises s, whose first byte sits at offset base in the
// original text.
func (nz Normalizer) normalize(s string, base int) normalized {
	out := normalized{text: make([]byte, 0, len(s)), align: make([][2]int, 0, len(s))}
	var tmp [8]rune
	for i, r := range s {
		size := utf8.RuneLen(r)
		if r == utf8.RuneError {
			// Invalid UTF-8 decodes as U+FFFD of length 1; keep real width.
			_, size = utf8.DecodeRuneInString(s[i:])
		}
		start, end := base+i, base+i+size
		if nz.CleanText {
			if r == 0 || r == utf8.RuneError || isControl(r) {
				continue
			}
			if isWhitespace(r) {
				r = ' '
			}
		}
		chinese := nz.HandleChineseChars && isChineseChar(r)
		if chinese {
			out.appendRune(' ', start, end)
		}
		runes := append(tmp[:0], r)
		if nz.StripAccents {
			runes = decomposeStrip(r, tmp[:0])
		}
		for _, c := range runes {
			if nz.Lowercase {
				appendLower(&out, c, start, end)
			} else {
				out.appendRune(c, start, end)
			}
		}
		if chinese {
			out.appendRune(' ', start, end)
		}
	}
	return out
}

// decomposeStrip returns the canonical decomposition (NFD) of r without its
// non-spacing marks.
func decomposeStrip(r rune, dst []rune) []rune {
	if r < 0x80 || unicode.Is(hfNoDecompose, r) {
		if !isMarkNonspacing(r) {
			dst = append(dst, r)
		}
		return dst
	}
	var buf [utf8.UTFMax]byte
	k := utf8.EncodeRune(buf[:], r)
	d := norm.NFD.Append(nil, buf[:k]...)
	for _, c := range string(d) {
		if !isMarkNonspacing(c) {
			dst = append(dst, c)
		}
	}
	return dst
}

// appendLower appends the full lowercase mapping of r (Unicode
// SpecialCasing's unconditional mappings included, as Rust's
// char::to_lowercase does).
func appendLower(out *normalized, r rune, start, end int) {
	if r < 0x80 {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		out.appendRune(r, start, end)
		return
	}
	if r == 0x130 { // LATIN CAPITAL LETTER I WITH DOT ABOVE → i + COMBINING DOT ABOVE
		out.appendRune('i', start, end)
		out.appendRune(0x307, start, end)
		return
	}
	out.appendRune(toLower(r), start, end)
}

// isWhitespace reports whether Hugging Face treats r as whitespace: every
// character with the Unicode White_Space property (Rust's
// char::is_whitespace).
func isWhitespace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ':
		return true
	}
	if r < 0x80 {
		return false
	}
	return unicode.Is(unicode.White_Space, r)
}

// isControl reports whether Hugging Face's clean-text step drops r: general
// categories Cc, Cf, Cn, Co and Cs, except tab, line feed and carriage
// return.
func isControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	if r >= 0x20 && r < 0x7f {
		return false
	}
	return isOther(r)
}

// isPunctuation reports whether BertPreTokenizer splits r off as a
// punctuation character: any ASCII punctuation or a character of general
// category P.
func isPunctuation(r rune) bool {
	if r < 0x80 {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return isPunct(r)
}

// isChineseChar reports whether r lies in the CJK ranges that Hugging Face's
// BertNormalizer pads with spaces (its ranges, including their quirks).
func isChineseChar(r rune) bool {
	switch {
	case r >= 0x4E00 && r <= 0x9FFF,
		r >= 0x3400 && r <= 0x4DBF,
		r >= 0x20000 && r <= 0x2A6DF,
		r >= 0x2A700 && r <= 0x2B73F,
		r >= 0x2B740 && r <= 0x2B81F,
		r >= 0x2B920 && r <= 0x2CEAF,
		r >= 0xF900 && r <= 0xFAFF,
		r >= 0x2F800 && r <= 0x2FA1F:
		return true
	}
	return false
}
