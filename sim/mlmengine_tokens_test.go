package sim

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/tokenize"
)

// saveTinyModel saves a small random-weight model of cfg with tok and
// returns an engine over the saved folder, so that Start goes through
// mlm.Load as a simulation does.
func saveTinyModel(t *testing.T, cfg mlm.Config, tok *tokenize.Tokenizer) *MLMEngine {
	t.Helper()
	cfg.VocabSize = tok.VocabSize()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads = 32, 64, 2, 2
	opts := mlm.Options{Device: "cpu", Threads: 1, Seed: 7}
	m, err := mlm.New(cfg, tok, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	return &MLMEngine{Dir: dir, Options: opts}
}

// wordPieceEngine is a tiny uncased BERT with a WordPiece vocabulary.
func wordPieceEngine(t *testing.T) *MLMEngine {
	t.Helper()
	tok, err := tokenize.FromVocab([]string{
		"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "cat", "dog", "sat", "on", "mat", "rug",
		"##s", "garden", "##house",
	}, tokenize.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	cfg := mlm.TinyConfig(tok.VocabSize())
	cfg.MaxPositionEmbeddings = 32
	return saveTinyModel(t, cfg, tok)
}

// bpeWords are the words of the test byte-level BPE vocabulary, as RoBERTa
// writes them: most only after a space ("Ġmat"), so that the word without
// its space splits into single characters ("m", "a", "t"); "The" and
// "the" also without.
var bpeWords = []string{"Ġthe", "Ġcat", "Ġdog", "Ġsat", "Ġon", "Ġmat", "Ġrug", "Ġ.", "The", "the"}

// bpeEngine is a tiny RoBERTa with a byte-level BPE tokenizer: <s> <pad>
// </s> <unk> = 0-3, the 256 byte-level characters, bpeWords built by
// left-to-right merges, and <mask> last with lstrip.
func bpeEngine(t *testing.T) *MLMEngine {
	t.Helper()
	vocab := map[string]int{}
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(vocab)
		}
	}
	for _, s := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
		add(s)
	}
	for b := range 256 {
		add(string(byteLevelRune(byte(b))))
	}
	var merges []string
	for _, w := range bpeWords {
		r := []rune(w)
		cur := string(r[0])
		for _, c := range r[1:] {
			if m := cur + " " + string(c); !slices.Contains(merges, m) {
				merges = append(merges, m)
			}
			cur += string(c)
			add(cur)
		}
	}
	add("<mask>")
	added := func(id int, content string, lstrip bool) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": lstrip, "rstrip": false,
			"normalized": false, "special": true}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "normalizer": nil,
		"added_tokens": []map[string]any{
			added(0, "<s>", false), added(1, "<pad>", false), added(2, "</s>", false), added(3, "<unk>", false),
			added(vocab["<mask>"], "<mask>", true),
		},
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
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Kind() != "BPE" || tok.MaskToken() != "<mask>" {
		t.Fatalf("test tokenizer: kind %s, mask %q", tok.Kind(), tok.MaskToken())
	}
	cfg := mlm.TinyConfig(tok.VocabSize())
	cfg.ModelType = mlm.ModelTypeRoBERTa
	cfg.Architectures = nil
	cfg.TypeVocabSize = 1
	cfg.PadTokenID = 1
	cfg.LayerNormEps = 1e-5
	cfg.MaxPositionEmbeddings = 40
	return saveTinyModel(t, cfg, tok)
}

// unigramWords are the pieces of the test Unigram vocabulary, as
// XLM-RoBERTa's SentencePiece model writes words: with the Metaspace
// replacement character '▁' that starts a word, so that a word glued to
// the one before it splits into single characters ("m", "a", "t").
var unigramWords = []string{"▁the", "▁cat", "▁dog", "▁sat", "▁on", "▁mat", "▁rug", "▁.", "▁The"}

