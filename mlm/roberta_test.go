package mlm

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/tokenize"
)

// robertaWords are the words of the test byte-level BPE vocabulary; each
// is a token with and without the leading space 'Ġ'.
var robertaWords = []string{
	"the", "The", "cat", "dog", "sat", "on", "mat", "rug", "a", "I", "want", "to", "read", "write", "book", "letter", ".",
}

// writeRoBERTaTokenizer writes a RoBERTa-form tokenizer.json to dir: <s>
// <pad> </s> <unk> = 0-3, the 256 byte-level characters, every word of
// robertaWords with and without 'Ġ' built by left-to-right merges, and
// <mask> last with lstrip. It returns the vocabulary.
func writeRoBERTaTokenizer(t *testing.T, dir string) map[string]int {
	t.Helper()
	vocab := map[string]int{}
	var order []string
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(order)
			order = append(order, tok)
		}
	}
	for _, s := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
		add(s)
	}
	for b := range 256 {
		add(string(byteLevelRune(byte(b))))
	}
	var merges []string
	seen := map[string]bool{}
	for _, w := range robertaWords {
		for _, form := range []string{"Ġ" + w, w} {
			r := []rune(form)
			cur := string(r[0])
			for _, c := range r[1:] {
				m := cur + " " + string(c)
				cur += string(c)
				if !seen[m] {
					seen[m] = true
					merges = append(merges, m)
				}
				add(cur)
			}
		}
	}
	add("<mask>")
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	doc := map[string]any{
		"version": "1.0",
		"added_tokens": []added{
			{ID: 0, Content: "<s>", Normalized: true, Special: true},
			{ID: 1, Content: "<pad>", Normalized: true, Special: true},
			{ID: 2, Content: "</s>", Normalized: true, Special: true},
			{ID: 3, Content: "<unk>", Normalized: true, Special: true},
			{ID: vocab["<mask>"], Content: "<mask>", LStrip: true, Special: true},
		},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", 2}, "cls": []any{"<s>", 0}, "trim_offsets": true, "add_prefix_space": false},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges,
		},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return vocab
}

// byteLevelRune is GPT-2's byte-to-character mapping, written out here
// independently of package tokenize.
func byteLevelRune(b byte) rune {
	if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || 0xAE <= b {
		return rune(b)
	}
	n := rune(0)
	for c := range int(b) {
		cb := byte(c)
		if !(('!' <= cb && cb <= '~') || (0xA1 <= cb && cb <= 0xAC) || 0xAE <= cb) {
			n++
		}
	}
	return 256 + n
}

