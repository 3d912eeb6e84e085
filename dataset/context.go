package dataset

import (
	"strings"
	"unicode"
)

// DefaultMinContext is the fewest context words (see ContextWords) a built
// item may have when SplitOptions.MinContext or ValidateOptions.MinContext
// is 0. It was chosen by measuring the shipped model per context-word bin
// on the WordNet eval set: see "Minimum context" in docs/DATA.md.
const DefaultMinContext = 3

// ContextWords counts the context words of an item text: the words other
// than its blanks. Every [MASK] is replaced by a space, the text is split
// at white space, and a token counts when it holds at least one letter or
// digit. So "drugged and [MASK]" has 2, "lite (or [MASK]) mayonnaise" has
// 3 ("lite", "(or", "mayonnaise"), "[MASK] [MASK]" and "— [MASK] !" have 0.
func ContextWords(text string) int {
	n := 0
	for _, tok := range strings.Fields(strings.ReplaceAll(text, MaskToken, " ")) {
		for _, r := range tok {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				n++
				break
			}
		}
	}
	return n
}

// minContext resolves a MinContext option: 0 means DefaultMinContext, a
// negative value means no minimum (returned as 0).
func minContext(n int) int {
	switch {
	case n == 0:
		return DefaultMinContext
	case n < 0:
		return 0
	}
	return n
}
