package tokenize

import "unicode"

// The character classes below follow Go's Unicode tables, corrected by the
// exception tables in unicode_tables.go where Hugging Face tokenizers (whose
// Rust crates carry their own, different Unicode versions) classify a
// character differently. TestUnicodeParityExhaustive checks every code point
// against the real library.

// isOther reports whether Hugging Face's crate classes r as "other": general
// category Cc, Cf, Co or Cs in its tables. (Its check for unassigned
// characters, Cn, matches nothing, so unassigned code points are kept.)
func isOther(r rune) bool {
	if unicode.Is(hfOtherExtra, r) {
		return true
	}
	if unicode.Is(hfOtherMissing, r) {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

// isMarkNonspacing reports whether r has general category Mn as the Hugging
// Face crate sees it.
func isMarkNonspacing(r rune) bool {
	if unicode.Is(hfMnExtra, r) {
		return true
	}
	if unicode.Is(hfMnMissing, r) {
		return false
	}
	return unicode.Is(unicode.Mn, r)
}

// isPunct reports whether r has general category P as the Hugging Face
// crate sees it.
func isPunct(r rune) bool {
	if unicode.Is(hfPunctExtra, r) {
		return true
	}
	if unicode.Is(hfPunctMissing, r) {
		return false
	}
	return unicode.IsPunct(r)
}

// toLower returns the simple lowercase mapping of r as Rust's standard
// library applies it.
func toLower(r rune) rune {
	if l, ok := hfLower(r); ok {
		return l
	}
	return unicode.ToLower(r)
}
