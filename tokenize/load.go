package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/model/wordpiece"
)

// Load reads a Hugging Face tokenizer directory: tokenizer.json when it is
// there, otherwise vocab.txt with tokenizer_config.json (do_lower_case,
// strip_accents, tokenize_chinese_chars and the special token names). Only
// BERT-style WordPiece tokenizers are supported; anything else is an error
// naming what was found.
func Load(dir string) (*Tokenizer, error) {
	cfg, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(path); err == nil {
		t, err := loadTokenizerJSON(path, cfg)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
		}
		return t, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	vocabPath := filepath.Join(dir, "vocab.txt")
	t, err := loadVocabTxt(vocabPath, cfg)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", vocabPath, err)
	}
	return t, nil
}

// tokenizerConfig is the part of tokenizer_config.json and
// special_tokens_map.json that matters here.
type tokenizerConfig struct {
	DoLowerCase          *bool   `json:"do_lower_case"`
	StripAccents         *bool   `json:"strip_accents"`
	TokenizeChineseChars *bool   `json:"tokenize_chinese_chars"`
	ModelMaxLength       float64 `json:"model_max_length"`
	UnkToken             tokenName
	SepToken             tokenName
	PadToken             tokenName
	ClsToken             tokenName
	MaskToken            tokenName
}

// tokenName is a special token entry: either a string or an object with a
// "content" field.
type tokenName string

// UnmarshalJSON accepts "[MASK]" and {"content": "[MASK]", ...}.
func (n *tokenName) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*n = tokenName(s)
		return nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("special token must be a string or an object with content: %s", b)
	}
	*n = tokenName(obj.Content)
	return nil
}

type specialNames struct {
	UnkToken  tokenName `json:"unk_token"`
	SepToken  tokenName `json:"sep_token"`
	PadToken  tokenName `json:"pad_token"`
	ClsToken  tokenName `json:"cls_token"`
	MaskToken tokenName `json:"mask_token"`
}

func readTokenizerConfig(dir string) (tokenizerConfig, error) {
	var cfg tokenizerConfig
	var names specialNames
	for _, name := range []string{"special_tokens_map.json", "tokenizer_config.json"} {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return cfg, fmt.Errorf("load tokenizer config %s: %w", path, err)
		}
		var n specialNames
		if err := json.Unmarshal(b, &n); err != nil {
			return cfg, fmt.Errorf("load tokenizer config %s: %w", path, err)
		}
		if name == "tokenizer_config.json" {
			if err := json.Unmarshal(b, &cfg); err != nil {
				return cfg, fmt.Errorf("load tokenizer config %s: %w", path, err)
			}
		}
		for _, p := range [][2]*tokenName{{&names.UnkToken, &n.UnkToken}, {&names.SepToken, &n.SepToken}, {&names.PadToken, &n.PadToken}, {&names.ClsToken, &n.ClsToken}, {&names.MaskToken, &n.MaskToken}} {
			if *p[1] != "" {
				*p[0] = *p[1]
			}
		}
	}
	def := func(n tokenName, d string) tokenName {
		if n == "" {
			return tokenName(d)
		}
		return n
	}
	cfg.UnkToken = def(names.UnkToken, "[UNK]")
	cfg.SepToken = def(names.SepToken, "[SEP]")
	cfg.PadToken = def(names.PadToken, "[PAD]")
	cfg.ClsToken = def(names.ClsToken, "[CLS]")
	cfg.MaskToken = def(names.MaskToken, "[MASK]")
	return cfg, nil
}

// loadVocabTxt builds a BERT tokenizer from vocab.txt as transformers'
// BertTokenizerFast does when there is no tokenizer.json.
func loadVocabTxt(path string, cfg tokenizerConfig) (*Tokenizer, error) {
	wp, err := wordpiece.NewWordPieceFromFile(path, string(cfg.UnkToken))
	if err != nil {
		return nil, fmt.Errorf("read vocabulary: %w", err)
	}
	// Hugging Face trims trailing whitespace from each line.
	raw := wp.GetVocab()
	vocabMap := make(map[string]int, len(raw))
	for tok, id := range raw {
		tok = strings.TrimRightFunc(tok, unicode.IsSpace)
		if old, ok := vocabMap[tok]; !ok || id > old {
			vocabMap[tok] = id
		}
	}
	vocab, err := vocabSlice(vocabMap)
	if err != nil {
		return nil, err
	}
	opts := DefaultOptions()
	if cfg.DoLowerCase != nil {
		opts.Lowercase = *cfg.DoLowerCase
	}
	opts.StripAccents = cfg.StripAccents
	if cfg.TokenizeChineseChars != nil {
		opts.HandleChineseChars = *cfg.TokenizeChineseChars
	}
	opts.UnkToken, opts.SepToken, opts.PadToken = string(cfg.UnkToken), string(cfg.SepToken), string(cfg.PadToken)
	opts.ClsToken, opts.MaskToken = string(cfg.ClsToken), string(cfg.MaskToken)
	if cfg.ModelMaxLength > 0 && cfg.ModelMaxLength < 1e9 {
		opts.ModelMaxLength = int(cfg.ModelMaxLength)
	}
	return fromVocabWithHoles(vocab, opts)
}

