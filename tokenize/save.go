package tokenize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"os"
	"path/filepath"
	"strings"
)

// Save writes the tokenizer as a Hugging Face directory: tokenizer.json
// (BertNormalizer with an explicit strip_accents, BertPreTokenizer,
// TemplateProcessing "[CLS] $A [SEP]", WordPiece decoder and model),
// vocab.txt, tokenizer_config.json and special_tokens_map.json. Hugging
// Face's tokenizers and transformers' AutoTokenizer load the directory and
// encode text to the same ids as this package. Each file is written to a
// temporary name and renamed, so a failed save leaves no half-written file.
func (t *Tokenizer) Save(dir string) error {
	if !t.hasNorm {
		return errors.New("save tokenizer: a tokenizer without normalizer cannot be written in BERT form")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokenizer to %s: %w", dir, err)
	}
	for i, tok := range t.vocab {
		if tok == "" {
			return fmt.Errorf("save tokenizer to %s: id %d has no token, vocab.txt cannot represent it", dir, i)
		}
		if strings.ContainsAny(tok, "\r\n") || strings.TrimRight(tok, " \t\v\f\u00a0") != tok {
			return fmt.Errorf("save tokenizer to %s: token %d (%q) cannot be written to vocab.txt", dir, i, tok)
		}
	}
	tj, err := t.tokenizerJSON()
	if err != nil {
		return fmt.Errorf("save tokenizer to %s: %w", dir, err)
	}
	var vocab bytes.Buffer
	for _, tok := range t.vocab {
		vocab.WriteString(tok)
		vocab.WriteByte('\n')
	}
	special := map[string]string{
		"unk_token": t.unkToken, "sep_token": t.sepToken, "pad_token": t.padToken,
		"cls_token": t.clsToken, "mask_token": t.maskToken,
	}
	stm, err := json.MarshalIndent(special, "", "  ")
	if err != nil {
		return fmt.Errorf("save tokenizer to %s: %w", dir, err)
	}
	cfg := map[string]any{
		"tokenizer_class":              "BertTokenizer",
		"do_lower_case":                t.norm.Lowercase,
		"strip_accents":                t.norm.StripAccents,
		"tokenize_chinese_chars":       t.norm.HandleChineseChars,
		"model_max_length":             t.modelMaxLength,
		"clean_up_tokenization_spaces": t.cleanup,
	}
	for k, v := range special {
		cfg[k] = v
	}
	tc, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("save tokenizer to %s: %w", dir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"tokenizer.json", tj},
		{"vocab.txt", vocab.Bytes()},
		{"special_tokens_map.json", append(stm, '\n')},
		{"tokenizer_config.json", append(tc, '\n')},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("save tokenizer to %s: %w", dir, err)
		}
	}
	return nil
}

// tokenizerJSON renders tokenizer.json with the vocabulary in id order.
func (t *Tokenizer) tokenizerJSON() ([]byte, error) {
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	addedList := make([]added, len(t.added))
	for i, a := range t.added {
		addedList[i] = added(a)
	}
	st := func(tok string, typeID int) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": typeID}}
	}
	sq := func(id string, typeID int) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": id, "type_id": typeID}}
	}
	head := []struct {
		key string
		val any
	}{
		{"version", "1.0"},
		{"truncation", nil},
		{"padding", nil},
		{"added_tokens", addedList},
		{"normalizer", map[string]any{
			"type":                 "BertNormalizer",
			"clean_text":           t.norm.CleanText,
			"handle_chinese_chars": t.norm.HandleChineseChars,
			"strip_accents":        t.norm.StripAccents,
			"lowercase":            t.norm.Lowercase,
		}},
		{"pre_tokenizer", map[string]any{"type": "BertPreTokenizer"}},
		{"post_processor", map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{st(t.clsToken, 0), sq("A", 0), st(t.sepToken, 0)},
			"pair":   []any{st(t.clsToken, 0), sq("A", 0), st(t.sepToken, 0), sq("B", 1), st(t.sepToken, 1)},
			"special_tokens": map[string]any{
				t.clsToken: map[string]any{"id": t.clsToken, "ids": []int{t.clsID}, "tokens": []string{t.clsToken}},
				t.sepToken: map[string]any{"id": t.sepToken, "ids": []int{t.sepID}, "tokens": []string{t.sepToken}},
			},
		}},
		{"decoder", map[string]any{"type": "WordPiece", "prefix": t.prefix, "cleanup": t.cleanup}},
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	for _, h := range head {
		v, err := json.Marshal(h.val)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", h.key, err)
		}
		fmt.Fprintf(&b, "  %q: %s,\n", h.key, v)
	}
	model := []struct {
		key string
		val any
	}{
		{"type", "WordPiece"},
		{"unk_token", t.unkToken},
		{"continuing_subword_prefix", t.prefix},
		{"max_input_chars_per_word", t.maxChars},
	}
	b.WriteString("  \"model\": {\n")
	for _, m := range model {
		v, err := json.Marshal(m.val)
		if err != nil {
			return nil, fmt.Errorf("encode model %s: %w", m.key, err)
		}
		fmt.Fprintf(&b, "    %q: %s,\n", m.key, v)
	}
	b.WriteString("    \"vocab\": {")
	for i, tok := range t.vocab {
		k, err := json.Marshal(tok)
		if err != nil {
			return nil, fmt.Errorf("encode token %d: %w", i, err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n      %s: %d", k, i)
	}
	b.WriteString("\n    }\n  }\n}\n")
	return b.Bytes(), nil
}
