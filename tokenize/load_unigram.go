package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// loadUnigramJSON reads a tokenizer.json with a Unigram model, as
// XLM-RoBERTa's: the normaliser chain (NFC, NFD, NFKC, NFKD, Lowercase,
// Strip, Replace, Prepend, Precompiled, Sequence, or none), the Metaspace
// pre-tokeniser (or none), TemplateProcessing ("<s> $A </s>"),
// RobertaProcessing or no post-processor, and a decoder chain of
// Metaspace, ByteFallback, Fuse, Replace and Strip (or none).
func loadUnigramJSON(b []byte, cfg tokenizerConfig) (*Tokenizer, error) {
	var doc struct {
		AddedTokens   []AddedToken    `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
		Model         struct {
			UnkID        *int                 `json:"unk_id"`
			Vocab        [][2]json.RawMessage `json:"vocab"`
			ByteFallback bool                 `json:"byte_fallback"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse Unigram tokenizer: %w", err)
	}
	m := doc.Model
	if len(m.Vocab) == 0 {
		return nil, errors.New(`Unigram model has no "vocab"`)
	}
	vocab := make([]string, len(m.Vocab))
	ids := make(map[string]int, len(m.Vocab))
	u := &unigramModel{scores: make([]float64, len(m.Vocab)), unkID: -1, byteFallback: m.ByteFallback}
	minScore := math.Inf(1)
	for i, e := range m.Vocab {
		if err := json.Unmarshal(e[0], &vocab[i]); err != nil {
			return nil, fmt.Errorf("Unigram vocabulary entry %d: piece: %w", i, err)
		}
		if err := json.Unmarshal(e[1], &u.scores[i]); err != nil {
			return nil, fmt.Errorf("Unigram vocabulary entry %d (%q): score: %w", i, vocab[i], err)
		}
		if vocab[i] == "" {
			return nil, fmt.Errorf("Unigram vocabulary entry %d is empty", i)
		}
		if !utf8.ValidString(vocab[i]) {
			return nil, fmt.Errorf("Unigram vocabulary entry %d is not UTF-8", i)
		}
		ids[vocab[i]] = i // a repeated piece: the last id wins, as in Hugging Face
		minScore = min(minScore, u.scores[i])
		u.maxLen = max(u.maxLen, len(vocab[i]))
	}
	u.unkScore = minScore - 10
	if m.UnkID != nil {
		if *m.UnkID < 0 || *m.UnkID >= len(vocab) {
			return nil, fmt.Errorf("Unigram unk_id %d is outside the vocabulary (size %d)", *m.UnkID, len(vocab))
		}
		u.unkID = *m.UnkID
	}
	for i := range u.byteIDs {
		u.byteIDs[i] = -1
		if id, ok := ids[byteToken(byte(i))]; ok {
			u.byteIDs[i] = id
		}
	}

	chain, lower, err := parseNormChain(doc.Normalizer, "a Unigram model")
	if err != nil {
		return nil, err
	}
	if u.meta, err = parseMetaspace(doc.PreTokenizer); err != nil {
		return nil, err
	}
	if u.decoders, err = parseDecoders(doc.Decoder); err != nil {
		return nil, err
	}
	u.raw = unigramRaw{normalizer: doc.Normalizer, preTokenizer: doc.PreTokenizer, postProcessor: doc.PostProcessor, decoder: doc.Decoder}

	t := &Tokenizer{
		vocab:          vocab,
		ids:            ids,
		chain:          chain,
		lowercase:      lower,
		model:          u,
		unkToken:       string(cfg.UnkToken),
		clsToken:       string(cfg.ClsToken),
		sepToken:       string(cfg.SepToken),
		padToken:       string(cfg.PadToken),
		maskToken:      string(cfg.MaskToken),
		modelMaxLength: 512,
	}
	if u.unkID >= 0 {
		t.unkToken = vocab[u.unkID]
	}
	switch k := kindOf(doc.PostProcessor); k {
	case "":
	case "RobertaProcessing":
		var pp struct {
			Sep            []json.RawMessage `json:"sep"`
			Cls            []json.RawMessage `json:"cls"`
			TrimOffsets    bool              `json:"trim_offsets"`
			AddPrefixSpace bool              `json:"add_prefix_space"`
		}
		if err := json.Unmarshal(doc.PostProcessor, &pp); err != nil {
			return nil, fmt.Errorf("parse post_processor %s: %w", k, err)
		}
		if len(pp.Cls) != 2 || len(pp.Sep) != 2 ||
			json.Unmarshal(pp.Cls[0], &t.clsToken) != nil || json.Unmarshal(pp.Sep[0], &t.sepToken) != nil {
			return nil, errors.New("post_processor RobertaProcessing: cls and sep must be [token, id]")
		}
		u.trimOffsets, u.ppPrefix = pp.TrimOffsets, pp.AddPrefixSpace
		t.addSpecial = true
	case "TemplateProcessing":
		var pp map[string]any
		if err := json.Unmarshal(doc.PostProcessor, &pp); err != nil {
			return nil, fmt.Errorf("parse post_processor: %w", err)
		}
		if t.clsToken, t.sepToken, err = parsePostProcessor(pp); err != nil {
			return nil, err
		}
		t.addSpecial = true
	default:
		return nil, fmt.Errorf("%w: post_processor type %q with a Unigram model (TemplateProcessing, RobertaProcessing or none)", ErrUnsupported, k)
	}
	if err := t.finishLoad(cfg, doc.AddedTokens); err != nil {
		return nil, err
	}
	return t, nil
}