// unigramEngine is a tiny XLM-RoBERTa with an XLM-R-form SentencePiece
// Unigram tokenizer.json: <s> <pad> </s> <unk> = 0-3, unigramWords, "▁"
// and their single characters (less likely), <mask> last with lstrip;
// NFKC normaliser, Metaspace pre-tokeniser and decoder (prepend_scheme
// always), TemplateProcessing "<s> $A </s>".
func unigramEngine(t *testing.T) *MLMEngine {
	t.Helper()
	ids := map[string]bool{}
	var pieces [][2]any
	add := func(p string, score float64) {
		if !ids[p] {
			ids[p] = true
			pieces = append(pieces, [2]any{p, score})
		}
	}
	for _, s := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
		add(s, 0)
	}
	for _, w := range unigramWords {
		add(w, -2)
	}
	add("▁", -4)
	for _, w := range unigramWords {
		for _, r := range strings.TrimPrefix(w, "▁") {
			add(string(r), -6)
		}
	}
	add("<mask>", 0)
	added := func(id int, content string, lstrip bool) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": lstrip, "rstrip": false,
			"normalized": false, "special": true}
	}
	special := func(tok string) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": 0}}
	}
	metaspace := map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []map[string]any{
			added(0, "<s>", false), added(1, "<pad>", false), added(2, "</s>", false), added(3, "<unk>", false),
			added(len(pieces)-1, "<mask>", true),
		},
		"normalizer":    map[string]any{"type": "NFKC"},
		"pre_tokenizer": metaspace,
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{special("<s>"), map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, special("</s>")},
		},
		"decoder": metaspace,
		"model":   map[string]any{"type": "Unigram", "unk_id": 3, "vocab": pieces},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Kind() != "Unigram" || tok.MaskToken() != "<mask>" {
		t.Fatalf("test tokenizer: kind %s, mask %q", tok.Kind(), tok.MaskToken())
	}
	cfg := mlm.TinyConfig(tok.VocabSize())
	cfg.ModelType = mlm.ModelTypeXLMRoBERTa
	cfg.Architectures = nil
	cfg.TypeVocabSize = 1
	cfg.PadTokenID = 1
	cfg.LayerNormEps = 1e-5
	cfg.MaxPositionEmbeddings = 40
	return saveTinyModel(t, cfg, tok)
}

// byteLevelRune is GPT-2's byte-to-character mapping, written out here
// independently of package tokenize.
func byteLevelRune(b byte) rune {
	printable := func(c byte) bool { return ('!' <= c && c <= '~') || (0xA1 <= c && c <= 0xAC) || 0xAE <= c }
	if printable(b) {
		return rune(b)
	}
	n := rune(0)
	for c := range int(b) {
		if !printable(byte(c)) {
			n++
		}
	}
	return 256 + n
}

// startModel starts eng's model and closes it at the end of the test.
func startModel(t *testing.T, eng *MLMEngine) *mlmModel {
	t.Helper()
	model, err := eng.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { model.Close() })
	return model.(*mlmModel)
}

// TestMLMEngineAnswerPiecesAtMask checks that the simulation counts an
// answer's tokens as fine-tuning and evaluation tokenize it, at its mask:
// for byte-level BPE "mat" after a space is the one token "Ġmat" (on its
// own it would be "m", "a", "t"), glued to the word before it is not; for
// Unigram likewise with "▁mat", and "The" at the start of a text is
// "▁The" (Metaspace prepends '▁'); for WordPiece the context does not
// matter.
func TestMLMEngineAnswerPiecesAtMask(t *testing.T) {
	if testing.Short() {
		t.Skip("real model")
	}
	engines := map[string]*mlmModel{
		"WordPiece": startModel(t, wordPieceEngine(t)),
		"BPE":       startModel(t, bpeEngine(t)),
		"Unigram":   startModel(t, unigramEngine(t)),
	}
	for _, c := range []struct {
		tok     string
		text    string
		answers []string
		want    []int
	}{
		{"WordPiece", "the cat sat on the [MASK] .", []string{"mat"}, []int{1}},
		{"WordPiece", "[MASK] cat sat on the mat .", []string{"The"}, []int{1}},
		{"WordPiece", "the cat sat on the[MASK] .", []string{"mat"}, []int{1}},
		{"WordPiece", "the [MASK] sat on the [MASK] .", []string{"cats", "gardenhouse"}, []int{2, 2}},
		{"WordPiece", "the cat sat on the [MASK] .", []string{"zebra"}, []int{0}},
		{"BPE", "the cat sat on the [MASK] .", []string{"mat"}, []int{1}},
		{"BPE", "the cat sat on the <mask> .", []string{"mat"}, []int{1}},
		{"BPE", "[MASK] cat sat on the mat .", []string{"The"}, []int{1}},
		{"BPE", "the cat sat on the[MASK] .", []string{"mat"}, []int{3}},
		{"BPE", "the [MASK] sat on the [MASK] .", []string{"dog", "rug"}, []int{1, 1}},
		{"BPE", "the [MASK] sat on the [MASK] .", []string{"cats", "mats"}, []int{2, 2}},
		{"BPE", "the cat sat on the [MASK] .", []string{"mat", "rug"}, []int{0, 0}},
		{"Unigram", "the cat sat on the [MASK] .", []string{"mat"}, []int{1}},
		{"Unigram", "the cat sat on the <mask> .", []string{"mat"}, []int{1}},
		{"Unigram", "[MASK] cat sat on the mat .", []string{"The"}, []int{1}},
		{"Unigram", "the cat sat on the[MASK] .", []string{"mat"}, []int{3}},
		{"Unigram", "the [MASK] sat on the [MASK] .", []string{"dog", "rug"}, []int{1, 1}},
		{"Unigram", "the [MASK] sat on the [MASK] .", []string{"cats", "mats"}, []int{2, 2}},
		{"Unigram", "the cat sat on the [MASK] .", []string{"zebra"}, []int{0}},
		{"Unigram", "the cat sat on the [MASK] .", []string{"mat", "rug"}, []int{0, 0}},
	} {
		x := engines[c.tok]
		if got := x.AnswerPieces(c.text, c.answers); !slices.Equal(got, c.want) {
			t.Errorf("%s: answers %q in %q: %v tokens, want %v", c.tok, c.answers, c.text, got, c.want)
		}
	}
}

