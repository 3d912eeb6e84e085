package tokenize

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// bpeConfig is a byte-level BPE tokenizer for the parity tests to train.
type bpeConfig struct {
	name           string
	addPrefixSpace bool
	trimOffsets    bool
	fullAlphabet   bool
	unk            string
	fuseUnk        bool
	// normalizer is the tokenizer.json normalizer (nil for none); layout
	// "modernbert" writes GPT-NeoX's and ModernBERT's layout (see
	// tools/hfparity) instead of RoBERTa's.
	normalizer map[string]any
	layout     string
}

// bpeConfigs are the byte-level BPE settings the parity tests cover:
// RoBERTa's, a prefix space, untrimmed offsets, and vocabularies without
// the full byte alphabet (characters dropped, or mapped to a fused unknown
// token).
var bpeConfigs = []bpeConfig{
	{"roberta", false, true, true, "", false, nil, ""},
	{"prefix-space", true, true, true, "", false, nil, ""},
	{"untrimmed", false, false, true, "", false, nil, ""},
	{"prefix-space-untrimmed", true, false, true, "", false, nil, ""},
	{"partial-alphabet-no-unk", false, true, false, "", false, nil, ""},
	{"partial-alphabet-fused-unk", false, true, false, "<unk>", true, nil, ""},
	{"partial-alphabet-unk", true, true, false, "<unk>", false, nil, ""},
}

// bpeHardCases are the WordPiece hard cases with RoBERTa's special tokens
// as well as BERT's, and cases for the GPT-2 split pattern, the byte-level
// offsets and the added tokens of the parity tokenizer (<mask> with lstrip,
// <ent> with rstrip, foo as a single word).
func bpeHardCases() []string {
	var out []string
	r := strings.NewReplacer("[MASK]", "<mask>", "[CLS]", "<s>", "[SEP]", "</s>", "[PAD]", "<pad>", "[UNK]", "<unk>", "[mask]", "<MASK>")
	for _, s := range hardCases() {
		out = append(out, s)
		if t := r.Replace(s); t != s {
			out = append(out, t)
		}
	}
	long := strings.Repeat("ab", 3000)
	return append(out,
		// The split pattern: contractions (lowercase only), optional
		// spaces, whitespace runs before words and at the end.
		"it's", "It'S", "they're here", "we've", "I'm", "you'll", "he'd", "'s", "''s", "x's's", "'re'", "' s",
		"don't stop", "O'Neill", "rock'n'roll", "a  b", "a   b", "a\n b", "a \nb", "a\n\nb", "a \n \n b", "a\t\tb",
		" leading", "  two leading", "trailing ", "trailing  ", "\n", " \n", "\n ", "  ", "\t", "\r\n",
		"a \u00a0b", "a\u00a0 b", "a\u3000 b", " \u3000", "\u00a0\u00a0x", "x\u2028y", "x \u0085 y",
		"123 4567 89", "3.14159", "1,000,000", "x2 2x", "①② ③", "٣٤٥ numbers", "½x", "v1.2.3-rc4",
		"!!! ??? ...", " !x", "a!b", "a ! b", "(a) [b] {c}", "$5 €5 £5", "#tag @user", "e-mail", "a_b", "__init__",
		"e\u0301", " e\u0301", "\u0301", " \u0301x", "x\u0301\u0302 y", "👨\u200d👩\u200d👧 x", " 👍🏽👍🏽", "🇫🇷🇩🇪", "x\u200by", "\ufeffBOM",
		"中文 字符", " 中文", "日本語のテキスト", "한국어  텍스트", "ไทย ภาษา", "العربية نص", "עברית", "हिन्दी",
		long, "x"+long, " "+long, strings.Repeat("é", 500), strings.Repeat("😀", 300), strings.Repeat(" ", 100)+"x",
		// Mask tokens with and without spaces around them.
		"a <mask> b", "a<mask>b", "a <mask>b", "a<mask> b", "a  <mask>  b", "a\t<mask>", "a\n<mask>", "a\u00a0<mask>",
		"a\u3000<mask>", "<mask> a", " <mask>", "  <mask>", "<mask> ", "<mask><mask>", "<mask> <mask>", "a <mask>, <mask>.",
		"I want to <mask> a book.", "The <mask> sat on the <mask>.", "<s><mask></s>", "<s> <mask> </s>", "x</s> <mask>",
		"<mask>'s", "<mask> 's", "'s <mask>", "<mask>123", "(<mask>)", " (<mask>) ",
		// <ent> (rstrip), foo (single word, matched after normalisation).
		"<ent> x", "<ent>   x", "x <ent>", "<ent><ent>", "<ent> <mask>", "<mask> <ent>  <mask>",
		"foo", "foo bar", "xfoo", "foox", "foo_bar", "foo.bar", " foo ", "foo<mask>", "<mask>foo",
	)
}