// hfPattern is the pattern of a Replace normaliser or decoder:
// {"String": "…"} or {"Regex": "…"}.
type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// parseNormChain reads the normalizer component of a Unigram or byte-level
// BPE tokenizer; it reports whether the chain lowercases. model names the
// tokenizer's model in errors ("a Unigram model").
func parseNormChain(raw json.RawMessage, model string) (normChain, bool, error) {
	if kindOf(raw) == "" {
		return nil, false, nil
	}
	var chain normChain
	lower := false
	var add func(raw json.RawMessage, depth int) error
	add = func(raw json.RawMessage, depth int) error {
		var n struct {
			Type        string            `json:"type"`
			Normalizers []json.RawMessage `json:"normalizers"`
			Left        *bool             `json:"strip_left"`
			Right       *bool             `json:"strip_right"`
			Pattern     hfPattern         `json:"pattern"`
			Content     string            `json:"content"`
			Prepend     string            `json:"prepend"`
			Charsmap    string            `json:"precompiled_charsmap"`
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("parse normalizer: %w", err)
		}
		switch n.Type {
		case "Sequence":
			if depth > 8 {
				return errors.New("normalizer: Sequence nested too deeply")
			}
			for _, sub := range n.Normalizers {
				if err := add(sub, depth+1); err != nil {
					return err
				}
			}
		case "NFC":
			chain = append(chain, unicodeNorm{compose: true})
		case "NFD":
			chain = append(chain, unicodeNorm{})
		case "NFKC":
			chain = append(chain, unicodeNorm{compat: true, compose: true})
		case "NFKD":
			chain = append(chain, unicodeNorm{compat: true})
		case "Lowercase":
			chain = append(chain, lowercaseNorm{})
			lower = true
		case "Strip":
			chain = append(chain, stripNorm{left: n.Left == nil || *n.Left, right: n.Right == nil || *n.Right})
		case "Prepend":
			chain = append(chain, prependNorm{prefix: n.Prepend})
		case "Replace":
			r := replaceNorm{content: n.Content}
			switch {
			case n.Pattern.String != nil:
				r.literal = *n.Pattern.String
			case n.Pattern.Regex != nil:
				re, err := regexFor(*n.Pattern.Regex)
				if err != nil {
					return err
				}
				r.re = re
			default:
				return errors.New(`normalizer Replace: pattern must be {"String": …} or {"Regex": …}`)
			}
			chain = append(chain, r)
		case "Precompiled":
			pc, err := parsePrecompiled(n.Charsmap)
			if err != nil {
				return err
			}
			if pc != nil {
				chain = append(chain, pc)
			}
		default:
			return fmt.Errorf("%w: normalizer type %q with %s (NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Precompiled or a Sequence of them)", ErrUnsupported, n.Type, model)
		}
		return nil
	}
	if err := add(raw, 0); err != nil {
		return nil, false, err
	}
	return chain, lower, nil
}

