package dataset

import (
	"strings"
	"unicode"
)

// AdaptationText returns a pool item's text as it enters the adaptation
// corpus (continued masked-LM pretraining on the pool before active
// learning), and false when the item has nothing to learn from.
//
// The text is kept whole, its [MASK] blanks included. A pool has no
// answers, so a blank can be neither filled with the truth nor predicted;
// left in place it is an input token the model sees exactly as it will at
// scoring and evaluation, and masked-LM training never picks it as a
// target (special tokens are not masked). The alternatives are worse:
// deleting the blank joins words that were never adjacent ("the [MASK] of
// the" becomes "the of the"), filling it with the model's own guess trains
// the model on its current mistakes, and dropping every text with a blank
// drops the whole pool. A text with no letter or digit besides its blanks
// ("[MASK] [MASK]", "[MASK] .") is left out.
func AdaptationText(text string) (string, bool) {
	rest := strings.ReplaceAll(text, MaskToken, " ")
	for _, r := range rest {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return text, true
		}
	}
	return "", false
}