// TestMLMEngineSurprisalAtMask checks that an item's surprisal is the mean
// −ln p of each probed word's first token as it reads at its mask: for
// byte-level BPE "Ġcat" inside a sentence and "The" at its start; for
// Unigram "▁cat" and "▁The".
func TestMLMEngineSurprisalAtMask(t *testing.T) {
	if testing.Short() {
		t.Skip("real model")
	}
	ctx := context.Background()
	for _, c := range []struct {
		tok    string
		eng    func(*testing.T) *MLMEngine
		items  []Item
		tokens map[string]string // probed word → its first token at its mask ("The" only starts a text)
	}{
		{"WordPiece", wordPieceEngine,
			[]Item{{ID: "a", Text: "The cat sat on the mat ."}, {ID: "b", Text: "The dog sat on the [MASK] ."}},
			map[string]string{"The": "the", "the": "the", "cat": "cat", "dog": "dog", "sat": "sat", "on": "on", "mat": "mat"}},
		{"BPE", bpeEngine,
			[]Item{{ID: "a", Text: "The cat sat on the mat ."}, {ID: "b", Text: "The dog sat on the [MASK] ."}},
			map[string]string{"The": "The", "the": "Ġthe", "cat": "Ġcat", "dog": "Ġdog", "sat": "Ġsat", "on": "Ġon", "mat": "Ġmat"}},
		{"Unigram", unigramEngine,
			[]Item{{ID: "a", Text: "The cat sat on the mat ."}, {ID: "b", Text: "The dog sat on the [MASK] ."}},
			map[string]string{"The": "▁The", "the": "▁the", "cat": "▁cat", "dog": "▁dog", "sat": "▁sat", "on": "▁on", "mat": "▁mat"}},
	} {
		t.Run(c.tok, func(t *testing.T) {
			x := startModel(t, c.eng(t))
			got, err := x.Surprisal(ctx, c.items)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range c.items {
				probes := surprisalProbes(it)
				if len(probes) == 0 {
					t.Fatalf("item %q has no probes", it.Text)
				}
				var sum float64
				for _, pr := range probes {
					tok := c.tokens[pr.word]
					if tok == "" {
						t.Fatalf("no expected token for probe %q of %q", pr.word, it.Text)
					}
					res, err := x.m.FillMask(ctx, []string{pr.text}, mlm.FillOptions{TopK: 1, Targets: []string{tok}})
					if err != nil {
						t.Fatal(err)
					}
					sum += -math.Log(res[0].Masks[pr.mask][0].Score)
				}
				want := sum / float64(len(probes))
				// A random-weight model is nearly uniform, so the wrong
				// token is only about 1e-3 nats off; batching moves the
				// value by about 1e-7.
				if math.Abs(got[i]-want) > 1e-6 {
					t.Errorf("surprisal of %q = %v, want %v (first tokens at the masks, %q)", it.Text, got[i], want, c.tokens)
				}
			}
		})
	}
}
