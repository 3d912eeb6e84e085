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

// ErrUnsupported is wrapped by the errors of Load for tokenizer files of a
// kind this package cannot run (a WordLevel model, another
// pre-tokeniser or normaliser, …); the message names what was found.
var ErrUnsupported = errors.New("unsupported tokenizer")

// Load reads a Hugging Face tokenizer directory: tokenizer.json when it is
// there, otherwise vocab.txt (BERT WordPiece, with tokenizer_config.json's
// do_lower_case, strip_accents, tokenize_chinese_chars and special token
// names) or vocab.json with merges.txt (byte-level BPE as transformers'
// RobertaTokenizer builds it, with tokenizer_config.json's
// add_prefix_space, trim_offsets and special tokens). The kind of a
// tokenizer.json is read from the file: a WordPiece model with BERT's
// normaliser and pre-tokeniser, a BPE model with the ByteLevel
// pre-tokeniser, or a Unigram model with the normalisers, pre-tokeniser,
// post-processors and decoders loadUnigramJSON lists. Anything else is an
// error wrapping ErrUnsupported that names what was found.
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
	if !fileExists(vocabPath) && fileExists(filepath.Join(dir, "vocab.json")) {
		t, err := loadVocabJSON(dir, cfg)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer %s: %w", filepath.Join(dir, "vocab.json"), err)
		}
		return t, nil
	}
	t, err := loadVocabTxt(vocabPath, cfg.withDefaults(wordPieceSpecials))
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", vocabPath, err)
	}
	return t, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// tokenizerConfig is the part of tokenizer_config.json and
// special_tokens_map.json that matters here.
type tokenizerConfig struct {
	DoLowerCase          *bool   `json:"do_lower_case"`
	StripAccents         *bool   `json:"strip_accents"`
	TokenizeChineseChars *bool   `json:"tokenize_chinese_chars"`
	ModelMaxLength       float64 `json:"model_max_length"`
	AddPrefixSpace       *bool   `json:"add_prefix_space"`
	TrimOffsets          *bool   `json:"trim_offsets"`
	CleanUpSpaces        *bool   `json:"clean_up_tokenization_spaces"`
	// AddedTokensDecoder is transformers' record of the added tokens, by
	// id (newer versions write it).
	AddedTokensDecoder map[string]AddedToken `json:"added_tokens_decoder"`
	UnkToken           tokenName
	SepToken           tokenName
	PadToken           tokenName
	ClsToken           tokenName
	MaskToken          tokenName
	BosToken           tokenName
	EosToken           tokenName
}

// specialDefaults are the special token names a kind of tokenizer has when
// the configuration does not name them: unk, sep, pad, cls, mask.
type specialDefaults [5]string

var (
	wordPieceSpecials = specialDefaults{"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"}
	// bpeSpecials are RoBERTa's; sep and cls fall back on eos and bos.
	bpeSpecials = specialDefaults{"<unk>", "</s>", "<pad>", "<s>", "<mask>"}
)

// withDefaults fills in the special token names the files left out.
func (c tokenizerConfig) withDefaults(d specialDefaults) tokenizerConfig {
	def := func(n tokenName, alt tokenName, d string) tokenName {
		switch {
		case n != "":
			return n
		case alt != "":
			return alt
		}
		return tokenName(d)
	}
	c.UnkToken = def(c.UnkToken, "", d[0])
	c.SepToken = def(c.SepToken, c.EosToken, d[1])
	c.PadToken = def(c.PadToken, "", d[2])
	c.ClsToken = def(c.ClsToken, c.BosToken, d[3])
	c.MaskToken = def(c.MaskToken, "", d[4])
	return c
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
	BosToken  tokenName `json:"bos_token"`
	EosToken  tokenName `json:"eos_token"`
}

