package tokenize

import (
	"encoding/json"
	"fmt"
	"go/format"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// TestRegenerateUnicodeTables rewrites unicode_tables.go from an exhaustive
// probe of the Hugging Face library. It runs only when
// TOKENIZE_REGENERATE_TABLES=1 (after upgrading tools/hfparity):
//
//	TOKENIZE_REGENERATE_TABLES=1 go test -run TestRegenerateUnicodeTables ./tokenize/
func TestRegenerateUnicodeTables(t *testing.T) {
	if os.Getenv("TOKENIZE_REGENERATE_TABLES") != "1" {
		t.Skip("set TOKENIZE_REGENERATE_TABLES=1 to regenerate unicode_tables.go")
	}
	h := startHF(t)
	var cps []rune
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if (r >= 0xD800 && r <= 0xDFFF) || r == '#' {
			continue
		}
		cps = append(cps, r)
	}
	res := map[string]map[string]string{}
	for _, cfg := range []string{"clean", "strip", "lower"} {
		bert := map[string]any{"cleanText": cfg == "clean", "handleChineseChars": false, "stripAccents": cfg == "strip", "lowercase": cfg == "lower"}
		res[cfg] = map[string]string{}
		for lo := 0; lo < len(cps); lo += 8192 {
			group := cps[lo:min(lo+8192, len(cps))]
			var sb strings.Builder
			for _, r := range group {
				sb.WriteByte('#')
				sb.WriteRune(r)
			}
			sb.WriteByte('#')
			var want []string
			h.call(t, map[string]any{"op": "normalize", "bert": bert, "texts": []string{sb.String()}}, &want)
			parts := strings.Split(want[0], "#")
			for i, r := range group {
				if parts[i+1] != string(r) {
					res[cfg][string(rune(r))] = parts[i+1]
				}
			}
		}
	}
	punct := map[string]bool{}
	for lo := 0; lo < len(cps); lo += 8192 {
		group := cps[lo:min(lo+8192, len(cps))]
		texts := make([]string, len(group))
		for i, r := range group {
			texts[i] = "x" + string(r) + "x"
		}
		var want [][]json.RawMessage
		h.call(t, map[string]any{"op": "pretokenize", "texts": texts}, &want)
		for i := range texts {
			if len(want[i]) == 3 {
				punct[string(group[i])] = true
			}
		}
	}
	// The classes of the GPT-2 split pattern (\p{L}, \p{N}, \s) as the
	// ByteLevel pre-tokenizer's regex engine sees them: "a"+c is one piece
	// exactly when c is a letter, "1"+c when a number, "\t\t"+c when
	// whitespace.
	gpt2 := map[string]map[rune]bool{"L": {}, "N": {}, "S": {}}
	for lo := 0; lo < len(cps); lo += 8192 {
		group := cps[lo:min(lo+8192, len(cps))]
		for _, probe := range []struct{ class, prefix string }{{"L", "a"}, {"N", "1"}, {"S", "\t\t"}} {
			texts := make([]string, len(group))
			for i, r := range group {
				texts[i] = probe.prefix + string(r)
			}
			var want [][]json.RawMessage
			h.call(t, map[string]any{"op": "pretokenize", "byte_level": map[string]any{"add_prefix_space": false}, "texts": texts}, &want)
			for i := range texts {
				if len(want[i]) == 1 {
					gpt2[probe.class][group[i]] = true
				}
			}
		}
	}
	var lExtra, lMissing, nExtra, nMissing, sExtra, sMissing []rune
	for _, r := range cps {
		for _, c := range []struct {
			hf, goes       bool
			extra, missing *[]rune
		}{
			{gpt2["L"][r], unicode.IsLetter(r), &lExtra, &lMissing},
			{gpt2["N"][r], unicode.IsNumber(r), &nExtra, &nMissing},
			{gpt2["S"][r], unicode.IsSpace(r), &sExtra, &sMissing},
		} {
			if c.hf && !c.goes {
				*c.extra = append(*c.extra, r)
			}
			if !c.hf && c.goes {
				*c.missing = append(*c.missing, r)
			}
		}
	}
	d := struct {
		Norm  map[string]map[string]string
		Punct map[string]bool
	}{res, punct}
	var noDecomp, otherExtra, otherMissing, mnExtra, mnMissing, pExtra, pMissing []rune
	lowerEx := map[rune]rune{}
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if (r >= 0xD800 && r <= 0xDFFF) || r == '#' {
			continue
		}
		s := string(r)
		// clean
		out, changed := d.Norm["clean"][s]
		hfOther := changed && out == "" && r != 0 && r != 0xFFFD
		goOther := r != '\t' && r != '\n' && r != '\r' && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
		if hfOther && !goOther {
			otherExtra = append(otherExtra, r)
		}
		if !hfOther && goOther && r != 0 && r != 0xFFFD {
			otherMissing = append(otherMissing, r)
		}
		// strip (only NFD-stable runes)
		if nfd := []rune(string(norm.NFD.String(s))); len(nfd) == 1 && nfd[0] == r {
			out, changed := d.Norm["strip"][s]
			hfMn := changed && out == ""
			goMn := unicode.Is(unicode.Mn, r)
			if hfMn && !goMn {
				mnExtra = append(mnExtra, r)
			}
			if !hfMn && goMn {
				mnMissing = append(mnMissing, r)
			}
		} else if out, changed := d.Norm["strip"][s]; !changed || out == s {
			noDecomp = append(noDecomp, r)
		}
		// lower
		hl, changed := d.Norm["lower"][s]
		if !changed {
			hl = s
		}
		if r != 0x130 {
			lr := []rune(hl)
			if len(lr) != 1 {
				t.Errorf("multi-rune lowercase U+%04X → %q", r, hl)
			} else if lr[0] != unicode.ToLower(r) {
				lowerEx[r] = lr[0]
			}
		}
		hp := d.Punct[s]
		gp := (r < 0x80 && isPunctuation(r)) || (r >= 0x80 && unicode.IsPunct(r))
		if hp && !gp {
			pExtra = append(pExtra, r)
		}
		if !hp && gp {
			pMissing = append(pMissing, r)
		}
	}
	var sb strings.Builder
	sb.WriteString(`// Code generated from an exhaustive probe of Hugging Face tokenizers 0.22.2
// (via @anush008/tokenizers 0.6.0, tools/hfparity); DO NOT EDIT.
// TestUnicodeParityExhaustive and TestByteLevelSplitParityExhaustive verify
// every code point against the library.

package tokenize

import "unicode"

`)
	for _, tb := range []struct {
		name, doc string
		rs        []rune
	}{
		{"hfNoDecompose", "have a canonical decomposition for Go but none for Hugging Face's normaliser", noDecomp},
		{"hfOtherExtra", "are \"other\" (dropped by clean-text) for Hugging Face but not Cc/Cf/Co/Cs for Go", otherExtra},
		{"hfOtherMissing", "are Cc/Cf/Co/Cs for Go but kept by Hugging Face's clean-text", otherMissing},
		{"hfMnExtra", "are non-spacing marks for Hugging Face but not for Go", mnExtra},
		{"hfMnMissing", "are non-spacing marks for Go but not for Hugging Face", mnMissing},
		{"hfPunctExtra", "are punctuation for Hugging Face's BertPreTokenizer but not for Go", pExtra},
		{"hfPunctMissing", "are punctuation for Go but not for Hugging Face's BertPreTokenizer", pMissing},
		{"gpt2LetterExtra", "are letters (\\p{L}) for the ByteLevel pre-tokenizer's split pattern but not for Go", lExtra},
		{"gpt2LetterMissing", "are letters for Go but not for the ByteLevel pre-tokenizer's split pattern", lMissing},
		{"gpt2NumberExtra", "are numbers (\\p{N}) for the ByteLevel pre-tokenizer's split pattern but not for Go", nExtra},
		{"gpt2NumberMissing", "are numbers for Go but not for the ByteLevel pre-tokenizer's split pattern", nMissing},
		{"gpt2SpaceExtra", "are whitespace (\\s) for the ByteLevel pre-tokenizer's split pattern but not for Go", sExtra},
		{"gpt2SpaceMissing", "are whitespace for Go but not for the ByteLevel pre-tokenizer's split pattern", sMissing},
	} {
		t.Logf("%s: %d", tb.name, len(tb.rs))
		fmt.Fprintf(&sb, "// %s lists the code points that %s.\nvar %s = %s\n\n", tb.name, tb.doc, tb.name, rangeTable(tb.rs))
	}
	keys := make([]rune, 0, len(lowerEx))
	for k := range lowerEx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	t.Logf("lower exceptions: %d", len(keys))
	sb.WriteString("// hfLower returns Rust's lowercase mapping of r where it differs from Go's\n// unicode.ToLower, and false elsewhere.\nfunc hfLower(r rune) (rune, bool) {\n\tswitch r {\n")
	for _, k := range keys {
		fmt.Fprintf(&sb, "\tcase 0x%04X:\n\t\treturn 0x%04X, true\n", k, lowerEx[k])
	}
	sb.WriteString("\t}\n\treturn 0, false\n}\n")
	src, err := format.Source([]byte(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("unicode_tables.go", src, 0o644); err != nil {
		t.Fatal(err)
	}
}

func rangeTable(rs []rune) string {
	var r16, r32 []string
	for i := 0; i < len(rs); {
		j := i
		for j+1 < len(rs) && rs[j+1] == rs[j]+1 {
			j++
		}
		if rs[j] <= 0xFFFF {
			r16 = append(r16, fmt.Sprintf("\t\t{0x%04X, 0x%04X, 1},\n", rs[i], rs[j]))
		} else if rs[i] > 0xFFFF {
			r32 = append(r32, fmt.Sprintf("\t\t{0x%X, 0x%X, 1},\n", rs[i], rs[j]))
		} else {
			r16 = append(r16, fmt.Sprintf("\t\t{0x%04X, 0xFFFF, 1},\n", rs[i]))
			r32 = append(r32, fmt.Sprintf("\t\t{0x10000, 0x%X, 1},\n", rs[j]))
		}
		i = j + 1
	}
	s := "&unicode.RangeTable{\n"
	if len(r16) > 0 {
		s += "\tR16: []unicode.Range16{\n" + strings.Join(r16, "") + "\t},\n"
	}
	if len(r32) > 0 {
		s += "\tR32: []unicode.Range32{\n" + strings.Join(r32, "") + "\t},\n"
	}
	return s + "}"
}
