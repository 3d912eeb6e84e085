package tokenize

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file holds the general normalisers of Hugging Face tokenizer.json
// files (NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend,
// Precompiled and Sequence of them), as SentencePiece-based tokenizers such
// as XLM-RoBERTa's use them. They edit a normalized text the way Hugging
// Face's NormalizedString does, including how every output character is
// aligned with the original text, so that token offsets agree.

// edit is one character of a normaliser's output and how it relates to the
// characters it replaces (Hugging Face's (char, change) pairs): change 0
// replaces the next input character, 1 inserts a character, and -n
// replaces the next input character and removes the n after it.
type edit struct {
	r      rune
	change int
}

// transform rewrites n from edits as NormalizedString::transform does;
// skip is the number of input characters removed before the first edit.
// A replacing character takes the alignment of the character it replaces;
// an inserted one the alignment of the byte before it (the segment start
// when there is none).
func (n *normalized) transform(edits []edit, skip int) {
	text := make([]byte, 0, len(n.text))
	align := make([][2]int, 0, len(n.align))
	off := 0
	for range skip {
		if off >= len(n.text) {
			break
		}
		_, size := utf8.DecodeRune(n.text[off:])
		off += size
	}
	for _, e := range edits {
		var a [2]int
		switch {
		case e.change > 0 && off < 1:
			a = [2]int{n.base, n.base}
		case e.change > 0:
			a = n.align[off-1]
		case off < len(n.align):
			a = n.align[off]
		default:
			a = [2]int{n.base, n.base}
		}
		if e.change <= 0 && off < len(n.text) {
			_, size := utf8.DecodeRune(n.text[off:])
			off += size
			for k := 0; k < -e.change && off < len(n.text); k++ {
				_, size := utf8.DecodeRune(n.text[off:])
				off += size
			}
		}
		var buf [utf8.UTFMax]byte
		k := utf8.EncodeRune(buf[:], e.r)
		text = append(text, buf[:k]...)
		for range k {
			align = append(align, a)
		}
	}
	n.text, n.align = text, align
}

// normStep is one normaliser of a chain.
type normStep interface {
	apply(n *normalized)
}

// normChain is a Sequence of normalisers (or a single one).
type normChain []normStep

// normalize normalises s, whose first byte sits at offset base in the
// original text.
func (c normChain) normalize(s string, base int) normalized {
	n := identity(s, base)
	n.base = base
	for _, st := range c {
		st.apply(&n)
	}
	return n
}

// unicodeNorm is one of the NFC, NFD, NFKC and NFKD normalisers. Hugging
// Face computes them with the unicode-normalization-alignments crate, whose
// decomposition marks every character after the first of a decomposition
// as inserted, reorders combining marks with their marks, and whose
// composition merges the marks of composed characters; this follows the
// same steps.
type unicodeNorm struct {
	compat, compose bool
}

func (u unicodeNorm) apply(n *normalized) {
	s := string(n.text)
	if u.quick(s) {
		return
	}
	n.transform(u.edits(s), 0)
}