// trainParityBPE trains a byte-level BPE through tools/hfparity on the
// WordNet gloss lines and the hard cases, saved as a RoBERTa tokenizer.json
// by the Hugging Face library, and returns its path.
func trainParityBPE(t *testing.T, h *hf, corpusFile string, c bpeConfig) string {
	t.Helper()
	dir := t.TempDir()
	tj := filepath.Join(dir, "tokenizer.json")
	req := map[string]any{
		"op": "train_bpe", "files": []string{corpusFile}, "save": tj,
		"add_prefix_space": c.addPrefixSpace, "trim_offsets": c.trimOffsets, "full_alphabet": c.fullAlphabet,
		"fuse_unk": c.fuseUnk,
	}
	if c.unk != "" {
		req["unk_token"] = c.unk
	}
	if c.normalizer != nil {
		req["normalizer"] = c.normalizer
	}
	if c.layout != "" {
		req["layout"] = c.layout
	}
	var res struct {
		VocabSize int `json:"vocab_size"`
		Merges    int `json:"merges"`
	}
	h.call(t, req, &res)
	if res.Merges < 1000 {
		t.Fatalf("the parity tokenizer has only %d merges", res.Merges)
	}
	return tj
}

// bpeFuzzTexts returns n random texts drawn from pieces that stress the
// split pattern, the byte-level offsets and the added tokens.
func bpeFuzzTexts(n int, seed uint64) []string {
	parts := []string{
		" ", " ", "  ", "\n", "\t", "\u00a0", "\u3000", "\u2003", "a", "b", "the", "The", "Z", "é", "e\u0301", "\u0301",
		"1", "42", "²", "½", "'", "'s", "'re", "'S", "!", "?", ".", ",", "-", "(", "中", "文", "😀", "👍🏽", "\u200d",
		"👨\u200d👩", "\ufeff", "x", "word", "words", "reading", "<mask>", "<s>", "</s>", "<pad>", "<ent>", "foo",
		"<mask", "mask>", "<", ">", "\u0000", "\u007f", "\U0001f1eb\U0001f1f7", "Ω", "ß", "İ", "ǅ",
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]string, n)
	for i := range out {
		var sb strings.Builder
		for range 1 + rng.IntN(14) {
			sb.WriteString(parts[rng.IntN(len(parts))])
		}
		out[i] = sb.String()
	}
	return out
}

