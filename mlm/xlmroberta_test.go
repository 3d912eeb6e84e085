package mlm

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
)

// xlmrWords are the words of the test Unigram vocabulary; each is a piece
// with and without the Metaspace replacement character '▁'.
var xlmrWords = []string{
	"the", "The", "cat", "dog", "sat", "on", "mat", "rug", "a", "I", "want", "to", "read", "write", "book", "letter", ".", "café",
}

// writeXLMRTokenizer writes an XLM-RoBERTa-form tokenizer.json to dir: a
// Unigram model with <s> <pad> </s> <unk> = 0-3, every word of xlmrWords
// with and without '▁', the single characters (less likely, so that a
// word is one piece) and <mask> last with lstrip; an NFKC normaliser
// followed by XLM-R's Replace of runs of spaces (in place of its
// Precompiled charsmap), the Metaspace pre-tokeniser and decoder
// (prepend_scheme always) and the TemplateProcessing "<s> $A </s>". It
// returns the vocabulary.
func writeXLMRTokenizer(t *testing.T, dir string) map[string]int {
	t.Helper()
	vocab := map[string]int{}
	var pieces [][2]any
	add := func(p string, score float64) {
		if _, ok := vocab[p]; !ok {
			vocab[p] = len(pieces)
			pieces = append(pieces, [2]any{p, score})
		}
	}
	for _, s := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
		add(s, 0)
	}
	for _, w := range xlmrWords {
		add("▁"+w, -2)
		add(w, -3)
	}
	add("▁", -4)
	for _, w := range xlmrWords {
		for _, r := range w {
			add(string(r), -6)
		}
	}
	add("s", -6)
	add("<mask>", 0)
	added := func(id int, content string, lstrip bool) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": lstrip, "rstrip": false,
			"normalized": false, "special": true}
	}
	special := func(tok string) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": 0}}
	}
	seq := func(id string) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": id, "type_id": 0}}
	}
	metaspace := func(typ string) map[string]any {
		return map[string]any{"type": typ, "replacement": "▁", "prepend_scheme": "always", "split": true}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []map[string]any{
			added(0, "<s>", false), added(1, "<pad>", false), added(2, "</s>", false), added(3, "<unk>", false),
			added(vocab["<mask>"], "<mask>", true),
		},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFKC"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " {2,}"}, "content": " "},
		}},
		"pre_tokenizer": metaspace("Metaspace"),
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{special("<s>"), seq("A"), special("</s>")},
			"pair":   []any{special("<s>"), seq("A"), special("</s>"), special("</s>"), seq("B"), special("</s>")},
			"special_tokens": map[string]any{
				"<s>":  map[string]any{"id": "<s>", "ids": []int{0}, "tokens": []string{"<s>"}},
				"</s>": map[string]any{"id": "</s>", "ids": []int{2}, "tokens": []string{"</s>"}},
			},
		},
		"decoder": metaspace("Metaspace"),
		"model":   map[string]any{"type": "Unigram", "unk_id": 3, "byte_fallback": false, "vocab": pieces},
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

// xlmrConfigJSON is a config.json as transformers writes one for an
// XLMRobertaForMaskedLM (xlm-roberta-base's keys), sized for the tests.
const xlmrConfigJSON = `{
  "architectures": ["XLMRobertaForMaskedLM"],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 32,
  "initializer_range": 0.02,
  "intermediate_size": 64,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 42,
  "model_type": "xlm-roberta",
  "num_attention_heads": 4,
  "num_hidden_layers": 2,
  "output_past": true,
  "pad_token_id": 1,
  "position_embedding_type": "absolute",
  "transformers_version": "4.46.3",
  "type_vocab_size": 1,
  "use_cache": true,
  "vocab_size": VOCAB
}
`

// writeXLMRCheckpoint writes a random-weight XLM-RoBERTa in the Hugging
// Face layout to a new folder: the test tokenizer.json, a transformers
// config.json and model.safetensors in Hugging Face names. It returns the
// folder and the vocabulary.
func writeXLMRCheckpoint(t *testing.T, seed uint64) (string, map[string]int) {
	t.Helper()
	dir := t.TempDir()
	vocab := writeXLMRTokenizer(t, dir)
	cfgJSON := strings.Replace(xlmrConfigJSON, "VOCAB", strconv.Itoa(len(vocab)), 1)
	cfg, err := ParseConfig([]byte(cfgJSON))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, nil, Options{Device: "cpu", Threads: 1, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, SafetensorsFile), sd, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, vocab
}