// quick reports whether s is unchanged by the normalisation and is plain
// ASCII, so that the alignment stays as it is.
func (u unicodeNorm) quick(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// cccEdit is a decomposed character with its canonical combining class.
type cccEdit struct {
	edit
	ccc uint8
}

func (u unicodeNorm) edits(s string) []edit {
	form := norm.NFD
	if u.compat {
		form = norm.NFKD
	}
	// Decompose each character fully, then sort runs of non-starters by
	// combining class (stably), carrying the change marks along.
	var dec []cccEdit
	pending := 0 // start of the run not yet sorted
	sortPending := func() {
		run := dec[pending:]
		for i := 1; i < len(run); i++ {
			for j := i; j > 0 && run[j-1].ccc > run[j].ccc; j-- {
				run[j-1], run[j] = run[j], run[j-1]
			}
		}
		pending = len(dec)
	}
	var buf [utf8.UTFMax]byte
	for _, r := range s {
		k := utf8.EncodeRune(buf[:], r)
		decomposed := form.String(string(buf[:k]))
		if unicode.Is(hfNormNoCanonical, r) || u.compat && unicode.Is(hfNormNoCompat, r) {
			decomposed = string(buf[:k]) // newer than Hugging Face's tables
		}
		first := true
		for _, d := range decomposed {
			ccc := cccOf(d)
			if ccc == 0 {
				sortPending()
			}
			ch := 1
			if first {
				ch = 0
			}
			first = false
			dec = append(dec, cccEdit{edit{d, ch}, ccc})
		}
	}
	sortPending()
	if !u.compose {
		out := make([]edit, len(dec))
		for i, d := range dec {
			out[i] = d.edit
		}
		return out
	}
	return recompose(dec)
}

// cccOf returns the canonical combining class of r (0 for the marks that
// Hugging Face's older tables do not know).
func cccOf(r rune) uint8 {
	if unicode.Is(hfNormStarter, r) {
		return 0
	}
	var buf [utf8.UTFMax]byte
	k := utf8.EncodeRune(buf[:], r)
	return norm.NFD.PropertiesString(string(buf[:k])).CCC()
}

// composePair returns the primary composite of a and b, if there is one.
// The composite must be canonically equivalent to a and b: x/text's
// composition table confuses a supplementary-plane starter with the BMP
// character of the same low 16 bits (it composes U+10041 and U+0301 to
// U+00C1).
func composePair(a, b rune) (rune, bool) {
	pair := string(a) + string(b)
	s := norm.NFC.String(pair)
	r, size := utf8.DecodeRuneInString(s)
	if size != len(s) || r == a || norm.NFD.String(s) != norm.NFD.String(pair) || unicode.Is(hfNormNoCanonical, r) {
		return 0, false
	}
	return r, true
}

// recompose is the canonical composition of decomposed characters, as the
// alignment crate's Recompositions iterator does it: a composed character's
// change is the sum of its parts' changes minus one.
func recompose(dec []cccEdit) []edit {
	var out, buffer []edit
	var composee *edit
	var c edit
	lastCCC := -1
	for _, d := range dec {
		ch, ccc := d.edit, int(d.ccc)
		if composee == nil {
			if ccc != 0 {
				out = append(out, ch)
				continue
			}
			c = ch
			composee = &c
			continue
		}
		if lastCCC < 0 {
			if r, ok := composePair(composee.r, ch.r); ok {
				*composee = edit{r, composee.change + ch.change - 1}
				continue
			}
			if ccc == 0 {
				out = append(out, *composee)
				*composee = ch
				continue
			}
			buffer = append(buffer, ch)
			lastCCC = ccc
			continue
		}
		if lastCCC >= ccc {
			if ccc == 0 {
				out = append(out, *composee)
				out = append(out, buffer...)
				buffer = buffer[:0]
				*composee = ch
				lastCCC = -1
				continue
			}
			buffer = append(buffer, ch)
			lastCCC = ccc
			continue
		}
		if r, ok := composePair(composee.r, ch.r); ok {
			*composee = edit{r, composee.change + ch.change - 1}
			continue
		}
		buffer = append(buffer, ch)
		lastCCC = ccc
	}
	if composee != nil {
		out = append(out, *composee)
	}
	return append(out, buffer...)
}

// lowercaseNorm is the Lowercase normaliser (Rust's full lowercase
// mapping; extra characters are inserted).
type lowercaseNorm struct{}

func (lowercaseNorm) apply(n *normalized) {
	edits := make([]edit, 0, len(n.text))
	for _, r := range string(n.text) {
		switch {
		case r < utf8.RuneSelf:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			edits = append(edits, edit{r, 0})
		case r == 0x130:
			edits = append(edits, edit{'i', 0}, edit{0x307, 1})
		default:
			edits = append(edits, edit{toLower(r), 0})
		}
	}
	n.transform(edits, 0)
}

// stripNorm is the Strip normaliser: it removes leading and/or trailing
// whitespace (Unicode White_Space); the other characters keep their
// alignment.
type stripNorm struct{ left, right bool }

func (s stripNorm) apply(n *normalized) {
	start, end := 0, len(n.text)
	if s.left {
		for start < end {
			r, size := utf8.DecodeRune(n.text[start:end])
			if !isWhitespace(r) {
				break
			}
			start += size
		}
	}
	if s.right {
		for end > start {
			r, size := utf8.DecodeLastRune(n.text[start:end])
			if !isWhitespace(r) {
				break
			}
			end -= size
		}
	}
	n.text, n.align = n.text[start:end], n.align[start:end]
}

// prependNorm is the Prepend normaliser: a non-empty text gets prefix in
// front, aligned with its first character.
type prependNorm struct{ prefix string }

func (p prependNorm) apply(n *normalized) {
	if len(n.text) == 0 || p.prefix == "" {
		return
	}
	a := n.align[0]
	text := make([]byte, 0, len(p.prefix)+len(n.text))
	align := make([][2]int, 0, cap(text))
	text = append(append(text, p.prefix...), n.text...)
	for range len(p.prefix) {
		align = append(align, a)
	}
	n.text, n.align = text, append(align, n.align...)
}

// replaceNorm is the Replace normaliser: every non-overlapping match of a
// literal string or a regular expression becomes content. As in Hugging
// Face, all of content is aligned with the last character of the match.
type replaceNorm struct {
	literal string         // the pattern when re is nil
	re      *regexp.Regexp // a Regex pattern
	content string
}

func (p replaceNorm) apply(n *normalized) {
	var matches [][]int
	switch {
	case p.re != nil:
		matches = p.re.FindAllIndex(n.text, -1)
	case p.literal != "":
		s := string(n.text)
		for i := 0; i < len(s); {
			j := strings.Index(s[i:], p.literal)
			if j < 0 {
				break
			}
			matches = append(matches, []int{i + j, i + j + len(p.literal)})
			i += j + len(p.literal)
		}
	}
	if len(matches) == 0 {
		return
	}
	text := make([]byte, 0, len(n.text))
	align := make([][2]int, 0, len(n.align))
	last := 0
	for _, m := range matches {
		start, end := m[0], m[1]
		text = append(text, n.text[last:start]...)
		align = append(align, n.align[last:start]...)
		a := [2]int{n.base, n.base}
		if end > 0 {
			a = n.align[end-1]
		}
		text = append(text, p.content...)
		for range len(p.content) {
			align = append(align, a)
		}
		last = end
	}
	n.text = append(text, n.text[last:]...)
	n.align = append(align, n.align[last:]...)
}

// regexFor compiles a Hugging Face Replace pattern (Oniguruma syntax) with
// Go's regexp, which agrees with it on the patterns tokenizer.json files
// use (character classes, repetitions, alternations) once the shorthand
// classes are made Unicode-aware as Oniguruma's are (see onigClasses).
func regexFor(pattern string) (*regexp.Regexp, error) {
	translated, err := onigClasses(pattern)
	if err != nil {
		return nil, fmt.Errorf("%w: Replace pattern %q: %v", ErrUnsupported, pattern, err)
	}
	re, err := regexp.Compile(translated)
	if err != nil {
		return nil, fmt.Errorf("%w: Replace pattern %q is not a regular expression Go can run: %v", ErrUnsupported, pattern, err)
	}
	return re, nil
}

// Oniguruma's shorthand classes on UTF-8 text: \s is White_Space, \d a
// decimal digit, \w a letter, mark, decimal digit or connector
// punctuation; Go's are ASCII only.
const (
	onigSpace = `\t-\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`
	onigDigit = `\p{Nd}`
	onigWord  = `\p{L}\p{M}\p{Nd}\p{Pc}`
)

// onigClasses rewrites \s, \d and \w (and, outside brackets, \S, \D and
// \W) of an Oniguruma pattern as the Unicode classes Oniguruma gives them.
// A negated shorthand inside brackets has no such rewriting and is an
// error.
func onigClasses(pattern string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern):
			i++
			var set string
			switch pattern[i] {
			case 's', 'S':
				set = onigSpace
			case 'd', 'D':
				set = onigDigit
			case 'w', 'W':
				set = onigWord
			default:
				b.WriteByte(c)
				b.WriteByte(pattern[i])
				continue
			}
			negated := pattern[i] >= 'A' && pattern[i] <= 'Z'
			switch {
			case inClass && negated:
				return "", fmt.Errorf(`\%c inside brackets`, pattern[i])
			case inClass:
				b.WriteString(set)
			case negated:
				b.WriteString("[^" + set + "]")
			default:
				b.WriteString("[" + set + "]")
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' (after an optional '^') right after '[' is literal.
			if i+1 < len(pattern) && pattern[i+1] == '^' {
				i++
				b.WriteByte('^')
			}
			if i+1 < len(pattern) && pattern[i+1] == ']' {
				i++
				b.WriteByte(']')
			}
		case c == '[' && inClass && strings.HasPrefix(pattern[i:], "[:"):
			// A POSIX class such as [:alpha:] inside brackets.
			end := strings.Index(pattern[i:], ":]")
			if end < 0 {
				end = len(pattern) - i - 2
			}
			b.WriteString(pattern[i : i+end+2])
			i += end + 1
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
