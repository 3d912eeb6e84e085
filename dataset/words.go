package dataset

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// A Word is one word of a sentence: its text and byte offsets.
type Word struct {
	Text       string
	Start, End int
}

// Words splits s into words: maximal runs of letters, digits, marks and
// inner hyphens. Apostrophes and other punctuation end a word, so "dog's"
// gives "dog" and "s".
func Words(s string) []Word {
	var out []Word
	start := -1
	for i := 0; i <= len(s); {
		r, size := rune(0), 1
		if i < len(s) {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		word := i < len(s) && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r))
		if i < len(s) && r == '-' && start >= 0 && i+1 < len(s) {
			next, _ := utf8.DecodeRuneInString(s[i+1:])
			word = unicode.IsLetter(next) || unicode.IsDigit(next)
		}
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			out = append(out, Word{Text: s[start:i], Start: start, End: i})
			start = -1
		}
		i += size
	}
	return out
}

// maskWords replaces the words at the given indexes with MaskToken and
// returns the new text and the replaced words (the gold answers), in order.
func maskWords(s string, words []Word, idx []int) (string, []string) {
	var b strings.Builder
	gold := make([]string, 0, len(idx))
	last := 0
	for _, i := range idx {
		w := words[i]
		b.WriteString(s[last:w.Start])
		b.WriteString(MaskToken)
		gold = append(gold, w.Text)
		last = w.End
	}
	b.WriteString(s[last:])
	return b.String(), gold
}

// Morphology finds the base forms of inflected English words, in the manner
// of WordNet's morphy: exception lists first, then suffix rules.
type Morphology struct {
	// exc maps an inflected form to its base forms.
	exc map[string][]string
}

// NewMorphology returns a Morphology with the given exception lists
// (inflected form → base forms), e.g. from WordNet's *.exc files.
func NewMorphology(exceptions map[string][]string) *Morphology {
	if exceptions == nil {
		exceptions = map[string][]string{}
	}
	return &Morphology{exc: exceptions}
}

var suffixRules = []struct{ suffix, repl string }{
	{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
	{"men", "man"}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""},
	{"ied", "y"}, {"ing", "e"}, {"ing", ""}, {"er", ""}, {"est", ""}, {"er", "e"},
	{"est", "e"},
}

// Bases returns the possible base forms of the lower-case word w, w itself
// first. Doubled final consonants are undone ("running" → "run").
func (m *Morphology) Bases(w string) []string {
	out := []string{w}
	out = append(out, m.exc[w]...)
	for _, r := range suffixRules {
		if len(w) <= len(r.suffix)+1 || !strings.HasSuffix(w, r.suffix) {
			continue
		}
		base := w[:len(w)-len(r.suffix)] + r.repl
		out = append(out, base)
		if r.repl == "" && (r.suffix == "ed" || r.suffix == "ing" || r.suffix == "er" || r.suffix == "est") {
			if n := len(base); n >= 3 && base[n-1] == base[n-2] && !strings.ContainsRune("aeiou", rune(base[n-1])) {
				out = append(out, base[:n-1])
			}
		}
	}
	return out
}

// matches reports whether the word w (any case) is an inflection of lemma
// (lower case).
func (m *Morphology) matches(w, lemma string) bool {
	lw := strings.ToLower(w)
	if lw == lemma {
		return true
	}
	for _, b := range m.Bases(lw) {
		if b == lemma {
			return true
		}
	}
	return false
}

// findLemma returns, for every occurrence of the (possibly multiword)
// lemma in words, the indexes of its words. Each word of the lemma may be
// inflected.
func (m *Morphology) findLemma(words []Word, lemma []string) [][]int {
	var out [][]int
	for i := 0; i+len(lemma) <= len(words); i++ {
		ok := true
		for j, part := range lemma {
			if !m.matches(words[i+j].Text, part) {
				ok = false
				break
			}
		}
		if ok {
			idx := make([]int, len(lemma))
			for j := range lemma {
				idx[j] = i + j
			}
			out = append(out, idx)
			i += len(lemma) - 1
		}
	}
	return out
}
