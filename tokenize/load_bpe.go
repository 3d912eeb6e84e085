package tokenize

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// bpeSpec is what a byte-level BPE tokenizer is built from, whether read
// from tokenizer.json or from vocab.json and merges.txt.
type bpeSpec struct {
	vocab  map[string]int
	merges [][2]string

	unkToken     string // the model's unknown token; "" for none
	fuseUnk      bool
	ignoreMerges bool

	addPrefixSpace, useRegex bool

	// processor is the post-processor: "RobertaProcessing", "ByteLevel",
	// "TemplateProcessing" or "" for none; cls and sep are the tokens it
	// adds (RobertaProcessing, TemplateProcessing).
	processor                  string
	trimOffsets, ppPrefixSpace bool
	cls, sep                   string

	added []AddedToken

	// chain is the normaliser (nil for none), lower whether it lowercases,
	// and normalizer its tokenizer.json component, kept for saving.
	chain      normChain
	lower      bool
	normalizer json.RawMessage
}

// loadBPEJSON reads a tokenizer.json with a BPE model. Only the byte-level
// form is supported: the normalisers of Unigram tokenizers (NFC, NFD, NFKC,
// NFKD, Lowercase, Strip, Replace, Prepend, Precompiled, a Sequence of them,
// or none; GPT-NeoX's and ModernBERT's tokenizer.json have NFC), the
// ByteLevel pre-tokeniser and decoder, and RobertaProcessing, ByteLevel,
// TemplateProcessing ("<s> $A </s>", "[CLS] $A [SEP]") or no
// post-processor. Special tokens that cfg does not name take the defaults
// of bpeDefaultSpecials.
func loadBPEJSON(b []byte, cfg tokenizerConfig) (*Tokenizer, error) {
	var doc struct {
		AddedTokens   []AddedToken    `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
		Model         struct {
			Dropout                 *float64        `json:"dropout"`
			UnkToken                *string         `json:"unk_token"`
			ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
			EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
			FuseUnk                 bool            `json:"fuse_unk"`
			ByteFallback            bool            `json:"byte_fallback"`
			IgnoreMerges            bool            `json:"ignore_merges"`
			Vocab                   map[string]int  `json:"vocab"`
			Merges                  json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse BPE tokenizer: %w", err)
	}
	m := doc.Model
	cfg = cfg.withDefaults(bpeDefaultSpecials(doc.AddedTokens, m.Vocab))
	switch {
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, fmt.Errorf("%w: BPE dropout %g (randomised tokenisation is for training; set it to null)", ErrUnsupported, *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, fmt.Errorf("%w: BPE continuing_subword_prefix %q (byte-level BPE has none)", ErrUnsupported, *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, fmt.Errorf("%w: BPE end_of_word_suffix %q (byte-level BPE has none)", ErrUnsupported, *m.EndOfWordSuffix)
	case m.ByteFallback:
		return nil, fmt.Errorf("%w: BPE byte_fallback (a SentencePiece-style BPE, not byte-level)", ErrUnsupported)
	case len(m.Vocab) == 0:
		return nil, errors.New(`BPE model has no "vocab"`)
	}
	spec := bpeSpec{vocab: m.Vocab, fuseUnk: m.FuseUnk, ignoreMerges: m.IgnoreMerges, added: doc.AddedTokens}
	if m.UnkToken != nil {
		spec.unkToken = *m.UnkToken
	}
	var err error
	if spec.chain, spec.lower, err = parseNormChain(doc.Normalizer, "a byte-level BPE model"); err != nil {
		return nil, err
	}
	if len(spec.chain) > 0 {
		spec.normalizer = doc.Normalizer
	}
	if spec.merges, err = parseMerges(m.Merges); err != nil {
		return nil, err
	}

	var pre struct {
		Type           string `json:"type"`
		AddPrefixSpace bool   `json:"add_prefix_space"`
		UseRegex       *bool  `json:"use_regex"`
	}
	if len(doc.PreTokenizer) > 0 && string(doc.PreTokenizer) != "null" {
		if err := json.Unmarshal(doc.PreTokenizer, &pre); err != nil {
			return nil, fmt.Errorf("parse pre_tokenizer: %w", err)
		}
	}
	if pre.Type != "ByteLevel" {
		return nil, fmt.Errorf("%w: pre_tokenizer type %q with a BPE model (only ByteLevel: byte-level BPE as in RoBERTa and GPT-2)", ErrUnsupported, pre.Type)
	}
	spec.addPrefixSpace = pre.AddPrefixSpace
	spec.useRegex = pre.UseRegex == nil || *pre.UseRegex

	if k := kindOf(doc.Decoder); k != "ByteLevel" {
		return nil, fmt.Errorf("%w: decoder type %q with a byte-level BPE model (only ByteLevel)", ErrUnsupported, k)
	}

	switch k := kindOf(doc.PostProcessor); k {
	case "":
	case "RobertaProcessing", "ByteLevel":
		var pp struct {
			Sep            []json.RawMessage `json:"sep"`
			Cls            []json.RawMessage `json:"cls"`
			TrimOffsets    bool              `json:"trim_offsets"`
			AddPrefixSpace bool              `json:"add_prefix_space"`
		}
		if err := json.Unmarshal(doc.PostProcessor, &pp); err != nil {
			return nil, fmt.Errorf("parse post_processor %s: %w", k, err)
		}
		spec.processor, spec.trimOffsets, spec.ppPrefixSpace = k, pp.TrimOffsets, pp.AddPrefixSpace
		if k == "RobertaProcessing" {
			if len(pp.Cls) != 2 || len(pp.Sep) != 2 ||
				json.Unmarshal(pp.Cls[0], &spec.cls) != nil || json.Unmarshal(pp.Sep[0], &spec.sep) != nil {
				return nil, errors.New("post_processor RobertaProcessing: cls and sep must be [token, id]")
			}
		}
	case "TemplateProcessing":
		var pp map[string]any
		if err := json.Unmarshal(doc.PostProcessor, &pp); err != nil {
			return nil, fmt.Errorf("parse post_processor: %w", err)
		}
		if spec.cls, spec.sep, err = parsePostProcessor(pp); err != nil {
			return nil, err
		}
		spec.processor = k
	default:
		return nil, fmt.Errorf("%w: post_processor type %q with a byte-level BPE model (RobertaProcessing, ByteLevel or TemplateProcessing)", ErrUnsupported, k)
	}
	return newBPE(spec, cfg)
}

// bpeDefaultSpecials returns the special token names a byte-level BPE
// tokenizer.json has when no configuration names them: RoBERTa's (<mask>,
// <s>, …), or BERT's ([MASK], [CLS], …) when the file has [MASK] and no
// <mask>, as ModernBERT's has.
func bpeDefaultSpecials(added []AddedToken, vocab map[string]int) specialDefaults {
	has := func(s string) bool {
		if _, ok := vocab[s]; ok {
			return true
		}
		for _, a := range added {
			if a.Content == s {
				return true
			}
		}
		return false
	}
	if has("[MASK]") && !has("<mask>") {
		return wordPieceSpecials
	}
	return bpeSpecials
}

// kindOf returns the "type" of a tokenizer.json component, or "" for null
// or absent.
func kindOf(raw json.RawMessage) string {
	var v struct {
		Type string `json:"type"`
	}
	if len(raw) == 0 || string(raw) == "null" || json.Unmarshal(raw, &v) != nil {
		return ""
	}
	if v.Type == "" {
		return "(no type)"
	}
	return v.Type
}

// parseMerges reads the "merges" of a BPE model in either form Hugging
// Face writes: ["a b", …] (tokenizers before 0.20) or [["a", "b"], …].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("parse BPE merges: %w", err)
	}
	out := make([][2]string, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("BPE merge %d %q is not two tokens separated by a space", i+1, s)
			}
			out[i] = [2]string{a, b}
			continue
		}
		var pair []string
		if err := json.Unmarshal(it, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("BPE merge %d is neither \"a b\" nor [\"a\", \"b\"]: %s", i+1, it)
		}
		out[i] = [2]string{pair[0], pair[1]}
	}
	return out, nil
}

// loadVocabJSON builds a byte-level BPE tokenizer from vocab.json and
// merges.txt as transformers' RobertaTokenizerFast does when there is no
// tokenizer.json: ByteLevel pre-tokeniser (tokenizer_config.json's
// add_prefix_space, default false), RobertaProcessing (trim_offsets,
// default true), and the special tokens of the configuration as added
// tokens, the mask token with lstrip (or as added_tokens_decoder says).
func loadVocabJSON(dir string, cfg tokenizerConfig) (*Tokenizer, error) {
	cfg = cfg.withDefaults(bpeSpecials)
	b, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, err
	}
	var vocab map[string]int
	if err := json.Unmarshal(b, &vocab); err != nil {
		return nil, fmt.Errorf("parse vocab.json: %w", err)
	}
	mergesPath := filepath.Join(dir, "merges.txt")
	mb, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("byte-level BPE needs merges.txt beside vocab.json: %w", err)
	}
	var merges [][2]string
	sc := bufio.NewScanner(bytes.NewReader(mb))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#version") {
			continue
		}
		a, b, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, fmt.Errorf("%s line %d %q is not two tokens separated by a space", mergesPath, n, line)
		}
		merges = append(merges, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", mergesPath, err)
	}
	spec := bpeSpec{
		vocab: vocab, merges: merges, useRegex: true,
		processor: "RobertaProcessing", trimOffsets: true,
		cls: string(cfg.ClsToken), sep: string(cfg.SepToken),
	}
	if cfg.AddPrefixSpace != nil {
		spec.addPrefixSpace = *cfg.AddPrefixSpace
	}
	if cfg.TrimOffsets != nil {
		spec.trimOffsets = *cfg.TrimOffsets
	}
	spec.ppPrefixSpace = spec.addPrefixSpace
	// The special tokens, as transformers adds them; added_tokens_decoder,
	// when there, is the full record.
	byID := map[int]AddedToken{}
	for key, a := range cfg.AddedTokensDecoder {
		id, err := strconv.Atoi(key)
		if err != nil {
			return nil, fmt.Errorf("tokenizer_config.json added_tokens_decoder key %q is not an id", key)
		}
		a.ID = id
		byID[id] = a
	}
	for _, name := range []tokenName{cfg.BosToken, cfg.EosToken, cfg.UnkToken, cfg.SepToken, cfg.PadToken, cfg.ClsToken, cfg.MaskToken} {
		id, ok := vocab[string(name)]
		if name == "" || !ok {
			continue
		}
		if _, ok := byID[id]; !ok {
			byID[id] = AddedToken{ID: id, Content: string(name), Special: true, LStrip: name == cfg.MaskToken}
		}
	}
	for _, a := range byID {
		spec.added = append(spec.added, a)
	}
	return newBPE(spec, cfg)
}

// newBPE builds a byte-level BPE tokenizer from spec. Every merge must join
// two vocabulary tokens into a third.
func newBPE(spec bpeSpec, cfg tokenizerConfig) (*Tokenizer, error) {
	vocab, err := vocabSlice(spec.vocab)
	if err != nil {
		return nil, err
	}
	bm := &bpeModel{
		merges:         make(map[[2]int]bpeMerge, len(spec.merges)),
		mergeList:      spec.merges,
		unkToken:       spec.unkToken,
		fuseUnk:        spec.fuseUnk,
		ignoreMerges:   spec.ignoreMerges,
		addPrefixSpace: spec.addPrefixSpace,
		useRegex:       spec.useRegex,
		trimOffsets:    spec.trimOffsets,
		ppPrefixSpace:  spec.ppPrefixSpace,
		processor:      spec.processor,
		normalizer:     spec.normalizer,
	}
	if spec.unkToken != "" {
		id, ok := spec.vocab[spec.unkToken]
		if !ok {
			return nil, fmt.Errorf("BPE unk_token %q is not in the vocabulary", spec.unkToken)
		}
		bm.unkID = id
	}
	for rank, mg := range spec.merges {
		a, okA := spec.vocab[mg[0]]
		b, okB := spec.vocab[mg[1]]
		c, okC := spec.vocab[mg[0]+mg[1]]
		if !okA || !okB || !okC {
			return nil, fmt.Errorf("BPE merge %d (%q %q): a token of it or its result is not in the vocabulary", rank+1, mg[0], mg[1])
		}
		bm.merges[[2]int{a, b}] = bpeMerge{rank: rank, id: c}
	}
	t := &Tokenizer{
		vocab:          vocab,
		ids:            spec.vocab,
		chain:          spec.chain,
		lowercase:      spec.lower,
		model:          bm,
		unkToken:       string(cfg.UnkToken),
		clsToken:       string(cfg.ClsToken),
		sepToken:       string(cfg.SepToken),
		padToken:       string(cfg.PadToken),
		maskToken:      string(cfg.MaskToken),
		addSpecial:     spec.processor == "RobertaProcessing" || spec.processor == "TemplateProcessing",
		modelMaxLength: 512,
	}
	if spec.cls != "" {
		t.clsToken, t.sepToken = spec.cls, spec.sep
	}
	if err := t.finishLoad(cfg, spec.added); err != nil {
		return nil, err
	}
	return t, nil
}
