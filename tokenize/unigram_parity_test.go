package tokenize

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Components of the Unigram parity tokenizers, as tokenizer.json writes
// them.
func metaspacePre(scheme string, split bool) map[string]any {
	return map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}
}

func metaspaceDec(scheme string) map[string]any {
	return map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": true}
}

func normSeq(ns ...map[string]any) map[string]any {
	return map[string]any{"type": "Sequence", "normalizers": ns}
}

func replaceRegex(pattern, content string) map[string]any {
	return map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": pattern}, "content": content}
}

func replaceString(pattern, content string) map[string]any {
	return map[string]any{"type": "Replace", "pattern": map[string]any{"String": pattern}, "content": content}
}

func typ(name string) map[string]any { return map[string]any{"type": name} }

// xlmrTemplate is XLM-RoBERTa's post-processor.
var xlmrTemplate = map[string]any{
	"type": "TemplateProcessing",
	"single": []any{
		map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
		map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
		map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
	},
	"pair": []any{
		map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
		map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
		map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
		map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
		map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 0}},
		map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
	},
	"special_tokens": map[string]any{
		"<s>":  map[string]any{"id": "<s>", "ids": []int{0}, "tokens": []string{"<s>"}},
		"</s>": map[string]any{"id": "</s>", "ids": []int{2}, "tokens": []string{"</s>"}},
	},
}

// llamaDecoder is the decoder of SentencePiece byte-fallback tokenizers
// such as Llama's.
var llamaDecoder = map[string]any{"type": "Sequence", "decoders": []any{
	replaceString("▁", " "), typ("ByteFallback"), typ("Fuse"),
	map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
}}

// unigramConfig is one Unigram tokenizer setting of the parity tests.
type unigramConfig struct {
	name                                             string
	normalizer, preTokenizer, postProcessor, decoder any
	unk, byteFallback                                bool
	quantize                                         float64 // round scores to multiples of this, so that paths tie
}

// unigramConfigs cover XLM-RoBERTa's setting (without its Precompiled
// charsmap), every Metaspace prepend scheme with and without split, byte
// fallback on and off, no pre-tokeniser, the normalisers, and scores
// rounded so that segmentations tie (Viterbi's tie-break).
var unigramConfigs = []unigramConfig{
	{"xlmr", normSeq(typ("NFKC"), replaceRegex(" {2,}", " ")), metaspacePre("always", true), xlmrTemplate, metaspaceDec("always"), true, false, 0},
	{"first-split-roberta", normSeq(map[string]any{"type": "Strip", "strip_left": false, "strip_right": true}, replaceRegex(" {2,}", "▁")),
		metaspacePre("first", true),
		map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", 2}, "cls": []any{"<s>", 0}, "trim_offsets": true, "add_prefix_space": true},
		metaspaceDec("first"), true, false, 0},
	{"never-nosplit", normSeq(typ("Lowercase"), typ("NFKC")), metaspacePre("never", false), xlmrTemplate, metaspaceDec("never"), true, false, 0},
	{"always-nosplit-bytefallback", typ("NFKC"), metaspacePre("always", false), xlmrTemplate, llamaDecoder, true, true, 0},
	{"first-bytefallback", normSeq(typ("NFD"), typ("Lowercase"), map[string]any{"type": "Strip", "strip_left": true, "strip_right": true}, replaceString("``", `"`)),
		metaspacePre("first", true), xlmrTemplate,
		map[string]any{"type": "Sequence", "decoders": []any{typ("ByteFallback"), metaspaceDec("first")}}, true, true, 0},
	{"never-split-nfkd", normSeq(typ("NFKD"), typ("NFC")), metaspacePre("never", true), nil, nil, true, false, 0},
	{"no-pretokenizer-prepend", normSeq(map[string]any{"type": "Prepend", "prepend": "▁"}, replaceString(" ", "▁")), nil, xlmrTemplate, llamaDecoder, true, true, 0},
	{"tied-scores", typ("NFKC"), metaspacePre("always", true), xlmrTemplate, metaspaceDec("always"), true, false, 2},
	{"tied-scores-nosplit", nil, metaspacePre("first", false), xlmrTemplate, metaspaceDec("first"), true, true, 4},
}

// trainParityUnigram trains a Unigram model with the real Hugging Face
// trainer on corpusFile and returns the path of the model's file.
func trainParityUnigram(t *testing.T, h *hf, corpusFile string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trained.json")
	var res struct {
		Pieces int `json:"pieces"`
	}
	h.call(t, map[string]any{"op": "train_unigram", "files": []string{corpusFile}, "save": path}, &res)
	if res.Pieces < 1000 {
		t.Fatalf("the trained Unigram model has only %d pieces", res.Pieces)
	}
	return path
}