// TestBPEEncodeParityWithHuggingFace trains byte-level BPE tokenizers with
// the real Hugging Face trainer (one per setting in bpeConfigs), written in
// RoBERTa's form by the Hugging Face serializer, loads each with Load and
// requires the ids, tokens and offsets of Hugging Face's encoding on 2,000
// WordNet lines, the hard cases and 3,000 random texts; then the same after
// Save and Load; then Decode (with and without special tokens) on those
// encodings and on random id sequences, which split characters between
// tokens (invalid UTF-8 decodes to U+FFFD as in Rust).
func TestBPEEncodeParityWithHuggingFace(t *testing.T) {
	h := startHF(t)
	train := wordnetLines(t, 6000)
	hard := bpeHardCases()
	corpusFile := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpusFile, []byte(strings.Join(append(slices.Clone(train), hard...), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	texts := append(append(wordnetLines(t, 2000), hard...), bpeFuzzTexts(3000, 1)...)
	for _, c := range bpeConfigs {
		t.Run(c.name, func(t *testing.T) {
			tj := trainParityBPE(t, h, corpusFile, c)
			tok, err := Load(filepath.Dir(tj))
			if err != nil {
				t.Fatalf("load the tokenizer.json Hugging Face wrote: %v", err)
			}
			if tok.Kind() != "BPE" || tok.MaskToken() != "<mask>" || tok.CLSID() != 0 || tok.SEPID() != 2 || tok.PadID() != 1 {
				t.Fatalf("kind %s, mask %q, cls %d, sep %d, pad %d", tok.Kind(), tok.MaskToken(), tok.CLSID(), tok.SEPID(), tok.PadID())
			}
			checkBPEParity(t, h, tok, tj, texts, hard)
		})
	}
}

// checkBPEParity requires that tok, loaded from the tokenizer.json tj that
// Hugging Face wrote, encodes texts as Hugging Face does (ids, tokens and
// character offsets), hard also without special tokens; that it does so
// after Save and Load (and that Hugging Face reads the saved file to the
// same encodings); and that Decode agrees with Hugging Face's decoder, with
// and without special tokens, on the encodings of hard and of the last 500
// texts and on random id sequences.
func checkBPEParity(t *testing.T, h *hf, tok *Tokenizer, tj string, texts, hard []string) {
	t.Helper()
	if d := compareEncodings(t, h, tok, tj, texts); d != 0 {
		t.Errorf("%d of %d texts encode to different ids", d, len(texts))
	}
	// Without special tokens (WordPieces, EncodeRaw).
	want := h.encode(t, tj, hard, false)
	for i, text := range hard {
		got, err := tok.EncodeRaw(text)
		if err != nil {
			t.Fatal(err)
		}
		if !equalInts(got.IDs, want[i].IDs) || !equalOffsets(charOffsets(text, got.Offsets), want[i].Offsets) {
			t.Errorf("EncodeRaw(%q) = %v %v, Hugging Face %v %v", text, got.IDs, charOffsets(text, got.Offsets), want[i].IDs, want[i].Offsets)
		}
	}

	// Saved and loaded again: same encodings (and Hugging Face
	// reads the saved file to the same ids).
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := compareEncodings(t, h, again, filepath.Join(dir, "tokenizer.json"), texts[:1000]); d != 0 {
		t.Errorf("after Save and Load, %d texts encode to different ids", d)
	}

	// Decode.
	var ids [][]int
	for _, text := range append(slices.Clone(hard), texts[len(texts)-500:]...) {
		e, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.IDs)
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
}

// TestBPEVocabMergesFolderMatchesTokenizerJSON writes a trained tokenizer
// as the folder transformers' RobertaTokenizer reads (vocab.json,
// merges.txt, tokenizer_config.json and special_tokens_map.json, no
// tokenizer.json) and checks that Load builds the tokenizer Hugging Face
// runs from tokenizer.json: the same ids and offsets on the hard cases.
func TestBPEVocabMergesFolderMatchesTokenizerJSON(t *testing.T) {
	h := startHF(t)
	corpusFile := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpusFile, []byte(strings.Join(append(wordnetLines(t, 3000), bpeHardCases()...), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range bpeConfigs[:2] {
		t.Run(c.name, func(t *testing.T) {
			tj := trainParityBPE(t, h, corpusFile, c)
			tok, err := Load(filepath.Dir(tj))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := tok.Save(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "tokenizer.json")); err != nil {
				t.Fatal(err)
			}
			folder, err := Load(dir)
			if err != nil {
				t.Fatalf("load vocab.json + merges.txt: %v", err)
			}
			// The extra added tokens <ent> and foo are not in a
			// RobertaTokenizer folder; leave them out of the texts.
			var texts []string
			for _, s := range bpeHardCases() {
				if !strings.Contains(s, "<ent>") && !strings.Contains(s, "foo") {
					texts = append(texts, s)
				}
			}
			if d := compareEncodings(t, h, folder, tj, texts); d != 0 {
				t.Errorf("%d texts encode differently from the tokenizer.json", d)
			}
		})
	}
}

// TestByteLevelSplitParityExhaustive runs code points through our GPT-2
// split and byte-level mapping and through Hugging Face's ByteLevel
// pre-tokenizer, and requires the same pieces: each code point in several
// positions (after a space, between letters, next to digits, doubled,
// before an apostrophe), for every code point of planes 0 and 1 and the
// tag plane and every 61st elsewhere; all with TOKENIZE_EXHAUSTIVE=1.
func TestByteLevelSplitParityExhaustive(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive Unicode comparison skipped in -short mode")
	}
	h := startHF(t)
	all := os.Getenv("TOKENIZE_EXHAUSTIVE") == "1"
	var cps []rune
	for r := rune(1); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if all || r < 0x20000 || (r >= 0xE0000 && r < 0xE1000) || r%61 == 0 {
			cps = append(cps, r)
		}
	}
	const chunk = 4096
	diffs := 0
	for lo := 0; lo < len(cps); lo += chunk {
		group := cps[lo:min(lo+chunk, len(cps))]
		texts := make([]string, len(group))
		for i, r := range group {
			c := string(r)
			texts[i] = "a" + c + "b " + c + "1" + c + c + " 2" + c + "'s" + c + "  " + c + " ."
		}
		var want [][][2]json.RawMessage
		h.call(t, map[string]any{"op": "pretokenize", "byte_level": map[string]any{"add_prefix_space": false}, "texts": texts}, &want)
		for i, text := range texts {
			var wantPieces []string
			for _, p := range want[i] {
				var s string
				if err := json.Unmarshal(p[0], &s); err != nil {
					t.Fatal(err)
				}
				wantPieces = append(wantPieces, s)
			}
			var gotPieces []string
			from := 0
			for _, to := range splitGPT2([]byte(text), nil) {
				gotPieces = append(gotPieces, string(appendByteLevel(nil, []byte(text[from:to]))))
				from = to
			}
			if !equalStrings(gotPieces, wantPieces) {
				if diffs++; diffs <= 20 {
					t.Errorf("split U+%04X %q: %q, Hugging Face %q", group[i], text, gotPieces, wantPieces)
				}
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d code points split differently", diffs)
	}
}
