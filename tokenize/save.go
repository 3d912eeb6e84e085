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
// encode text to the same ids as this package. Byte-level BPE and Unigram
// tokenizers are written in their own forms (see saveBPE and
// saveUnigram). Each file is written to a temporary name and renamed, so a
// failed save leaves no half-written file.
func (t *Tokenizer) Save(dir string) error {
	switch m := t.model.(type) {
	case *bpeModel:
		return t.saveBPE(dir, m)
	case *unigramModel:
		return t.saveUnigram(dir, m)
	}
	wp := t.model.(*wordPieceModel)
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
	tj, err := t.tokenizerJSON(wp)
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
	cfg := map[string]any{
		"tokenizer_class":              "BertTokenizer",
		"do_lower_case":                t.norm.Lowercase,
		"strip_accents":                t.norm.StripAccents,
		"tokenize_chinese_chars":       t.norm.HandleChineseChars,
		"model_max_length":             t.modelMaxLength,
		"clean_up_tokenization_spaces": wp.cleanup,
	}
	return writeTokenizerFiles(dir, []savedFile{{"tokenizer.json", tj}, {"vocab.txt", vocab.Bytes()}}, special, cfg)
}

// addedTokenJSON is one entry of tokenizer.json's added_tokens, its
// fields in Hugging Face's order.
type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedTokensJSON returns the tokenizer's added tokens as tokenizer.json
// writes them.
func (t *Tokenizer) addedTokensJSON() []addedTokenJSON {
	out := make([]addedTokenJSON, len(t.added))
	for i, a := range t.added {
		out[i] = addedTokenJSON(a)
	}
	return out
}

// tokenizerJSON renders tokenizer.json with the vocabulary in id order.
func (t *Tokenizer) tokenizerJSON(wp *wordPieceModel) ([]byte, error) {
	addedList := t.addedTokensJSON()
	st := func(tok string, typeID int) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": typeID}}
	}
	sq := func(id string, typeID int) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": id, "type_id": typeID}}
	}
	head := []jsonField{
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
		{"decoder", map[string]any{"type": "WordPiece", "prefix": wp.prefix, "cleanup": wp.cleanup}},
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	if err := writeFields(&b, "  ", "", head); err != nil {
		return nil, err
	}
	model := []jsonField{
		{"type", "WordPiece"},
		{"unk_token", t.unkToken},
		{"continuing_subword_prefix", wp.prefix},
		{"max_input_chars_per_word", wp.maxChars},
	}
	b.WriteString("  \"model\": {\n")
	if err := writeFields(&b, "    ", "model ", model); err != nil {
		return nil, err
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

// saveBPE writes a byte-level BPE tokenizer as transformers writes
// RoBERTa's: tokenizer.json (no normaliser, ByteLevel pre-tokeniser and
// decoder, the post-processor it was loaded with, BPE model with the merges
// as "a b" strings, which every tokenizers version reads), vocab.json,
// merges.txt, special_tokens_map.json and tokenizer_config.json
// (RobertaTokenizer).
func (t *Tokenizer) saveBPE(dir string, bm *bpeModel) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokenizer to %s: %w", dir, err)
	}
	for _, m := range bm.mergeList {
		if strings.Contains(m[0], " ") || strings.Contains(m[1], " ") {
			return fmt.Errorf("save tokenizer to %s: merge %q %q contains a space and cannot be written to merges.txt", dir, m[0], m[1])
		}
	}
	fail := func(err error) error { return fmt.Errorf("save tokenizer to %s: %w", dir, err) }
	vocab, err := t.vocabJSON("    ")
	if err != nil {
		return fail(err)
	}
	var merges bytes.Buffer
	merges.WriteString("#version: 0.2\n")
	for _, m := range bm.mergeList {
		merges.WriteString(m[0] + " " + m[1] + "\n")
	}
	tj, err := t.bpeTokenizerJSON(bm, vocab)
	if err != nil {
		return fail(err)
	}
	flat, err := t.vocabJSON("")
	if err != nil {
		return fail(err)
	}
	cfg := map[string]any{
		"tokenizer_class":              "RobertaTokenizer",
		"add_prefix_space":             bm.addPrefixSpace,
		"trim_offsets":                 bm.trimOffsets,
		"errors":                       "replace",
		"model_max_length":             t.modelMaxLength,
		"clean_up_tokenization_spaces": t.cleanupSpaces,
	}
	return writeTokenizerFiles(dir, []savedFile{{"tokenizer.json", tj}, {"vocab.json", flat}, {"merges.txt", merges.Bytes()}},
		t.robertaSpecialTokens(), cfg)
}