// buildParityUnigram writes the tokenizer.json of setting c around a
// trained model through Hugging Face and returns its path.
func buildParityUnigram(t *testing.T, h *hf, model string, c unigramConfig) string {
	t.Helper()
	tj := filepath.Join(t.TempDir(), "tokenizer.json")
	var res struct {
		VocabSize int `json:"vocab_size"`
	}
	h.call(t, map[string]any{
		"op": "build_unigram", "model": model, "save": tj, "unk": c.unk, "byte_fallback": c.byteFallback,
		"quantize": c.quantize, "normalizer": c.normalizer, "pre_tokenizer": c.preTokenizer, "post_processor": c.postProcessor, "decoder": c.decoder,
	}, &res)
	return tj
}

// unigramHardCases are the byte-level BPE hard cases (RoBERTa's special
// tokens are XLM-RoBERTa's) with cases for Metaspace, the normalisers and
// unknown characters.
func unigramHardCases() []string {
	return append(bpeHardCases(),
		"▁", "▁▁x", "a▁b", " ▁ ", "x ▁", "▁<mask>", "<mask>▁", "a  b   c    d", "  lead", "trail  ", " \u00a0 x", "x\u00a0\u00a0 y",
		"``quoted''", "`` x ``", "Ⅻ ⅻ", "ﬁnal ﬂow", "㍿ ㌀", "ｶﾀｶﾅ", "ﾊﾟ", "Å Å Å", "ḳ́ ḳ́", "\u1100\u1161\u11a8 각", "ᄀ각",
		"e\u0301\u0323 e\u0323\u0301", "q\u0307\u0323", "a\u0328\u0301", "\u0958 \u0915\u093c", "ǲ ǳ Ǳ", "ﷺ", "ﷻ x", "…", "x…y", "²³ x₁",
		"\U0001d400\U0001d401", "𝐀 𝐁", "❤️ ok", "😀😀", "x😀y", "中文", "<unk> <unk>", "<0x41>", "<0xE4> x",
		strings.Repeat("▁", 20), strings.Repeat("x ", 200), strings.Repeat("中", 50),
		// Precompiled: clusters replaced whole or by their first
		// character's rule, removals at the start, inside and at the end,
		// expansions.
		"ß\u0301x", "xß\u0301", "\x01\x02abc", "ab\x01\x02", "a\x01b", "\u200b\u200bx", "x\u200b", "\u200b", "\x01",
		"ｶﾞ ﾊﾟ", "\u0627\u0653 آب", "A\u030a a\u0308", "㍿ ﷺ x", "\u00ad\u00adsoft", "tab\t\tx", "a\r\nb", " \u200d x",
	)
}

