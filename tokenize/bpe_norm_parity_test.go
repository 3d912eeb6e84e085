package tokenize

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// bpeNormConfigs are byte-level BPE tokenizers with normalisers: RoBERTa's
// layout with NFC, with NFKC + Lowercase and a prefix space, with NFKD +
// Replace (Oniguruma's Unicode \s, \d and \w; a literal) + Strip, and GPT-NeoX's and ModernBERT's layout (NFC,
// whitespace-run added tokens, [CLS] $A [SEP], [MASK] with lstrip), also
// with NFKC + Lowercase.
var bpeNormConfigs = []bpeConfig{
	{name: "nfc", trimOffsets: true, fullAlphabet: true, normalizer: typ("NFC")},
	{name: "nfkc-lowercase-prefix-space", addPrefixSpace: true, trimOffsets: true, fullAlphabet: true,
		normalizer: normSeq(typ("NFKC"), typ("Lowercase"))},
	{name: "nfkd-replace-strip-untrimmed", fullAlphabet: true,
		normalizer: normSeq(typ("NFKD"), replaceRegex(`\s+`, " "), replaceRegex(`\d+`, "0"), replaceRegex(`[^\w\s]{3,}`, "*"), replaceString("``", `"`), map[string]any{"type": "Strip", "strip_left": true, "strip_right": true})},
	{name: "modernbert", layout: "modernbert", normalizer: typ("NFC")},
	{name: "modernbert-nfkc-lowercase", layout: "modernbert", normalizer: normSeq(typ("NFKC"), typ("Lowercase"))},
}

// bpeNormHardCases are the BPE hard cases, the same with ModernBERT's
// special tokens, and cases for the normalisers (compositions, compatibility
// characters, case mappings that change length, spaces that NFKC makes
// ASCII before a mask) and for GPT-NeoX's added tokens (whitespace runs,
// the |||…||| placeholders).
func bpeNormHardCases() []string {
	var out []string
	r := strings.NewReplacer("<mask>", "[MASK]", "<s>", "[CLS]", "</s>", "[SEP]", "<pad>", "[PAD]", "<unk>", "[UNK]")
	for _, s := range bpeHardCases() {
		out = append(out, s)
		if t := r.Replace(s); t != s {
			out = append(out, t)
		}
	}
	return append(out,
		"Å \u212b A\u030a", "e\u0301\u0323 e\u0323\u0301", "\u1100\u1161\u11a8 \uac00\u11a8", "ﬁne ﬂow", "Ｆｕｌｌ ｗｉｄｔｈ", "ﾊﾟﾝ",
		"İstanbul", "ǅemal ǈ", "Straße STRASSE", "ΣΑΣ ὈΔΥΣΣΕΎΣ", "x² ①½", "\u2126\u212a", "a\u0301\u0302\u0303b", "\u0301a",
		"a\u00a0<mask> b", "a\u00a0[MASK] b", "x\u3000[MASK]", "x\u2003<mask>", "e\u0301<mask>", "<mask>\u0301", "[MASK]\u0301",
		"Ａ[MASK]ｂ", "  [MASK]  ", "a  [MASK]", "a    b", "a        b", "x"+strings.Repeat(" ", 24)+"y", strings.Repeat(" ", 30)+"z",
		"a \u00a0 b", "\u00a0\u00a0 \u00a0x", "|||IP_ADDRESS|||", "ip |||IP_ADDRESS||| x", "|||ip_address|||", "mail |||EMAIL_ADDRESS|||.",
		"<|endoftext|>", "a<|endoftext|>b", "<|padding|>", "[unused0] [unused1]", "[CLS] x [SEP]", "``quoted''", "a ``b`` c",
		" \t leading and trailing \n ", "\u2028x\u2029",
	)
}