// savedFile is one file of a saved tokenizer folder.
type savedFile struct {
	name string
	data []byte
}

// writeTokenizerFiles writes files into dir and, after them,
// special_tokens_map.json (special) and tokenizer_config.json (cfg with
// the special tokens added), each atomically.
func writeTokenizerFiles(dir string, files []savedFile, special map[string]string, cfg map[string]any) error {
	fail := func(err error) error { return fmt.Errorf("save tokenizer to %s: %w", dir, err) }
	stm, err := json.MarshalIndent(special, "", "  ")
	if err != nil {
		return fail(err)
	}
	for k, v := range special {
		cfg[k] = v
	}
	tc, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fail(err)
	}
	files = append(files, savedFile{"special_tokens_map.json", append(stm, '\n')}, savedFile{"tokenizer_config.json", append(tc, '\n')})
	for _, f := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fail(err)
		}
	}
	return nil
}

// robertaSpecialTokens are special_tokens_map.json of the RoBERTa-style
// tokenizers (byte-level BPE and Unigram): <s> is both bos and cls.
func (t *Tokenizer) robertaSpecialTokens() map[string]string {
	return map[string]string{
		"bos_token": t.clsToken, "eos_token": t.sepToken, "unk_token": t.unkToken, "sep_token": t.sepToken,
		"pad_token": t.padToken, "cls_token": t.clsToken, "mask_token": t.maskToken,
	}
}

