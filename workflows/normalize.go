package workflows

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// AnswerSeparator joins the blanks of a multi-blank answer in
// LabelDecision.Label and the vote keys (with spaces around it), and splits
// the old single-string Answer.Answer of a multi-blank item. An answer to
// an item with several blanks may not contain it.
const AnswerSeparator = "|"

// invisibleNames names the invisible characters annotators most often
// paste by accident.
var invisibleNames = map[rune]string{
	0x200B: "zero-width space",
	0x200C: "zero-width non-joiner",
	0x200D: "zero-width joiner",
	0x2060: "word joiner",
	0xFEFF: "byte order mark",
	0x00AD: "soft hyphen",
	0x200E: "left-to-right mark",
	0x200F: "right-to-left mark",
	0x061C: "Arabic letter mark",
}

// NormalizeAnswer returns the form of one blank's answer that votes are
// counted on: valid UTF-8, Unicode NFC, surrounding white space trimmed and
// inner runs of white space made one space, and, when fold is set (uncased
// models, the default), case folded. Text with an invisible format or
// control character (zero-width space, byte order mark, bidi controls, any
// other Unicode Cf or Cc character) is refused with a reason rather than
// cleaned, so that "dog" and "dog" followed by a zero-width space never
// become two different votes nor one silently. multi is set for items with
// several blanks, whose answers may not contain AnswerSeparator.
func NormalizeAnswer(s string, fold, multi bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("the answer is not valid UTF-8")
	}
	s = norm.NFC.String(s)
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.IndexFunc(s, invisible); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		name := invisibleNames[r]
		switch {
		case name != "":
		case unicode.Is(unicode.Cc, r):
			name = "control character"
		case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
			name = "bidirectional text control"
		default:
			name = "invisible format character"
		}
		return "", fmt.Errorf("the answer contains an invisible character, U+%04X (%s): retype it without", r, name)
	}
	if s == "" {
		return "", fmt.Errorf("empty answer")
	}
	if len(s) > MaxAnswerBytes {
		return "", fmt.Errorf("the answer is %d bytes long, longer than %d", len(s), MaxAnswerBytes)
	}
	if multi && strings.Contains(s, AnswerSeparator) {
		return "", fmt.Errorf("the answer %q contains %q, which separates the blanks", s, AnswerSeparator)
	}
	if fold {
		s = norm.NFC.String(cases.Fold().String(s))
	}
	return s, nil
}

func invisible(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf)
}

// voteKey is the key of an answer's votes: its normalised blanks joined.
func voteKey(blanks []string) string {
	return strings.Join(blanks, " "+AnswerSeparator+" ")
}

// masks is the number of [MASK] blanks of an item's text (at least 1).
func masks(text string) int {
	return max(1, strings.Count(text, "[MASK]"))
}

// blanksOf returns the raw blanks of an answer for an item with n blanks:
// Answers when given, else the old single-string Answer (split on
// AnswerSeparator when n > 1).
func blanksOf(a Answer, n int) ([]string, error) {
	switch {
	case len(a.Answers) > 0 && a.Answer != "":
		return nil, fmt.Errorf("item %q: give answers or answer, not both", a.ItemID)
	case len(a.Answers) > 0:
		return a.Answers, nil
	case strings.TrimSpace(a.Answer) == "":
		return nil, fmt.Errorf("empty answer for item %q", a.ItemID)
	case n > 1:
		return strings.Split(a.Answer, AnswerSeparator), nil
	}
	return []string{a.Answer}, nil
}

// normalizeAnswer checks an answer for an item with n blanks and returns
// its normalised blanks; the error says what is wrong, for the annotator.
func normalizeAnswer(a Answer, n int, fold bool) ([]string, error) {
	raw, err := blanksOf(a, n)
	if err != nil {
		return nil, err
	}
	if len(raw) != n {
		return nil, fmt.Errorf("item %q has %d blank(s) ([MASK]) but the answer has %d: give one answer per blank, in order", a.ItemID, n, len(raw))
	}
	out := make([]string, n)
	for i, b := range raw {
		v, err := NormalizeAnswer(b, fold, n > 1)
		if err != nil {
			if n > 1 {
				return nil, fmt.Errorf("item %q, blank %d: %w", a.ItemID, i+1, err)
			}
			return nil, fmt.Errorf("item %q: %w", a.ItemID, err)
		}
		out[i] = v
	}
	return out, nil
}