// TestBPENormalizerParityWithHuggingFace trains byte-level BPE tokenizers
// with the real Hugging Face trainer, gives them normalisers (bpeNormConfigs,
// ModernBERT's layout among them) and has the Hugging Face serializer write
// them; loads each with Load and requires Hugging Face's ids, tokens and
// character offsets on 2,000 WordNet lines, the hard cases and 3,000 random
// texts, also without special tokens and after Save and Load, and its
// decoding (checkBPEParity).
func TestBPENormalizerParityWithHuggingFace(t *testing.T) {
	h := startHF(t)
	hard := bpeNormHardCases()
	corpusFile := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpusFile, []byte(strings.Join(append(wordnetLines(t, 6000), hard...), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fuzz := bpeFuzzTexts(3000, 11)
	r := strings.NewReplacer("<mask>", "[MASK]", "<s>", "[CLS]", "</s>", "[SEP]", "<pad>", "[PAD]", "Z", "    ", "ß", "|||IP_ADDRESS|||", "'S", "ﬁ")
	for i := 0; i < len(fuzz); i += 2 {
		fuzz[i] = r.Replace(fuzz[i])
	}
	texts := append(append(wordnetLines(t, 2000), hard...), fuzz...)
	for _, c := range bpeNormConfigs {
		t.Run(c.name, func(t *testing.T) {
			tj := trainParityBPE(t, h, corpusFile, c)
			tok, err := Load(filepath.Dir(tj))
			if err != nil {
				t.Fatalf("load the tokenizer.json Hugging Face wrote: %v", err)
			}
			if c.layout == "modernbert" {
				mask, _ := tok.TokenToID("[MASK]")
				if tok.MaskToken() != "[MASK]" || tok.MaskID() != mask || tok.CLSID() != mask-3 || tok.SEPID() != mask-2 || tok.PadID() != mask-1 {
					t.Fatalf("mask %q %d, cls %d, sep %d, pad %d", tok.MaskToken(), tok.MaskID(), tok.CLSID(), tok.SEPID(), tok.PadID())
				}
			}
			checkBPEParity(t, h, tok, tj, texts, hard)
		})
	}
}

// TestBPEAnswerPiecesWithNormalizer checks AnswerPieces of byte-level BPE
// tokenizers with normalisers against Hugging Face: an answer's pieces
// must be the tokens Hugging Face gives the text with the answers written
// in place of the masks, at the answers' positions (a no-break space
// before a mask is a space under NFKC, not under NFC; a decomposed answer
// is composed).
func TestBPEAnswerPiecesWithNormalizer(t *testing.T) {
	h := startHF(t)
	corpusFile := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpusFile, []byte(strings.Join(wordnetLines(t, 6000), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text    string
		answers []string
	}{
		{"I want to <mask> a book.", []string{"read"}},
		{"<mask> is a small animal", []string{"Mouse"}},
		{"The <mask> sat on the <mask>.", []string{"cat", "mat"}},
		{"un<mask> state", []string{"married"}},
		{"a\u00a0<mask> of plants", []string{"family"}},
		{"a\u3000<mask> of plants", []string{"group"}},
		{"two  <mask>  spaces", []string{"wide"}},
		{"the <mask> at the <mask>", []string{"Cafe\u0301", "ﬁnish"}},
		{"<mask>, <mask> and <mask>", []string{"red", "GREEN", "blue"}},
	}
	for _, c := range bpeNormConfigs {
		if c.addPrefixSpace || strings.Contains(c.name, "strip") {
			continue // the text around a mask changes the answer's first token there
		}
		t.Run(c.name, func(t *testing.T) {
			tj := trainParityBPE(t, h, corpusFile, c)
			tok, err := Load(filepath.Dir(tj))
			if err != nil {
				t.Fatal(err)
			}
			mask := tok.MaskToken()
			compared := 0
			for _, tc := range cases {
				text := strings.ReplaceAll(tc.text, "<mask>", mask)
				got, err := tok.AnswerPieces(text, tc.answers)
				if err != nil {
					t.Fatal(err)
				}
				// Fill the masks (the whitespace the mask's lstrip would
				// take stays) and find each answer's character range.
				filled := text
				var ranges [][2]int
				for _, a := range tc.answers {
					i := strings.Index(filled, mask)
					filled = filled[:i] + a + filled[i+len(mask):]
					ranges = append(ranges, [2]int{utf8.RuneCountInString(filled[:i]), utf8.RuneCountInString(filled[:i+len(a)])})
				}
				enc := h.encode(t, tj, []string{filled}, false)[0]
				for k, r := range ranges {
					// The tokens that overlap the answer; a leading "Ġ"
					// covers the character before it, and may be a token
					// of its own.
					var want []string
					lo, hi := r[0], r[1]
					for j, o := range enc.Offsets {
						if o[1] > r[0] && o[0] < r[1] || o[1] == r[0] && o[0] >= r[0]-1 && enc.Tokens[j] == "Ġ" {
							want = append(want, enc.Tokens[j])
							lo, hi = min(lo, o[0]), max(hi, o[1])
						}
					}
					if lo < r[0]-1 || hi > r[1] {
						t.Logf("on %q Hugging Face's tokens %q do not split at answer %d", filled, want, k)
						continue
					}
					compared++
					if !slices.Equal(got[k].Tokens, want) {
						t.Errorf("AnswerPieces(%q)[%d] = %q; Hugging Face on %q gives %q", text, k, got[k].Tokens, filled, want)
					}
				}
			}
			if compared < 10 {
				t.Errorf("only %d answers could be compared", compared)
			}
		})
	}
}
