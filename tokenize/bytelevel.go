package tokenize

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// byteLevel maps every byte to the printable character that stands for it
// in byte-level BPE vocabularies (GPT-2's bytes_to_unicode): the printable
// Latin-1 bytes '!'…'~', '¡'…'¬' and '®'…'ÿ' stand for themselves, the
// other 68 bytes, in increasing order, for U+0100, U+0101, … (so the space
// is 'Ġ', U+0120, and the newline 'Ċ', U+010A).
var byteLevel = func() (m [256]rune) {
	n := rune(0)
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = 256 + n
			n++
		}
	}
	return m
}()

// byteLevelMax is the largest character of the byte-level alphabet.
const byteLevelMax = 256 + 67

// byteOfChar inverts byteLevel: byteOfChar[r] is the byte r stands for, or
// -1 for a character outside the alphabet.
var byteOfChar = func() (m [byteLevelMax + 1]int16) {
	for i := range m {
		m[i] = -1
	}
	for b, r := range byteLevel {
		m[r] = int16(b)
	}
	return m
}()

// appendByteLevel appends the byte-level form of s to dst.
func appendByteLevel(dst []byte, s []byte) []byte {
	for _, b := range s {
		dst = utf8.AppendRune(dst, byteLevel[b])
	}
	return dst
}

// isGPT2Letter, isGPT2Number and isGPT2Space are the \p{L}, \p{N} and \s
// classes of the GPT-2 split pattern as Hugging Face's regex engine
// (Oniguruma, with its own Unicode version) sees them: Go's tables,
// corrected by the exception tables in unicode_tables.go. (\s is Unicode
// White_Space, the same set as unicode.IsSpace.)
func isGPT2Letter(r rune) bool {
	return classWith(r, unicode.IsLetter, gpt2LetterExtra, gpt2LetterMissing)
}

func isGPT2Number(r rune) bool {
	return classWith(r, unicode.IsNumber, gpt2NumberExtra, gpt2NumberMissing)
}

func isGPT2Space(r rune) bool {
	return classWith(r, unicode.IsSpace, gpt2SpaceExtra, gpt2SpaceMissing)
}

func classWith(r rune, goClass func(rune) bool, extra, missing *unicode.RangeTable) bool {
	if r < 0x80 {
		return goClass(r)
	}
	if unicode.Is(extra, r) {
		return true
	}
	if unicode.Is(missing, r) {
		return false
	}
	return goClass(r)
}

// gpt2Class is the class of a character in the GPT-2 split pattern.
type gpt2Class uint8

const (
	classOther gpt2Class = iota // neither space, letter nor number
	classSpace
	classLetter
	classNumber
)

func classify(r rune) gpt2Class {
	switch {
	case isGPT2Space(r):
		return classSpace
	case isGPT2Letter(r):
		return classLetter
	case isGPT2Number(r):
		return classNumber
	}
	return classOther
}

// splitGPT2 splits s as Hugging Face's ByteLevel pre-tokeniser does with
// use_regex, by the GPT-2 pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// applied leftmost-first, each match a piece of its own. The lookahead of
// \s+(?!\S) (which Go's regexp lacks) is done by hand: a run of whitespace
// followed by a non-space character leaves its last character to the next
// piece, so that " word" keeps its space. Invalid UTF-8 bytes count as
// U+FFFD (class "other"), one byte each. It returns the end offsets of the
// pieces.
func splitGPT2(s []byte, dst []int) []int {
	// at returns the class and size of the character at i.
	at := func(i int) (gpt2Class, int) {
		r, size := utf8.DecodeRune(s[i:])
		return classify(r), size
	}
	// run returns the end of the run of class c that starts at i.
	run := func(i int, c gpt2Class) int {
		for i < len(s) {
			ci, size := at(i)
			if ci != c {
				break
			}
			i += size
		}
		return i
	}
	for i := 0; i < len(s); {
		if n := contraction(s[i:]); n > 0 {
			i += n
			dst = append(dst, i)
			continue
		}
		c, size := at(i)
		if s[i] == ' ' && i+1 < len(s) {
			// " ?X+" with the space: the character after it decides.
			if c2, size2 := at(i + 1); c2 != classSpace {
				i = run(i+1+size2, c2)
				dst = append(dst, i)
				continue
			}
		}
		if c != classSpace {
			i = run(i+size, c)
			dst = append(dst, i)
			continue
		}
		// Whitespace: \s+(?!\S), else \s+.
		end := run(i, classSpace)
		if end < len(s) {
			// Followed by a non-space: give back its last character,
			// unless the run is a single character.
			_, last := utf8.DecodeLastRune(s[i:end])
			if end-last > i {
				end -= last
			}
		}
		i = end
		dst = append(dst, i)
	}
	return dst
}

// contraction returns the length of the English contraction ('s, 't, 're,
// 've, 'm, 'll, 'd; lowercase only) that s starts with, or 0.
func contraction(s []byte) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	switch s[1] {
	case 's', 't', 'm', 'd':
		return 2
	}
	if len(s) >= 3 {
		switch string(s[1:3]) {
		case "re", "ve", "ll":
			return 3
		}
	}
	return 0
}

// decodeByteLevel is Hugging Face's ByteLevel decoder: each token made of
// byte-level characters turns back into its bytes (any other token, such
// as "<s>", is taken as it is), and the bytes are read as UTF-8 with every
// maximal invalid subsequence replaced by U+FFFD, as Rust's
// String::from_utf8_lossy does.
func decodeByteLevel(tokens []string) string {
	var raw []byte
	for _, tok := range tokens {
		start := len(raw)
		ok := true
		for _, r := range tok {
			if r > byteLevelMax || byteOfChar[r] < 0 {
				ok = false
				break
			}
			raw = append(raw, byte(byteOfChar[r]))
		}
		if !ok {
			raw = append(raw[:start], tok...)
		}
	}
	return lossyUTF8(raw)
}

// lossyUTF8 reads b as UTF-8, replacing every maximal subpart of an
// ill-formed sequence (Unicode's "substitution of maximal subparts", which
// Rust follows) by U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return sb.String()
}

// maximalSubpart returns the length of the ill-formed sequence at the start
// of b: a lead byte and the continuation bytes that could still have
// completed it, at least 1.
func maximalSubpart(b []byte) int {
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case 0xF1 <= c && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := b[n]
		if k > 0 {
			lo, hi = 0x80, 0xBF
		}
		if c < lo || c > hi {
			break
		}
		n++
	}
	return n
}