// parseMetaspace reads the pre_tokenizer of a Unigram tokenizer: Metaspace
// or none. As in Hugging Face, prepend_scheme defaults to "always",
// "add_prefix_space": false means "never" (and contradicts any other
// scheme), and split defaults to true.
func parseMetaspace(raw json.RawMessage) (metaspace, error) {
	switch k := kindOf(raw); k {
	case "":
		return metaspace{}, nil
	case "Metaspace":
	default:
		return metaspace{}, fmt.Errorf("%w: pre_tokenizer type %q with a Unigram model (only Metaspace or none)", ErrUnsupported, k)
	}
	var p struct {
		Replacement    string  `json:"replacement"`
		PrependScheme  *string `json:"prepend_scheme"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		Split          *bool   `json:"split"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return metaspace{}, fmt.Errorf("parse pre_tokenizer Metaspace: %w", err)
	}
	scheme, err := prependScheme(p.PrependScheme, p.AddPrefixSpace)
	if err != nil {
		return metaspace{}, fmt.Errorf("pre_tokenizer Metaspace: %w", err)
	}
	if utf8.RuneCountInString(p.Replacement) != 1 {
		return metaspace{}, fmt.Errorf("pre_tokenizer Metaspace: replacement %q is not one character", p.Replacement)
	}
	return metaspace{on: true, repl: p.Replacement, prepend: scheme, split: p.Split == nil || *p.Split}, nil
}

// prependScheme resolves Metaspace's prepend_scheme and legacy
// add_prefix_space.
func prependScheme(scheme *string, addPrefixSpace *bool) (string, error) {
	s := "always"
	if scheme != nil {
		switch *scheme {
		case "always", "first", "never":
			s = *scheme
		default:
			return "", fmt.Errorf("prepend_scheme %q (always, first or never)", *scheme)
		}
	}
	if addPrefixSpace != nil && !*addPrefixSpace {
		if s != "never" {
			if scheme != nil {
				return "", errors.New("add_prefix_space does not match declared prepend_scheme")
			}
		}
		s = "never"
	}
	return s, nil
}

// parseDecoders reads the decoder of a Unigram tokenizer; nil means none.
func parseDecoders(raw json.RawMessage) ([]decodeStep, error) {
	if kindOf(raw) == "" {
		return nil, nil
	}
	steps := []decodeStep{}
	var add func(raw json.RawMessage, depth int) error
	add = func(raw json.RawMessage, depth int) error {
		var d struct {
			Type           string            `json:"type"`
			Decoders       []json.RawMessage `json:"decoders"`
			Replacement    string            `json:"replacement"`
			PrependScheme  *string           `json:"prepend_scheme"`
			AddPrefixSpace *bool             `json:"add_prefix_space"`
			Pattern        hfPattern         `json:"pattern"`
			Content        string            `json:"content"`
			Start          int               `json:"start"`
			Stop           int               `json:"stop"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("parse decoder: %w", err)
		}
		switch d.Type {
		case "Sequence":
			if depth > 8 {
				return errors.New("decoder: Sequence nested too deeply")
			}
			for _, sub := range d.Decoders {
				if err := add(sub, depth+1); err != nil {
					return err
				}
			}
		case "Metaspace":
			scheme, err := prependScheme(d.PrependScheme, d.AddPrefixSpace)
			if err != nil {
				return fmt.Errorf("decoder Metaspace: %w", err)
			}
			r, size := utf8.DecodeRuneInString(d.Replacement)
			if size == 0 || size != len(d.Replacement) {
				return fmt.Errorf("decoder Metaspace: replacement %q is not one character", d.Replacement)
			}
			steps = append(steps, metaspaceDecoder{repl: r, prepend: scheme})
		case "ByteFallback":
			steps = append(steps, byteFallbackDecoder{})
		case "Fuse":
			steps = append(steps, fuseDecoder{})
		case "Replace":
			if d.Pattern.String == nil {
				return fmt.Errorf("%w: decoder Replace with a Regex pattern (only String)", ErrUnsupported)
			}
			steps = append(steps, replaceDecoder{pattern: *d.Pattern.String, content: d.Content})
		case "Strip":
			r, size := utf8.DecodeRuneInString(d.Content)
			if size == 0 || size != len(d.Content) || d.Start < 0 || d.Stop < 0 {
				return fmt.Errorf("decoder Strip: content %q must be one character and start, stop non-negative", d.Content)
			}
			steps = append(steps, stripDecoder{content: r, start: d.Start, stop: d.Stop})
		default:
			return fmt.Errorf("%w: decoder type %q with a Unigram model (Metaspace, ByteFallback, Fuse, Replace, Strip or a Sequence of them)", ErrUnsupported, d.Type)
		}
		return nil
	}
	if err := add(raw, 0); err != nil {
		return nil, err
	}
	return steps, nil
}