// newRoBERTa builds a small random-weight RoBERTa with the test byte-level
// BPE tokenizer.
func newRoBERTa(t *testing.T, seed uint64) (*Model, map[string]int) {
	t.Helper()
	dir := t.TempDir()
	vocab := writeRoBERTaTokenizer(t, dir)
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := familyCases()[1].cfg
	cfg.VocabSize = tok.VocabSize()
	cfg.MaxPositionEmbeddings = 40
	m, err := New(cfg, tok, Options{Device: "cpu", Threads: 1, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, vocab
}

// TestRoBERTaEndToEnd runs a small random-weight RoBERTa with a byte-level
// BPE tokenizer through everything a BERT model does: users' [MASK]
// becomes <mask> (and the model's own <mask> works the same), answers are
// the tokens they read as at their masks ("Ġmat" after a space, "The" at
// the start), FillMask decodes like the pipeline, Score's suggestions are
// usable answers, FineTune lowers the gold NLL that Evaluate measures on
// its items, and Save writes tokenizer files that Load reads back to a
// model with identical outputs.
func TestRoBERTaEndToEnd(t *testing.T) {
	ctx := context.Background()
	m, vocab := newRoBERTa(t, 11)

	// Answer pieces depend on the space before the mask.
	for _, c := range []struct {
		text   string
		answer string
		want   []string
	}{
		{"the cat sat on the [MASK] .", "mat", []string{"Ġmat"}},
		{"[MASK] cat sat on the mat .", "The", []string{"The"}},
		{"the cat sat on the [MASK].", "mat", []string{"Ġmat"}},
		{"the cat sat on the[MASK] .", "mat", []string{"mat"}},
		{"I want to [MASK] a book", "write", []string{"Ġwrite"}},
	} {
		text := m.userText(c.text)
		pieces, reason := m.answerPieces(text, []string{c.answer})
		if reason != "" {
			t.Fatalf("%q: %s", c.text, reason)
		}
		var want []int64
		for _, w := range c.want {
			want = append(want, int64(vocab[w]))
		}
		if !slices.Equal(pieces[0], want) {
			t.Errorf("answer %q in %q: ids %v, want %v (%q)", c.answer, c.text, pieces[0], want, c.want)
		}
	}

	// [MASK] and <mask> give the same predictions; the sequence decodes
	// with the predicted token in place.
	res, err := m.FillMask(ctx, []string{"the cat sat on the [MASK] .", "the cat sat on the <mask> ."}, FillOptions{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	for q := range res[0].Masks[0] {
		a, b := res[0].Masks[0][q], res[1].Masks[0][q]
		if a.Token != b.Token || math.Abs(a.Score-b.Score) > 1e-6 {
			t.Fatalf("[MASK] and <mask> predict differently: %+v, %+v", a, b)
		}
		if want := "the cat sat on the" + a.TokenStr + " ."; a.Sequence != want {
			t.Errorf("sequence %q, want %q", a.Sequence, want)
		}
	}
	if _, err := m.FillMask(ctx, []string{"no mask here"}, FillOptions{}); !errors.Is(err, ErrNoMask) {
		t.Errorf("text without mask: %v, want ErrNoMask", err)
	}

	checkScoreSuggestions(t, m, 'Ġ')

	// Fine-tuning on labelled items lowers their gold NLL.
	_, after := checkFineTuneLearns(t, m, 80)
	res, err = m.FillMask(ctx, []string{"I want to [MASK] a book"}, FillOptions{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p := res[0].Masks[0][0]; p.TokenStr != " read" || p.Sequence != "I want to read a book" {
		t.Errorf("after fine-tuning: %+v, want \" read\"", p)
	}

	// Save and Load: tokenizer files transformers reads, same outputs.
	dir := t.TempDir()
	if err := m.SaveWith(ctx, dir, SaveOptions{DType: safetensors.F32}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", ConfigFile, SafetensorsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("saved model lacks %s", f)
		}
	}
	m2, err := Load(ctx, dir, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.Tokenizer().Kind() != "BPE" || m2.Tokenizer().MaskToken() != "<mask>" {
		t.Fatalf("reloaded tokenizer: %s, mask %q", m2.Tokenizer().Kind(), m2.Tokenizer().MaskToken())
	}
	texts := []string{"the cat sat on the [MASK] .", "[MASK] want to write a [MASK]", "I  want to\t[MASK] a book ."}
	checkReloadedSame(t, m, m2, texts, after)
}

// TestLoadBPETokenizerFromFolder loads a RoBERTa checkpoint folder with a
// minimal byte-level BPE tokenizer.json beside its weights (no vocab.json
// or merges.txt), as downloaded from the Hub: Load used to refuse it with
// ErrUnsupportedTokenizer before fill-mask with BPE was wired up; now it
// loads and fills users' [MASK].
func TestLoadBPETokenizerFromFolder(t *testing.T) {
	fc := familyCases()[1]
	m := fc.newModel(t, 6)
	dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor { return sd })
	vocab := map[string]int{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
	for i := range 26 {
		vocab[string(rune('a'+i))] = 5 + i
	}
	added := []map[string]any{}
	for _, tok := range []string{"<s>", "<pad>", "</s>", "<unk>", "<mask>"} {
		added = append(added, map[string]any{"id": vocab[tok], "content": tok, "single_word": false, "lstrip": tok == "<mask>",
			"rstrip": false, "normalized": false, "special": true})
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added, "normalizer": nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", 2}, "cls": []any{"<s>", 0}, "trim_offsets": true, "add_prefix_space": false},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []string{}},
	}
	b, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m2, err := Load(ctx, dir, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatalf("Load with a byte-level BPE tokenizer: %v", err)
	}
	defer m2.Close()
	if k, mt := m2.Tokenizer().Kind(), m2.Tokenizer().MaskToken(); k != "BPE" || mt != "<mask>" {
		t.Fatalf("loaded tokenizer: kind %s, mask %q; want BPE, <mask>", k, mt)
	}
	res, err := m2.FillMask(ctx, []string{"abc[MASK]"}, FillOptions{TopK: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Masks) != 1 || len(res[0].Masks[0]) != 3 {
		t.Fatalf("FillMask: %+v, want 3 predictions for one mask", res)
	}
}

// TestLoadUnsupportedTokenizer checks the error for a tokenizer that is
// neither WordPiece, byte-level BPE nor Unigram (a WordLevel model).
func TestLoadUnsupportedTokenizer(t *testing.T) {
	fc := familyCases()[1]
	m := fc.newModel(t, 5)
	dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor { return sd })
	wordLevel := `{"version":"1.0","model":{"type":"WordLevel","vocab":{"<s>":0,"<unk>":1},"unk_token":"<unk>"}}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(wordLevel), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(context.Background(), dir, Options{Device: "cpu", Threads: 1})
	if !errors.Is(err, ErrUnsupportedTokenizer) || !errors.Is(err, tokenize.ErrUnsupported) ||
		!strings.Contains(err.Error(), "WordLevel") || !strings.Contains(err.Error(), "LoadWeights") {
		t.Fatalf("Load error %v, want ErrUnsupportedTokenizer naming WordLevel and LoadWeights", err)
	}
}