// TestXLMRobertaEndToEnd loads a small random-weight XLM-RoBERTa written in
// the Hugging Face layout (XLMRobertaForMaskedLM config.json, RoBERTa
// tensor names, SentencePiece Unigram tokenizer.json) and runs it through
// everything a BERT model does: users' [MASK] becomes <mask>, answers are
// the pieces they read as at their masks ("▁mat" after a space and at the
// start of a text, where Metaspace prepends '▁'; "mat" glued to a word),
// FillMask decodes like the pipeline, Score's suggestions are usable
// answers, FineTune lowers the gold NLL that Evaluate measures, and Save
// writes an xlm-roberta checkpoint that Load reads back to a model with
// identical outputs.
func TestXLMRobertaEndToEnd(t *testing.T) {
	ctx := context.Background()
	src, vocab := writeXLMRCheckpoint(t, 13)
	m, err := Load(ctx, src, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatalf("Load of a Hugging Face-layout XLM-RoBERTa: %v", err)
	}
	defer m.Close()
	if c := m.Config(); c.ModelType != ModelTypeXLMRoBERTa || c.MaxSequenceLength() != 40 || c.LayerNormEps != 1e-5 {
		t.Fatalf("loaded config: %+v", c)
	}
	if k, mt := m.Tokenizer().Kind(), m.Tokenizer().MaskToken(); k != "Unigram" || mt != "<mask>" {
		t.Fatalf("loaded tokenizer: kind %s, mask %q; want Unigram, <mask>", k, mt)
	}

	// Answer pieces depend on where Metaspace puts '▁'.
	for _, c := range []struct {
		text   string
		answer string
		want   []string
	}{
		{"the cat sat on the [MASK] .", "mat", []string{"▁mat"}},
		{"the cat sat on the <mask> .", "mat", []string{"▁mat"}},
		{"[MASK] cat sat on the mat .", "The", []string{"▁The"}},
		{"the cat sat on the [MASK].", "mat", []string{"▁mat"}},
		{"the cat sat on the[MASK] .", "mat", []string{"mat"}},
		{"I want to [MASK] a book", "write", []string{"▁write"}},
		{"the cat sat on the [MASK] .", "mats", []string{"▁mat", "s"}},
		{"the cat sat on the [MASK] .", "cafe\u0301", []string{"▁café"}}, // NFKC composes the answer
	} {
		pieces, reason := m.answerPieces(m.userText(c.text), []string{c.answer})
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
	// with the predicted piece in place ('▁' read as a space), the token
	// without its '▁', as the fill-mask pipeline decodes them.
	res, err := m.FillMask(ctx, []string{"the cat sat on the [MASK] .", "the cat sat on the <mask> ."}, FillOptions{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	for q := range res[0].Masks[0] {
		a, b := res[0].Masks[0][q], res[1].Masks[0][q]
		if a.Token != b.Token || math.Abs(a.Score-b.Score) > 1e-6 {
			t.Fatalf("[MASK] and <mask> predict differently: %+v, %+v", a, b)
		}
		piece, _ := m.Tokenizer().IDToToken(a.Token)
		filled := strings.ReplaceAll(piece, "▁", " ")
		if m.Tokenizer().IsSpecial(a.Token) {
			filled = "" // the sequence is decoded without special tokens
		}
		if want := "the cat sat on the" + filled + " ."; a.Sequence != want {
			t.Errorf("sequence %q, want %q", a.Sequence, want)
		}
		if want := strings.TrimPrefix(piece, "▁"); a.TokenStr != want {
			t.Errorf("token_str %q of piece %q, want %q", a.TokenStr, piece, want)
		}
	}
	if _, err := m.FillMask(ctx, []string{"no mask here"}, FillOptions{}); !errors.Is(err, ErrNoMask) {
		t.Errorf("text without mask: %v, want ErrNoMask", err)
	}

	checkScoreSuggestions(t, m, '▁')

	// Fine-tuning on labelled items lowers their gold NLL.
	_, after := checkFineTuneLearns(t, m, 80)
	res, err = m.FillMask(ctx, []string{"I want to [MASK] a book"}, FillOptions{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p := res[0].Masks[0][0]; p.Token != vocab["▁read"] || p.TokenStr != "read" || p.Sequence != "I want to read a book" {
		t.Errorf("after fine-tuning: %+v, want ▁read", p)
	}

	// Save and Load: an xlm-roberta checkpoint transformers reads, same
	// outputs.
	dir := t.TempDir()
	if err := m.SaveWith(ctx, dir, SaveOptions{DType: safetensors.F32}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", ConfigFile, SafetensorsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("saved model lacks %s", f)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cj struct {
		ModelType     string          `json:"model_type"`
		Architectures []string        `json:"architectures"`
		Version       string          `json:"transformers_version"`
		BOS           json.RawMessage `json:"bos_token_id"`
	}
	if err := json.Unmarshal(raw, &cj); err != nil {
		t.Fatal(err)
	}
	if cj.ModelType != "xlm-roberta" || !slices.Equal(cj.Architectures, []string{"XLMRobertaForMaskedLM"}) ||
		cj.Version != "4.46.3" || string(cj.BOS) != "0" {
		t.Errorf("saved config.json does not keep XLM-RoBERTa's model_type, architectures and extras:\n%s", raw)
	}
	m2, err := Load(ctx, dir, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.Config().ModelType != ModelTypeXLMRoBERTa || m2.Tokenizer().Kind() != "Unigram" || m2.Tokenizer().MaskToken() != "<mask>" {
		t.Fatalf("reloaded: model_type %s, tokenizer %s, mask %q", m2.Config().ModelType, m2.Tokenizer().Kind(), m2.Tokenizer().MaskToken())
	}
	texts := []string{"the cat sat on the [MASK] .", "[MASK] want to write a [MASK]", "I  want to [MASK] a book ."}
	checkReloadedSame(t, m, m2, texts, after)
}

// TestXLMRobertaFillMaskParityWithPyTorch compares FillMask's
// probabilities at every mask, for the whole vocabulary, with
// bench/torchref/family_ref.py's RoBERTa forward pass (which XLM-RoBERTa's
// model_type selects) on the ids the Unigram tokenizer gives. The weights
// are scaled up so that the distributions are far from uniform; the texts
// have different lengths and two masks, so the batch is padded.
func TestXLMRobertaFillMaskParityWithPyTorch(t *testing.T) {
	python := torchPython(t)
	ctx := context.Background()
	dir, _ := writeXLMRCheckpoint(t, 15)
	path := filepath.Join(dir, SafetensorsFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sd []safetensors.Tensor
	for i, name := range f.Names() {
		x, _ := f.Tensor(name)
		v, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for j := range v {
			v[j] = v[j]*10 + float32(math.Sin(float64(i*131+j)))*0.1
		}
		y, err := safetensors.FromFloat32s(name, safetensors.F32, x.Shape, v)
		if err != nil {
			t.Fatal(err)
		}
		sd = append(sd, y)
	}
	if err := safetensors.WriteFile(path, sd, nil); err != nil {
		t.Fatal(err)
	}
	m, err := Load(ctx, dir, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	V := m.Config().VocabSize
	texts := []string{"the cat sat on the [MASK] .", "[MASK] want to write a [MASK]", "I want to [MASK] a book"}
	res, err := m.FillMask(ctx, texts, FillOptions{TopK: V})
	if err != nil {
		t.Fatal(err)
	}
	var d, top float64
	for i, text := range texts {
		enc, err := m.Tokenizer().Encode(m.userText(text))
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(enc.IDs))
		mask := make([]int64, len(enc.IDs))
		var at []int
		for p, id := range enc.IDs {
			ids[p], mask[p] = int64(id), 1
			if id == m.Tokenizer().MaskID() {
				at = append(at, p)
			}
		}
		if len(at) != len(res[i].Masks) {
			t.Fatalf("%q: %d masks in the ids, FillMask gave %d", text, len(at), len(res[i].Masks))
		}
		want := referenceLogits(t, python, dir, [][]int64{ids}, [][]int64{mask})
		for j, p := range at {
			ref := softmax64(want[p*V : (p+1)*V])
			if len(res[i].Masks[j]) != V {
				t.Fatalf("%q mask %d: %d predictions, want %d", text, j, len(res[i].Masks[j]), V)
			}
			for _, pred := range res[i].Masks[j] {
				d = math.Max(d, math.Abs(pred.Score-ref[pred.Token]))
				top = math.Max(top, ref[pred.Token])
			}
		}
	}
	t.Logf("FillMask vs PyTorch reference: max |Δ probability| %.3g (largest probability %.3g)", d, top)
	if d > 1e-4 {
		t.Errorf("max |Δ probability| %g > 1e-4", d)
	}
	if top < 0.2 {
		t.Errorf("largest probability %g: too flat for a meaningful comparison", top)
	}
}