// TestUnigramEncodeParityWithHuggingFace trains a Unigram model with the
// real Hugging Face trainer on WordNet glosses, writes it as a tokenizer
// per setting in unigramConfigs through Hugging Face, loads each with Load
// and requires Hugging Face's ids, tokens and offsets on 1,500 WordNet
// lines, the hard cases (with characters the model never saw: unknown
// pieces, or their bytes with byte_fallback) and 2,000 random texts, with
// and without special tokens; then the same after Save and Load; then
// Decode, with and without special tokens, of those encodings and of
// random id sequences.
func TestUnigramEncodeParityWithHuggingFace(t *testing.T) {
	h := startHF(t)
	corpusFile := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpusFile, []byte(strings.Join(wordnetLines(t, 8000), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := trainParityUnigram(t, h, corpusFile)
	hard := unigramHardCases()
	texts := append(append(wordnetLines(t, 1500), hard...), bpeFuzzTexts(2000, 5)...)
	configs := slices.Clone(unigramConfigs)
	precompiled := func(charsmap string) map[string]any {
		return map[string]any{"type": "Precompiled", "precompiled_charsmap": charsmap}
	}
	cm := buildCharsmap(t, testCharsmapRules())
	configs = append(configs,
		unigramConfig{"xlmr-precompiled", normSeq(precompiled(cm), replaceRegex(" {2,}", " ")), metaspacePre("always", true), xlmrTemplate, metaspaceDec("always"), true, false, 0},
		unigramConfig{"precompiled-strip-first", normSeq(precompiled(cm), map[string]any{"type": "Strip", "strip_left": false, "strip_right": true}, replaceRegex(" {2,}", "▁")),
			metaspacePre("first", true), xlmrTemplate, llamaDecoder, true, true, 0},
	)
	if real := precompiledFromEnv(t); real != "" {
		configs = append(configs, unigramConfig{"xlmr-charsmap-from-env", normSeq(precompiled(real), replaceRegex(" {2,}", " ")), metaspacePre("always", true), xlmrTemplate, metaspaceDec("always"), true, false, 0})
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			tj := buildParityUnigram(t, h, model, c)
			tok, err := Load(filepath.Dir(tj))
			if err != nil {
				t.Fatalf("load the tokenizer.json Hugging Face wrote: %v", err)
			}
			if tok.Kind() != "Unigram" || tok.MaskToken() != "<mask>" || tok.CLSID() != 0 || tok.SEPID() != 2 || tok.PadID() != 1 || tok.UNKID() != 3 {
				t.Fatalf("kind %s, mask %q, cls %d, sep %d, pad %d, unk %d", tok.Kind(), tok.MaskToken(), tok.CLSID(), tok.SEPID(), tok.PadID(), tok.UNKID())
			}
			d := compareEncodings(t, h, tok, tj, texts)
			t.Logf("%s: %d texts, %d with different ids", c.name, len(texts), d)
			if d != 0 {
				t.Errorf("%d of %d texts encode to different ids", d, len(texts))
			}
			want := h.encode(t, tj, hard, false)
			for i, text := range hard {
				got, err := tok.EncodeRaw(text)
				if err != nil {
					t.Fatal(err)
				}
				if !equalInts(got.IDs, want[i].IDs) || !equalStrings(got.Tokens, want[i].Tokens) || !equalOffsets(charOffsets(text, got.Offsets), want[i].Offsets) {
					t.Errorf("EncodeRaw(%q) = %v %q %v, Hugging Face %v %q %v", text, got.IDs, got.Tokens, charOffsets(text, got.Offsets), want[i].IDs, want[i].Tokens, want[i].Offsets)
				}
			}

			// Saved and loaded again: same encodings, and Hugging Face
			// reads the saved file to the same ids.
			dir := t.TempDir()
			if err := tok.Save(dir); err != nil {
				t.Fatal(err)
			}
			again, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if d := compareEncodings(t, h, again, filepath.Join(dir, "tokenizer.json"), texts[:800]); d != 0 {
				t.Errorf("after Save and Load, %d texts encode to different ids", d)
			}

			// Decode.
			var ids [][]int
			for _, text := range append(slices.Clone(hard), texts[len(texts)-500:]...) {
				e, err := tok.Encode(text)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, append([]int{}, e.IDs...))
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for range 500 {
				seq := make([]int, 1+rng.IntN(8))
				for k := range seq {
					seq[k] = rng.IntN(tok.VocabSize())
				}
				ids = append(ids, seq)
			}
			for _, skip := range []bool{false, true} {
				var want []string
				h.call(t, map[string]any{"op": "decode", "tokenizer": tj, "ids": ids, "skip_special_tokens": skip}, &want)
				bad := 0
				for i := range ids {
					got, err := tok.Decode(ids[i], skip)
					if err != nil {
						t.Fatal(err)
					}
					if got != want[i] {
						if bad++; bad <= 10 {
							t.Errorf("Decode(%v, %v) = %q, Hugging Face %q", ids[i], skip, got, want[i])
						}
					}
				}
				if bad > 0 {
					t.Errorf("skip=%v: %d of %d decodings differ", skip, bad, len(ids))
				}
			}
		})
	}
}