// readTokenizerConfig reads special_tokens_map.json and
// tokenizer_config.json (the latter wins); special token names the files
// do not give are left empty (see withDefaults).
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
		for _, p := range [][2]*tokenName{
			{&names.UnkToken, &n.UnkToken}, {&names.SepToken, &n.SepToken}, {&names.PadToken, &n.PadToken},
			{&names.ClsToken, &n.ClsToken}, {&names.MaskToken, &n.MaskToken}, {&names.BosToken, &n.BosToken},
			{&names.EosToken, &n.EosToken},
		} {
			if *p[1] != "" {
				*p[0] = *p[1]
			}
		}
	}
	cfg.UnkToken, cfg.SepToken, cfg.PadToken = names.UnkToken, names.SepToken, names.PadToken
	cfg.ClsToken, cfg.MaskToken = names.ClsToken, names.MaskToken
	cfg.BosToken, cfg.EosToken = names.BosToken, names.EosToken
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

// loadTokenizerJSON reads a Hugging Face tokenizer.json and dispatches on
// its model type: WordPiece (BERT form, parsed with sugarme/tokenizer's
// Config type) or byte-level BPE.
func loadTokenizerJSON(path string, cfg tokenizerConfig) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var head struct {
		Model map[string]json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if head.Model == nil {
		return nil, errors.New(`no "model"`)
	}
	var typ string
	if raw, ok := head.Model["type"]; ok {
		if err := json.Unmarshal(raw, &typ); err != nil {
			return nil, fmt.Errorf("model type: %w", err)
		}
	}
	_, hasMerges := head.Model["merges"]
	switch {
	case typ == "BPE" || typ == "" && hasMerges:
		return loadBPEJSON(b, cfg)
	case typ == "Unigram":
		return loadUnigramJSON(b, cfg.withDefaults(bpeSpecials))
	}
	return loadWordPieceJSON(b, cfg.withDefaults(wordPieceSpecials))
}

// loadWordPieceJSON reads a tokenizer.json of BERT form.
func loadWordPieceJSON(b []byte, cfg tokenizerConfig) (*Tokenizer, error) {
	var c sugar.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	m := c.Model
	if typ, _ := m["type"].(string); typ != "WordPiece" {
		// Hub files for BERT often omit "type" on the model; accept a model
		// that has WordPiece fields.
		if _, hasMax := m["max_input_chars_per_word"]; typ != "" || !hasMax {
			return nil, fmt.Errorf("%w: model type %q (WordPiece, byte-level BPE and Unigram are supported)", ErrUnsupported, typ)
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
		return nil, fmt.Errorf(`%w: no "pre_tokenizer" (a WordPiece model needs BertPreTokenizer)`, ErrUnsupported)
	}
	if typ, _ := c.PreTokenizer["type"].(string); typ != "BertPreTokenizer" {
		return nil, fmt.Errorf("%w: pre_tokenizer type %q with a WordPiece model (only BertPreTokenizer)", ErrUnsupported, typ)
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
			return nil, fmt.Errorf("%w: decoder type %q with a WordPiece model (only WordPiece)", ErrUnsupported, typ)
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
	t.addSpecial = addSpecial
	t.model.(*wordPieceModel).cleanup = cleanup

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
		return Normalizer{}, nil, fmt.Errorf("%w: normalizer type %q with a WordPiece model (only BertNormalizer)", ErrUnsupported, typ)
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

// finishLoad applies what tokenizer_config.json sets for every tokenizer
// kind (model_max_length, clean_up_tokenization_spaces) and registers the
// added tokens in id order.
func (t *Tokenizer) finishLoad(cfg tokenizerConfig, added []AddedToken) error {
	if cfg.ModelMaxLength > 0 && cfg.ModelMaxLength < 1e9 {
		t.modelMaxLength = int(cfg.ModelMaxLength)
	}
	if cfg.CleanUpSpaces != nil {
		t.cleanupSpaces = *cfg.CleanUpSpaces
	}
	added = append([]AddedToken(nil), added...)
	sort.SliceStable(added, func(i, j int) bool { return added[i].ID < added[j].ID })
	return t.finish(added)
}
