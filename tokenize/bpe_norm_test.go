package tokenize

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeModernBERTLike writes a small byte-level BPE tokenizer.json in
// ModernBERT's layout (the byte alphabet, the merges Ã+© and Ġ+x, a
// two-space added token, [UNK] [CLS] [SEP] [PAD] [MASK] after the
// vocabulary, [MASK] with lstrip, TemplateProcessing "[CLS] $A [SEP]")
// with the given normalizer into a new folder and returns the folder.
func writeModernBERTLike(t *testing.T, normalizer any) string {
	t.Helper()
	vocab := map[string]int{}
	for _, r := range byteLevel {
		vocab[string(r)] = len(vocab)
	}
	merges := [][2]string{{"Ã", "©"}, {"Ġ", "x"}}
	for _, m := range merges {
		vocab[m[0]+m[1]] = len(vocab)
	}
	vocab["  "] = len(vocab)
	added := []map[string]any{{"id": vocab["  "], "content": "  ", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false}}
	for _, s := range []string{"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"} {
		added = append(added, map[string]any{"id": len(vocab) + len(added) - 1, "content": s, "single_word": false,
			"lstrip": s == "[MASK]", "rstrip": false, "normalized": false, "special": true})
	}
	st := func(s string) any { return map[string]any{"SpecialToken": map[string]any{"id": s, "type_id": 0}} }
	sq := map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer":    normalizer,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{
			"type": "TemplateProcessing", "single": []any{st("[CLS]"), sq, st("[SEP]")},
			"pair": []any{st("[CLS]"), sq, st("[SEP]"), st("[SEP]")},
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{len(vocab) + 1}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{len(vocab) + 2}, "tokens": []string{"[SEP]"}},
			},
		},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges,
		},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBPENormalizerModernBERTLayout loads a ModernBERT-like byte-level BPE
// tokenizer.json with a normaliser and checks the tokens and the offsets
// through the normaliser's alignment, the special tokens BERT's names
// default to, AnswerPieces after a no-break space and after GPT-NeoX's
// whitespace-run added token, and that Save keeps the normaliser (the
// values are Hugging Face's, as TestBPENormalizerParityWithHuggingFace
// checks on such cases).
func TestBPENormalizerModernBERTLayout(t *testing.T) {
	nfc := map[string]any{"type": "NFC"}
	nfkcLower := map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFKC"}, map[string]any{"type": "Lowercase"}}}
	tests := []struct {
		name       string
		normalizer any
		text       string
		tokens     []string
		offsets    [][2]int
		answer     []string // AnswerPieces(text, {"x"})
	}{
		// NFC composes é; as in Hugging Face, the composed character is
		// aligned with the e alone. [MASK]'s lstrip takes the no-break
		// space, which stays one under NFC (no space before the answer)
		// and becomes a space under NFKC.
		{"nfc", nfc, "e\u0301 x\u00a0[MASK]", []string{"[CLS]", "Ã©", "Ġx", "\u00a0[MASK]", "[SEP]"},
			[][2]int{{0, 0}, {0, 1}, {3, 5}, {5, 13}, {0, 0}}, []string{"x"}},
		{"nfkc-lowercase", nfkcLower, "E\u0301 X\u00a0[MASK]", []string{"[CLS]", "Ã©", "Ġx", "\u00a0[MASK]", "[SEP]"},
			[][2]int{{0, 0}, {0, 1}, {3, 5}, {5, 13}, {0, 0}}, []string{"Ġx"}},
		// In the filled-in text the two spaces are the added token, so the
		// answer follows no space.
		{"two-spaces-added-token", nfc, "é  [MASK]", []string{"[CLS]", "Ã©", "  [MASK]", "[SEP]"},
			[][2]int{{0, 0}, {0, 2}, {2, 10}, {0, 0}}, []string{"x"}},
		{"two-spaces-before-text", nfc, "é  x [MASK]", []string{"[CLS]", "Ã©", "  ", "x", " [MASK]", "[SEP]"},
			[][2]int{{0, 0}, {0, 2}, {2, 4}, {4, 5}, {5, 12}, {0, 0}}, []string{"Ġx"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeModernBERTLike(t, tc.normalizer)
			tok, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			check := func(tok *Tokenizer) {
				t.Helper()
				if tok.MaskToken() != "[MASK]" || tok.CLSID() != 260 || tok.SEPID() != 261 || tok.PadID() != 262 || tok.UNKID() != 259 {
					t.Fatalf("mask %q, cls %d, sep %d, pad %d, unk %d", tok.MaskToken(), tok.CLSID(), tok.SEPID(), tok.PadID(), tok.UNKID())
				}
				enc, err := tok.Encode(tc.text)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(enc.Tokens, tc.tokens) || !equalOffsets(enc.Offsets, tc.offsets) {
					t.Errorf("Encode(%q) = %q %v, want %q %v", tc.text, enc.Tokens, enc.Offsets, tc.tokens, tc.offsets)
				}
				ps, err := tok.AnswerPieces(tc.text, []string{"x"})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ps[0].Tokens, tc.answer) {
					t.Errorf("AnswerPieces(%q, x) = %q, want %q", tc.text, ps[0].Tokens, tc.answer)
				}
			}
			check(tok)
			saved := t.TempDir()
			if err := tok.Save(saved); err != nil {
				t.Fatal(err)
			}
			again, err := Load(saved)
			if err != nil {
				t.Fatal(err)
			}
			check(again)
		})
	}
}

// TestBPEUnsupportedNormalizer checks that a byte-level BPE tokenizer.json
// with a normaliser clozeloop does not implement is refused as unsupported,
// naming the model.
func TestBPEUnsupportedNormalizer(t *testing.T) {
	dir := writeModernBERTLike(t, map[string]any{"type": "BertNormalizer", "lowercase": true})
	_, err := Load(dir)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `normalizer type "BertNormalizer" with a byte-level BPE model`) {
		t.Fatalf("Load = %v, want ErrUnsupported naming the BPE model", err)
	}
}

// TestOnigClasses checks that Replace patterns get Oniguruma's Unicode
// shorthand classes.
func TestOnigClasses(t *testing.T) {
	tests := []struct {
		pattern, in, want string
		fails             bool
	}{
		{pattern: `\s+`, in: "a\u2028\u1680b\u0085c\u3000d\te", want: "a_b_c_d_e"},
		{pattern: `\S+`, in: "ab\u00a0cd", want: "_\u00a0_"},
		{pattern: `\d`, in: "1٣x", want: "__x"},
		{pattern: `\D`, in: "1٣x", want: "1٣_"},
		{pattern: `\w+`, in: "中文 e\u0301_x!", want: "_ _!"},
		{pattern: `[^\w\s]`, in: "中 !?", want: "中 __"},
		{pattern: `[\s,]`, in: "a,\u2029b", want: "a__b"},
		{pattern: `[]\d]`, in: "]٣a", want: "__a"},
		{pattern: `[[:alpha:]\d]`, in: "a٣ ", want: "__ "},
		{pattern: `\.\\s`, in: "x.\\s", want: "x_"},
		{pattern: `[\S]`, fails: true},
	}
	for _, tc := range tests {
		re, err := regexFor(tc.pattern)
		if tc.fails {
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("regexFor(%q) = %v, want ErrUnsupported", tc.pattern, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("regexFor(%q): %v", tc.pattern, err)
			continue
		}
		if got := re.ReplaceAllString(tc.in, "_"); got != tc.want {
			t.Errorf("%q on %q = %q, want %q", tc.pattern, tc.in, got, tc.want)
		}
	}
}