// vocabSlice turns a token → id map into an id → token slice; ids without a
// token are left empty.
func vocabSlice(m map[string]int) ([]string, error) {
	maxID := -1
	for tok, id := range m {
		if id < 0 {
			return nil, fmt.Errorf("token %q has negative id %d", tok, id)
		}
		if id > 10_000_000 {
			return nil, fmt.Errorf("token %q has implausible id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	v := make([]string, maxID+1)
	for tok, id := range m {
		if v[id] != "" {
			return nil, fmt.Errorf("tokens %q and %q share id %d", v[id], tok, id)
		}
		v[id] = tok
	}
	return v, nil
}

// fromVocabWithHoles is FromVocab for a vocabulary that may have ids without
// a token (as a hand-edited vocab.txt can).
func fromVocabWithHoles(vocab []string, opts Options) (*Tokenizer, error) {
	filled := make([]string, len(vocab))
	for i, tok := range vocab {
		if tok == "" {
			tok = fmt.Sprintf("\x00hole%d", i)
		}
		filled[i] = tok
	}
	t, err := FromVocab(filled, opts)
	if err != nil {
		return nil, err
	}
	for i, tok := range vocab {
		if tok == "" {
			delete(t.ids, t.vocab[i])
			t.vocab[i] = ""
		}
	}
	return t, nil
}

// loadTokenizerJSON reads a Hugging Face tokenizer.json (parsed with
// sugarme/tokenizer's Config type) of BERT form.
func loadTokenizerJSON(path string, cfg tokenizerConfig) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c sugar.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	m := c.Model
	if m == nil {
		return nil, errors.New(`no "model"`)
	}
	if typ, _ := m["type"].(string); typ != "WordPiece" {
		// Hub files for BERT often omit "type" on the model; accept a model
		// that has WordPiece fields.
		if _, hasMax := m["max_input_chars_per_word"]; typ != "" || !hasMax {
			return nil, fmt.Errorf("model type %q is not supported (only WordPiece)", typ)
		}
	}
	rawVocab, ok := m["vocab"].(map[string]any)
	if !ok {
		return nil, errors.New(`model has no "vocab" object`)
	}
	vocabMap := make(map[string]int, len(rawVocab))
	for tok, v := range rawVocab {
		f, ok := v.(float64)
		if !ok || f != float64(int(f)) {
			return nil, fmt.Errorf("vocabulary id of %q is not an integer: %v", tok, v)
		}
		vocabMap[tok] = int(f)
	}
	vocab, err := vocabSlice(vocabMap)
	if err != nil {
		return nil, err
	}
	opts := DefaultOptions()
	if s, ok := m["unk_token"].(string); ok {
		opts.UnkToken = s
	}
	if s, ok := m["continuing_subword_prefix"].(string); ok {
		opts.ContinuingSubwordPrefix = s
	}
	if f, ok := m["max_input_chars_per_word"].(float64); ok && f > 0 {
		opts.MaxInputCharsPerWord = int(f)
	}
	opts.PadToken, opts.MaskToken = string(cfg.PadToken), string(cfg.MaskToken)
	opts.ClsToken, opts.SepToken = string(cfg.ClsToken), string(cfg.SepToken)
	if cfg.ModelMaxLength > 0 && cfg.ModelMaxLength < 1e9 {
		opts.ModelMaxLength = int(cfg.ModelMaxLength)
	}

	hasNorm := c.Normalizer != nil
	var norm Normalizer
	var strip *bool
	if hasNorm {
		norm, strip, err = parseNormalizer(c.Normalizer)
		if err != nil {
			return nil, err
		}
	}
	if c.PreTokenizer == nil {
		return nil, errors.New(`no "pre_tokenizer" (BertPreTokenizer required)`)
	}
	if typ, _ := c.PreTokenizer["type"].(string); typ != "BertPreTokenizer" {
		return nil, fmt.Errorf("pre_tokenizer type %q is not supported (only BertPreTokenizer)", typ)
	}
	addSpecial := false
	if c.PostProcessor != nil {
		cls, sep, err := parsePostProcessor(c.PostProcessor)
		if err != nil {
			return nil, err
		}
		opts.ClsToken, opts.SepToken = cls, sep
		addSpecial = true
	}
	cleanup := true
	if c.Decoder != nil {
		typ, _ := c.Decoder["type"].(string)
		if typ != "WordPiece" {
			return nil, fmt.Errorf("decoder type %q is not supported (only WordPiece)", typ)
		}
		if v, ok := c.Decoder["cleanup"].(bool); ok {
			cleanup = v
		}
	}

	t, err := fromVocabWithHoles(vocab, opts)
	if err != nil {
		return nil, err
	}
	t.hasNorm, t.norm, t.stripAccents = hasNorm, norm, strip
	t.addSpecial, t.cleanup = addSpecial, cleanup

	added := make([]AddedToken, 0, len(c.AddedTokens))
	for _, a := range c.AddedTokens {
		added = append(added, AddedToken{
			ID: int(a.Id), Content: a.Content, SingleWord: a.SingleWord, LStrip: a.Lstrip,
			RStrip: a.Rstrip, Normalized: a.Normalized, Special: a.Special,
		})
	}
	sort.SliceStable(added, func(i, j int) bool { return added[i].ID < added[j].ID })
	if err := t.finish(added); err != nil {
		return nil, err
	}
	return t, nil
}

// parseNormalizer reads a BertNormalizer entry. "strip_accents": null (or
// absent) follows "lowercase", as in Hugging Face.
func parseNormalizer(m map[string]any) (Normalizer, *bool, error) {
	if typ, _ := m["type"].(string); typ != "BertNormalizer" {
		return Normalizer{}, nil, fmt.Errorf("normalizer type %q is not supported (only BertNormalizer)", typ)
	}
	flag := func(key string, def bool) (bool, error) {
		v, ok := m[key]
		if !ok || v == nil {
			return def, nil
		}
		b, ok := v.(bool)
		if !ok {
			return false, fmt.Errorf("normalizer %s must be a boolean, got %v", key, v)
		}
		return b, nil
	}
	var n Normalizer
	var err error
	if n.CleanText, err = flag("clean_text", true); err != nil {
		return n, nil, err
	}
	if n.HandleChineseChars, err = flag("handle_chinese_chars", true); err != nil {
		return n, nil, err
	}
	if n.Lowercase, err = flag("lowercase", true); err != nil {
		return n, nil, err
	}
	var strip *bool
	if v, ok := m["strip_accents"]; ok && v != nil {
		b, ok := v.(bool)
		if !ok {
			return n, nil, fmt.Errorf("normalizer strip_accents must be a boolean or null, got %v", v)
		}
		strip = &b
	}
	n.StripAccents = n.Lowercase
	if strip != nil {
		n.StripAccents = *strip
	}
	return n, strip, nil
}

// parsePostProcessor accepts BertProcessing and the TemplateProcessing form
// "CLS $A SEP"; it returns the two tokens.
func parsePostProcessor(m map[string]any) (cls, sep string, err error) {
	switch typ, _ := m["type"].(string); typ {
	case "BertProcessing":
		get := func(key string) (string, error) {
			arr, ok := m[key].([]any)
			if !ok || len(arr) != 2 {
				return "", fmt.Errorf("post_processor %s must be [token, id]", key)
			}
			s, ok := arr[0].(string)
			if !ok {
				return "", fmt.Errorf("post_processor %s token is not a string", key)
			}
			return s, nil
		}
		if cls, err = get("cls"); err != nil {
			return "", "", err
		}
		sep, err = get("sep")
		return cls, sep, err
	case "TemplateProcessing":
		single, ok := m["single"].([]any)
		if !ok || len(single) != 3 {
			return "", "", errors.New(`post_processor TemplateProcessing: only the single template "CLS $A SEP" is supported`)
		}
		special := func(v any) (string, bool) {
			o, _ := v.(map[string]any)
			st, _ := o["SpecialToken"].(map[string]any)
			id, ok := st["id"].(string)
			return id, ok
		}
		var ok1, ok2 bool
		cls, ok1 = special(single[0])
		sep, ok2 = special(single[2])
		seq, _ := single[1].(map[string]any)
		if _, isSeq := seq["Sequence"]; !ok1 || !ok2 || !isSeq {
			return "", "", errors.New(`post_processor TemplateProcessing: only the single template "CLS $A SEP" is supported`)
		}
		return cls, sep, nil
	default:
		return "", "", fmt.Errorf("post_processor type %q is not supported (BertProcessing or TemplateProcessing)", typ)
	}
}