// vocabJSON renders the vocabulary as a JSON object in id order; indent
// "" writes it on one line.
func (t *Tokenizer) vocabJSON(indent string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for i, tok := range t.vocab {
		if tok == "" {
			continue
		}
		k, err := json.Marshal(tok)
		if err != nil {
			return nil, fmt.Errorf("encode token %d: %w", i, err)
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		if indent != "" {
			b.WriteString("\n" + indent + "  ")
		}
		fmt.Fprintf(&b, "%s:%d", k, i)
	}
	if indent != "" {
		b.WriteString("\n" + indent)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// bpeTokenizerJSON renders tokenizer.json for a byte-level BPE tokenizer.
func (t *Tokenizer) bpeTokenizerJSON(bm *bpeModel, vocab []byte) ([]byte, error) {
	addedList := t.addedTokensJSON()
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": bm.addPrefixSpace, "trim_offsets": bm.trimOffsets, "use_regex": bm.useRegex}
	var post any
	switch bm.processor {
	case "RobertaProcessing":
		post = map[string]any{
			"type": "RobertaProcessing", "sep": []any{t.sepToken, t.sepID}, "cls": []any{t.clsToken, t.clsID},
			"trim_offsets": bm.trimOffsets, "add_prefix_space": bm.ppPrefixSpace,
		}
	case "ByteLevel":
		post = map[string]any{"type": "ByteLevel", "add_prefix_space": bm.ppPrefixSpace, "trim_offsets": bm.trimOffsets, "use_regex": true}
	case "TemplateProcessing":
		st := func(tok string) map[string]any {
			return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": 0}}
		}
		sq := func(id string) map[string]any {
			return map[string]any{"Sequence": map[string]any{"id": id, "type_id": 0}}
		}
		post = map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{st(t.clsToken), sq("A"), st(t.sepToken)},
			"pair":   []any{st(t.clsToken), sq("A"), st(t.sepToken), st(t.sepToken), sq("B"), st(t.sepToken)},
			"special_tokens": map[string]any{
				t.clsToken: map[string]any{"id": t.clsToken, "ids": []int{t.clsID}, "tokens": []string{t.clsToken}},
				t.sepToken: map[string]any{"id": t.sepToken, "ids": []int{t.sepID}, "tokens": []string{t.sepToken}},
			},
		}
	}
	var unk any
	if bm.unkToken != "" {
		unk = bm.unkToken
	}
	head := []jsonField{
		{"version", "1.0"},
		{"truncation", nil},
		{"padding", nil},
		{"added_tokens", addedList},
		{"normalizer", compactJSON(bm.normalizer)},
		{"pre_tokenizer", byteLevel},
		{"post_processor", post},
		{"decoder", map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}},
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	if err := writeFields(&b, "  ", "", head); err != nil {
		return nil, err
	}
	model := []jsonField{
		{"type", "BPE"},
		{"dropout", nil},
		{"unk_token", unk},
		{"continuing_subword_prefix", ""},
		{"end_of_word_suffix", ""},
		{"fuse_unk", bm.fuseUnk},
		{"byte_fallback", false},
		{"ignore_merges", bm.ignoreMerges},
	}
	b.WriteString("  \"model\": {\n")
	if err := writeFields(&b, "    ", "model ", model); err != nil {
		return nil, err
	}
	b.WriteString("    \"vocab\": ")
	b.Write(vocab)
	b.WriteString(",\n    \"merges\": [")
	for i, m := range bm.mergeList {
		k, err := json.Marshal(m[0] + " " + m[1])
		if err != nil {
			return nil, fmt.Errorf("encode merge %d: %w", i, err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      ")
		b.Write(k)
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// jsonField is one key of a JSON object written in a fixed order.
type jsonField struct {
	key string
	val any
}

// writeFields writes each field as `indent"key": value,` on a line of its
// own, in order (what prefixes the key in errors).
func writeFields(b *bytes.Buffer, indent, what string, fields []jsonField) error {
	for _, f := range fields {
		v, err := json.Marshal(f.val)
		if err != nil {
			return fmt.Errorf("encode %s%s: %w", what, f.key, err)
		}
		fmt.Fprintf(b, "%s%q: %s,\n", indent, f.key, v)
	}
	return nil
}

// saveUnigram writes a Unigram tokenizer as transformers writes
// XLM-RoBERTa's fast tokenizer: tokenizer.json (the normaliser,
// pre-tokeniser, post-processor and decoder it was loaded with, unchanged,
// and the Unigram model with its pieces and scores in id order),
// special_tokens_map.json and tokenizer_config.json
// (XLMRobertaTokenizer). There is no sentencepiece.bpe.model: transformers
// builds the fast tokenizer from tokenizer.json.
func (t *Tokenizer) saveUnigram(dir string, u *unigramModel) error {
	fail := func(err error) error { return fmt.Errorf("save tokenizer to %s: %w", dir, err) }
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	tj, err := t.unigramTokenizerJSON(u)
	if err != nil {
		return fail(err)
	}
	cfg := map[string]any{
		"tokenizer_class":              "XLMRobertaTokenizer",
		"model_max_length":             t.modelMaxLength,
		"clean_up_tokenization_spaces": t.cleanupSpaces,
	}
	return writeTokenizerFiles(dir, []savedFile{{"tokenizer.json", tj}}, t.robertaSpecialTokens(), cfg)
}

// unigramTokenizerJSON renders tokenizer.json for a Unigram tokenizer.
func (t *Tokenizer) unigramTokenizerJSON(u *unigramModel) ([]byte, error) {
	addedList := t.addedTokensJSON()
	head := []jsonField{
		{"version", "1.0"},
		{"truncation", nil},
		{"padding", nil},
		{"added_tokens", addedList},
		{"normalizer", compactJSON(u.raw.normalizer)},
		{"pre_tokenizer", compactJSON(u.raw.preTokenizer)},
		{"post_processor", compactJSON(u.raw.postProcessor)},
		{"decoder", compactJSON(u.raw.decoder)},
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	if err := writeFields(&b, "  ", "", head); err != nil {
		return nil, err
	}
	var unk any
	if u.unkID >= 0 {
		unk = u.unkID
	}
	model := []jsonField{
		{"type", "Unigram"},
		{"unk_id", unk},
		{"byte_fallback", u.byteFallback},
	}
	b.WriteString("  \"model\": {\n")
	if err := writeFields(&b, "    ", "model ", model); err != nil {
		return nil, err
	}
	b.WriteString("    \"vocab\": [")
	for i, tok := range t.vocab {
		k, err := json.Marshal(tok)
		if err != nil {
			return nil, fmt.Errorf("encode piece %d: %w", i, err)
		}
		sc, err := json.Marshal(u.scores[i])
		if err != nil {
			return nil, fmt.Errorf("encode score of piece %d (%q): %w", i, tok, err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n      [%s, %s]", k, sc)
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// compactJSON returns a tokenizer.json component as compact JSON, or null
// when it is absent.
func compactJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		return json.RawMessage("null")
	}
	return c.Bytes()
}