// TestUnigramAnswerPiecesMatchFilledText checks AnswerPieces against
// Hugging Face: for a text with masks and answers that are whole words,
// the answer's pieces must be the tokens Hugging Face gives the text with
// the answers written in place of the masks, at the answers' positions.
func TestUnigramAnswerPiecesMatchFilledText(t *testing.T) {
	h := startHF(t)
	corpusFile := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpusFile, []byte(strings.Join(wordnetLines(t, 8000), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := trainParityUnigram(t, h, corpusFile)
	cases := []struct {
		text    string
		answers []string
	}{
		{"I want to <mask> a book.", []string{"read"}},
		{"<mask> is a small animal", []string{"mouse"}},
		{"The <mask> sat on the <mask>.", []string{"cat", "mat"}},
		{"a <mask>", []string{"collection"}},
		{"(<mask>) of plants", []string{"family"}},
		{"un<mask> state", []string{"married"}},
		{"<s> <mask> </s>", []string{"hello"}},
		{"two  <mask>  spaces", []string{"wide"}},
		{"<mask>, <mask> and <mask>", []string{"red", "green", "blue"}},
	}
	for _, c := range unigramConfigs {
		meta, _ := c.preTokenizer.(map[string]any)
		if meta == nil || meta["split"] != true {
			continue // without split, a word's pieces depend on what follows it
		}
		t.Run(c.name, func(t *testing.T) {
			tj := buildParityUnigram(t, h, model, c)
			tok, err := Load(filepath.Dir(tj))
			if err != nil {
				t.Fatal(err)
			}
			compared := 0
			defer func() {
				t.Logf("%s: %d answers compared", c.name, compared)
				if compared < 8 {
					t.Errorf("only %d answers could be compared", compared)
				}
			}()
			for _, tc := range cases {
				got, err := tok.AnswerPieces(tc.text, tc.answers)
				if err != nil {
					t.Fatal(err)
				}
				// Fill the masks (with the whitespace the mask's lstrip
				// would take kept in place) and find each answer's range.
				filled := tc.text
				var ranges [][2]int
				for _, a := range tc.answers {
					i := strings.Index(filled, "<mask>")
					filled = filled[:i] + a + filled[i+len("<mask>"):]
					ranges = append(ranges, [2]int{utf8.RuneCountInString(filled[:i]), utf8.RuneCountInString(filled[:i+len(a)])})
				}
				enc := h.encode(t, tj, []string{filled}, false)[0]
				for k, r := range ranges {
					// The tokens that overlap the answer; a word start's
					// "▁" stands for the space before it.
					var want []string
					lo, hi := r[0], r[1]
					from := r[0]
					if rs := []rune(filled); r[0] > 0 && rs[r[0]-1] == ' ' {
						from-- // the answer's "▁" may stand for the space
					}
					for j, o := range enc.Offsets {
						if o[1] > from && o[0] < r[1] {
							want = append(want, enc.Tokens[j])
							lo, hi = min(lo, o[0]), max(hi, o[1])
						}
					}
					if lo < r[0]-1 || hi > r[1] {
						t.Logf("%s: on %q Hugging Face's tokens %q do not split at answer %d", c.name, filled, want, k)
						continue
					}
					compared++
					if !slices.Equal(got[k].Tokens, want) {
						t.Errorf("%s: AnswerPieces(%q)[%d] = %q; Hugging Face on %q gives %q", c.name, tc.text, k, got[k].Tokens, filled, want)
					}
				}
			}
		})
	}
}

// TestUnigramNormalizerParityExhaustive runs every code point of planes 0
// and 1 (and every 61st elsewhere), in several contexts, through Unigram
// tokenizers whose normalisers are NFKC, NFD + Lowercase and Precompiled
// (the test's charsmap, or the one TOKENIZE_PRECOMPILED_JSON names, such as
// XLM-RoBERTa's), and requires Hugging Face's ids, tokens and offsets.
func TestUnigramNormalizerParityExhaustive(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive Unicode comparison skipped in -short mode")
	}
	h := startHF(t)
	corpusFile := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpusFile, []byte(strings.Join(wordnetLines(t, 3000), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := trainParityUnigram(t, h, corpusFile)
	charsmap := precompiledFromEnv(t)
	if charsmap == "" {
		charsmap = buildCharsmap(t, testCharsmapRules())
	}
	var cps []rune
	for r := rune(1); r <= 0x10FFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if r < 0x20000 || r%61 == 0 {
			cps = append(cps, r)
		}
	}
	for _, c := range []unigramConfig{
		{"nfkc", typ("NFKC"), metaspacePre("always", true), xlmrTemplate, metaspaceDec("always"), true, true, 0},
		{"nfd-lowercase", normSeq(typ("NFD"), typ("Lowercase")), metaspacePre("first", true), xlmrTemplate, metaspaceDec("first"), true, false, 0},
		{"precompiled", normSeq(map[string]any{"type": "Precompiled", "precompiled_charsmap": charsmap}, replaceRegex(" {2,}", " ")),
			metaspacePre("always", true), xlmrTemplate, metaspaceDec("always"), true, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tj := buildParityUnigram(t, h, model, c)
			tok, err := Load(filepath.Dir(tj))
			if err != nil {
				t.Fatal(err)
			}
			const chunk = 4096
			diffs := 0
			for lo := 0; lo < len(cps); lo += chunk {
				group := cps[lo:min(lo+chunk, len(cps))]
				texts := make([]string, len(group))
				for i, r := range group {
					s := string(r)
					texts[i] = s + "a" + s + "b " + s + s + "\u0301 " + s + "  x"
				}
				want := h.encode(t, tj, texts, false)
				for i, text := range texts {
					got, err := tok.EncodeRaw(text)
					if err != nil {
						t.Fatal(err)
					}
					if !equalInts(got.IDs, want[i].IDs) || !equalStrings(got.Tokens, want[i].Tokens) || !equalOffsets(charOffsets(text, got.Offsets), want[i].Offsets) {
						if diffs++; diffs <= 20 {
							t.Errorf("U+%04X %q:\n  ours %q %v\n  hf   %q %v", group[i], text, got.Tokens, charOffsets(text, got.Offsets), want[i].Tokens, want[i].Offsets)
						}
					}
				}
			}
			t.Logf("%s: %d code points, %d differ", c.name, len(cps), diffs)
		})
	}
}
