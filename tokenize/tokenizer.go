// Package tokenize is clozeloop's BERT WordPiece tokenizer: it loads Hugging
// Face tokenizer directories (tokenizer.json, or vocab.txt with
// tokenizer_config.json), encodes text into ids with byte offsets exactly as
// the Hugging Face tokenizers library does, trains new WordPiece
// vocabularies and writes directories that Hugging Face loads unchanged.
//
// Files are read with github.com/sugarme/tokenizer. Its encoding pipeline is
// not used: measured against Hugging Face it turns accented words, Unicode
// spaces and private-use characters into [UNK], panics on characters whose
// lowercase form has a different UTF-8 length, matches different special
// tokens in id order rather than by position and reads "strip_accents": null
// as false. This package implements the BERT pipeline itself (normaliser,
// pre-tokeniser, WordPiece model, special-token splitting, post-processing,
// decoder) and is tested for identical ids against the real Hugging Face
// library (tools/hfparity). It runs byte-level BPE (RoBERTa, GPT-2) and
// SentencePiece Unigram (XLM-RoBERTa: Precompiled and Unicode normalisers,
// Metaspace, Unigram model with byte fallback) tokenizer.json files the
// same way.
package tokenize

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token matched in the raw text before normalisation and
// pre-tokenisation, such as [MASK]; it mirrors an entry of the
// "added_tokens" list of a Hugging Face tokenizer.json.
type AddedToken struct {
	// ID is the token's id.
	ID int `json:"id"`
	// Content is the token's text.
	Content string `json:"content"`
	// SingleWord restricts matches to whole words.
	SingleWord bool `json:"single_word"`
	// LStrip makes a match swallow the whitespace on its left.
	LStrip bool `json:"lstrip"`
	// RStrip makes a match swallow the whitespace on its right.
	RStrip bool `json:"rstrip"`
	// Normalized matches the token in normalised rather than raw text.
	Normalized bool `json:"normalized"`
	// Special marks special tokens, which decoding can skip.
	Special bool `json:"special"`
}

// Encoding is the result of encoding one text.
type Encoding struct {
	// IDs are the token ids, [CLS] first and [SEP] last.
	IDs []int
	// Tokens are the token strings, parallel to IDs.
	Tokens []string
	// Offsets are the byte ranges [start, end) of each token in the original
	// text; tokens added by post-processing ([CLS], [SEP]) have (0, 0).
	Offsets [][2]int
	// Special reports, per token, whether it is a special token.
	Special []bool
}

// Pieces is how one text (typically an annotator's answer) splits into
// WordPiece tokens, without [CLS] and [SEP].
type Pieces struct {
	// IDs are the token ids.
	IDs []int
	// Tokens are the token strings, parallel to IDs.
	Tokens []string
	// Unknown reports that at least one word mapped to the unknown token, so
	// the text cannot be represented in this vocabulary.
	Unknown bool
}

// Tokenizer is a Hugging Face tokenizer of one of three kinds: BERT's
// WordPiece (BertNormalizer, BertPreTokenizer, WordPiece model and
// decoder), byte-level BPE as in RoBERTa, GPT-2, GPT-NeoX and ModernBERT
// (no normaliser or a chain such as NFC, ByteLevel pre-tokeniser, BPE
// model, RobertaProcessing or TemplateProcessing, ByteLevel decoder) or
// SentencePiece Unigram as in XLM-RoBERTa (a chain of normalisers such as
// Precompiled, Metaspace pre-tokeniser, Unigram model, TemplateProcessing,
// Metaspace decoder). All share the vocabulary, the
// added tokens and their matching, and the special tokens; the
// kind-specific steps sit behind the model interface. A Tokenizer is safe
// for concurrent use once built.
type Tokenizer struct {
	vocab []string // id → token; "" marks an id without token
	ids   map[string]int

	norm    Normalizer
	hasNorm bool
	// chain is the general normaliser of Unigram and byte-level BPE
	// tokenizers (nil otherwise); it takes precedence over norm.
	chain normChain
	// lowercase records that chain lowercases text.
	lowercase    bool
	stripAccents *bool // as configured; nil follows lowercase

	model model

	added     []AddedToken
	addedByID map[int]int // id → index in added
	rawAdded  []AddedToken
	normAdded []AddedToken // with Content normalised

	unkToken, clsToken, sepToken, padToken, maskToken string
	unkID, clsID, sepID, padID, maskID                int
	addSpecial                                        bool

	modelMaxLength int
	// cleanupSpaces applies transformers' clean_up_tokenization after the
	// decoder (byte-level BPE tokenizers whose tokenizer_config.json asks
	// for it; WordPiece's decoder has its own cleanup flag).
	cleanupSpaces bool
}

// model is what differs between tokenizer kinds: how a stretch of
// normalised text between added tokens becomes tokens, how offsets are
// post-processed, and how tokens become text again.
type model interface {
	// tokenize appends the tokens of text[start:end] to dst, with byte
	// ranges in text.
	tokenize(t *Tokenizer, text []byte, start, end int, opts encodeOpts, dst []piece) []piece
	// trim post-processes the offsets of the tokens of an encoding before
	// the special tokens are added around them.
	trim(enc *Encoding, text string)
	// decode joins tokens into text.
	decode(tokens []string) string
}

// wordPieceModel is BERT's pipeline after normalisation: BertPreTokenizer,
// the WordPiece model and the WordPiece decoder.
type wordPieceModel struct {
	prefix   string // continuing-subword prefix, "##"
	maxChars int    // longer words become the unknown token
	cleanup  bool   // decoder cleanup of spaces before punctuation
}

// Kind names the tokenizer's model: "WordPiece", "BPE" (byte-level) or
// "Unigram" (SentencePiece).
func (t *Tokenizer) Kind() string {
	switch t.model.(type) {
	case *bpeModel:
		return "BPE"
	case *unigramModel:
		return "Unigram"
	}
	return "WordPiece"
}

// Options configure a BERT-uncased style tokenizer built by FromVocab.
type Options struct {
	// Lowercase lowercases text (BERT uncased). Default true in
	// DefaultOptions.
	Lowercase bool
	// StripAccents removes accents; nil follows Lowercase, as Hugging Face
	// does for "strip_accents": null.
	StripAccents *bool
	// CleanText drops control characters and maps Unicode whitespace to
	// spaces.
	CleanText bool
	// HandleChineseChars makes every CJK ideograph a word of its own.
	HandleChineseChars bool
	// UnkToken, ClsToken, SepToken, PadToken and MaskToken name the special
	// tokens; each must be in the vocabulary.
	UnkToken, ClsToken, SepToken, PadToken, MaskToken string
	// ContinuingSubwordPrefix marks word pieces that continue a word.
	ContinuingSubwordPrefix string
	// MaxInputCharsPerWord is the longest word (in characters) that is split
	// into pieces; longer words become the unknown token.
	MaxInputCharsPerWord int
	// ModelMaxLength is the model's maximum sequence length written to
	// tokenizer_config.json.
	ModelMaxLength int
}

// DefaultOptions returns the options of bert-base-uncased.
func DefaultOptions() Options {
	return Options{
		Lowercase:               true,
		CleanText:               true,
		HandleChineseChars:      true,
		UnkToken:                "[UNK]",
		ClsToken:                "[CLS]",
		SepToken:                "[SEP]",
		PadToken:                "[PAD]",
		MaskToken:               "[MASK]",
		ContinuingSubwordPrefix: "##",
		MaxInputCharsPerWord:    100,
		ModelMaxLength:          512,
	}
}

// FromVocab builds a tokenizer from a vocabulary (token i has id i) and
// options. The five special tokens must be in the vocabulary; they become
// special added tokens matched in raw text.
func FromVocab(vocab []string, opts Options) (*Tokenizer, error) {
	if len(vocab) == 0 {
		return nil, errors.New("build tokenizer: empty vocabulary")
	}
	ids := make(map[string]int, len(vocab))
	for i, tok := range vocab {
		if tok == "" {
			return nil, fmt.Errorf("build tokenizer: vocabulary entry %d is empty", i)
		}
		if j, dup := ids[tok]; dup {
			return nil, fmt.Errorf("build tokenizer: token %q appears twice (ids %d and %d)", tok, j, i)
		}
		ids[tok] = i
	}
	var added []AddedToken
	seen := map[string]bool{}
	for _, name := range []string{opts.PadToken, opts.UnkToken, opts.ClsToken, opts.SepToken, opts.MaskToken} {
		if name == "" {
			return nil, errors.New("build tokenizer: a special token name is empty")
		}
		id, ok := ids[name]
		if !ok {
			return nil, fmt.Errorf("build tokenizer: special token %q is not in the vocabulary", name)
		}
		if !seen[name] {
			seen[name] = true
			added = append(added, AddedToken{ID: id, Content: name, Special: true})
		}
	}
	t := &Tokenizer{
		vocab: append([]string(nil), vocab...),
		ids:   ids,
		norm: Normalizer{
			CleanText:          opts.CleanText,
			HandleChineseChars: opts.HandleChineseChars,
			Lowercase:          opts.Lowercase,
			StripAccents:       opts.Lowercase,
		},
		hasNorm:        true,
		model:          &wordPieceModel{prefix: opts.ContinuingSubwordPrefix, maxChars: opts.MaxInputCharsPerWord, cleanup: true},
		unkToken:       opts.UnkToken,
		clsToken:       opts.ClsToken,
		sepToken:       opts.SepToken,
		padToken:       opts.PadToken,
		maskToken:      opts.MaskToken,
		addSpecial:     true,
		modelMaxLength: opts.ModelMaxLength,
	}
	if opts.StripAccents != nil {
		v := *opts.StripAccents
		t.stripAccents = &v
		t.norm.StripAccents = v
	}
	if wp := t.model.(*wordPieceModel); wp.maxChars <= 0 {
		wp.maxChars = 100
	}
	if t.modelMaxLength <= 0 {
		t.modelMaxLength = 512
	}
	if err := t.finish(added); err != nil {
		return nil, err
	}
	return t, nil
}

// finish installs the added tokens and resolves the special token ids.
func (t *Tokenizer) finish(added []AddedToken) error {
	t.added = added
	t.addedByID = make(map[int]int, len(added))
	t.rawAdded, t.normAdded = nil, nil
	for i, a := range added {
		if a.Content == "" {
			return fmt.Errorf("added token %d has empty content", a.ID)
		}
		if a.ID < 0 {
			return fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
		}
		t.addedByID[a.ID] = i
		if a.Normalized {
			// Matched in the normalised text, after the raw tokens, as in
			// Hugging Face (also when there is no normaliser).
			n := a
			n.Content = string(t.normalizeAt(a.Content, 0).text)
			if n.Content != "" {
				t.normAdded = append(t.normAdded, n)
			}
		} else {
			t.rawAdded = append(t.rawAdded, a)
		}
	}
	var err error
	lookup := func(name string) int {
		if err != nil {
			return -1
		}
		id, ok := t.TokenToID(name)
		if !ok {
			err = fmt.Errorf("special token %q is not in the vocabulary", name)
		}
		return id
	}
	t.unkID = lookup(t.unkToken)
	t.clsID = lookup(t.clsToken)
	t.sepID = lookup(t.sepToken)
	t.padID = lookup(t.padToken)
	t.maskID = lookup(t.maskToken)
	return err
}

// VocabSize returns the number of ids (the largest id plus one).
func (t *Tokenizer) VocabSize() int {
	n := len(t.vocab)
	for _, a := range t.added {
		if a.ID >= n {
			n = a.ID + 1
		}
	}
	return n
}

// IDToToken returns the token of id.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if i, ok := t.addedByID[id]; ok {
		return t.added[i].Content, true
	}
	if id < 0 || id >= len(t.vocab) || t.vocab[id] == "" {
		return "", false
	}
	return t.vocab[id], true
}

// TokenToID returns the id of token.
func (t *Tokenizer) TokenToID(token string) (int, bool) {
	for _, a := range t.added {
		if a.Content == token {
			return a.ID, true
		}
	}
	id, ok := t.ids[token]
	return id, ok
}

// MaskID returns the id of the mask token.
func (t *Tokenizer) MaskID() int { return t.maskID }

// PadID returns the id of the padding token.
func (t *Tokenizer) PadID() int { return t.padID }

// CLSID returns the id of the classification token added in front of every
// encoding.
func (t *Tokenizer) CLSID() int { return t.clsID }

// SEPID returns the id of the separator token added at the end of every
// encoding.
func (t *Tokenizer) SEPID() int { return t.sepID }

// UNKID returns the id of the unknown token.
func (t *Tokenizer) UNKID() int { return t.unkID }

// MaskToken returns the mask token's text, e.g. "[MASK]".
func (t *Tokenizer) MaskToken() string { return t.maskToken }

// ModelMaxLength returns the maximum sequence length recorded for the
// tokenizer (512 unless the loaded files say otherwise).
func (t *Tokenizer) ModelMaxLength() int { return t.modelMaxLength }

// Lowercase reports whether the tokenizer lowercases text.
func (t *Tokenizer) Lowercase() bool { return t.lowercase || (t.hasNorm && t.norm.Lowercase) }

// IsSpecial reports whether id is a special token.
func (t *Tokenizer) IsSpecial(id int) bool {
	i, ok := t.addedByID[id]
	return ok && t.added[i].Special
}

// Encode encodes text with [CLS] and [SEP] added. Special tokens written in
// the text, such as [MASK], are recognised wherever they occur. Offsets are
// byte offsets into text. Encode never panics on any input; invalid UTF-8 is
// treated as U+FFFD.
func (t *Tokenizer) Encode(text string) (*Encoding, error) {
	return t.encodeSafe(text, t.addSpecial, encodeOpts{})
}

// EncodeRaw encodes text like Encode but without adding [CLS] and [SEP].
func (t *Tokenizer) EncodeRaw(text string) (*Encoding, error) {
	return t.encodeSafe(text, false, encodeOpts{})
}

// WordPieces returns how text splits into tokens on its own, without the
// special tokens around it (Hugging Face's encode with
// add_special_tokens=False). Pieces.Unknown reports any word that maps to
// the unknown token. For byte-level BPE the first word of a text is
// tokenised as a word start without a space ("read", not "Ġread"); for an
// answer that fills a mask use AnswerPieces.
func (t *Tokenizer) WordPieces(text string) (Pieces, error) {
	enc, err := t.encodeSafe(text, false, encodeOpts{})
	if err != nil {
		return Pieces{}, err
	}
	p := Pieces{IDs: enc.IDs, Tokens: enc.Tokens}
	for _, id := range enc.IDs {
		if id == t.unkID {
			p.Unknown = true
		}
	}
	return p, nil
}

// AnswerPieces returns how each answer splits into tokens when it is
// written in place of the corresponding mask token of text: the i-th
// answer for the i-th mask token, in text order; the counts must agree.
// For WordPiece tokenizers the context does not matter and each is
// WordPieces(answer). For byte-level BPE a word after a space is a
// different token from the same word at the start of a text ("Ġread", not
// "read"), so an answer is encoded with a leading space when, in the text
// with the answers written in place of the masks, it follows a space in
// the same stretch of text between added tokens once normalised (the
// mask token's lstrip takes that space into the mask; a no-break space
// counts under NFKC, not under NFC; a space that an added token such as
// GPT-NeoX's whitespace runs takes does not), or when it starts such a
// stretch and the pre-tokeniser adds a prefix space. For Unigram with the
// Metaspace pre-tokeniser a word start carries the replacement character
// ("▁read"): an answer gets it when the character before its mask token is
// white space, or when the mask token starts a stretch of text that
// Metaspace prepends to (prepend_scheme "always", or "first" at the start
// of the text): precisely, when Metaspace puts its replacement character
// before the answer's first character in the text with the answers written
// in place of the masks, after normalisation (so that, for example, a
// space a Strip normaliser removes does not count). Otherwise the answer
// continues the word before it and is encoded without ("read").
func (t *Tokenizer) AnswerPieces(text string, answers []string) ([]Pieces, error) {
	bm, isBPE := t.model.(*bpeModel)
	um, isUnigram := t.model.(*unigramModel)
	if !isBPE && (!isUnigram || !um.meta.on) {
		out := make([]Pieces, len(answers))
		for i, a := range answers {
			p, err := t.WordPieces(a)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	}
	// Mask tokens as Encode finds them: raw tokens, then normalised ones
	// in the normalised stretches between, mapped back to the text.
	// lit and litEnd delimit the mask token's own text (without the
	// whitespace lstrip or rstrip take).
	type mask struct{ lit, litEnd int }
	var masks []mask
	found := func(id, lit, litEnd int) {
		if id == t.maskID {
			masks = append(masks, mask{lit: lit, litEnd: litEnd})
		}
	}
	for _, seg := range splitAdded(text, t.rawAdded) {
		if seg.id >= 0 {
			found(seg.id, seg.lit, seg.lit+len(t.added[t.addedByID[seg.id]].Content))
			continue
		}
		if len(t.normAdded) == 0 {
			continue
		}
		nt := t.normalizeAt(text[seg.start:seg.end], seg.start)
		for _, sub := range splitAdded(string(nt.text), t.normAdded) {
			if sub.id < 0 || sub.end <= sub.lit {
				continue
			}
			litEnd := sub.lit
			for _, a := range t.normAdded {
				if a.ID == sub.id {
					litEnd += len(a.Content)
					break
				}
			}
			found(sub.id, nt.align[sub.lit][0], nt.align[max(litEnd, sub.lit+1)-1][1])
		}
	}
	if len(masks) != len(answers) {
		return nil, fmt.Errorf("answer pieces: text has %d %s tokens but %d answers are given", len(masks), t.maskToken, len(answers))
	}
	// Write the answers in place of the masks: for Unigram, see which of
	// them Metaspace starts with its replacement character; for BPE, which
	// follow a space once normalised, in the same stretch of text.
	var filled strings.Builder
	var answerAt []int
	last := 0
	for i, m := range masks {
		filled.WriteString(text[last:m.lit])
		answerAt = append(answerAt, filled.Len())
		filled.WriteString(answers[i])
		last = m.litEnd
	}
	filled.WriteString(text[last:])
	var wordStart map[int]bool
	var spaceBefore []bool
	if isBPE {
		spaceBefore = t.spaceBefore(filled.String(), answerAt, bm.addPrefixSpace)
	}
	if isUnigram {
		var starts []int
		if _, err := t.encodeSafe(filled.String(), false, encodeOpts{wordStarts: &starts}); err != nil {
			return nil, fmt.Errorf("answer pieces: %w", err)
		}
		wordStart = make(map[int]bool, len(starts))
		for _, p := range starts {
			wordStart[p] = true
		}
	}
	out := make([]Pieces, len(answers))
	for i, a := range answers {
		opts := encodeOpts{noPrefixSpace: true}
		if isBPE {
			if spaceBefore[i] && !strings.HasPrefix(a, " ") {
				a = " " + a
			}
		} else if wordStart[answerAt[i]] {
			opts = encodeOpts{forcePrefix: true}
		}
		enc, err := t.encodeSafe(a, false, opts)
		if err != nil {
			return nil, err
		}
		out[i] = Pieces{IDs: enc.IDs, Tokens: enc.Tokens}
		for _, id := range enc.IDs {
			if id == t.unkID {
				out[i].Unknown = true
			}
		}
	}
	return out, nil
}

// spaceBefore reports, for each offset in at, whether the character there
// follows a space in the text as the byte-level pre-tokeniser sees it:
// after the added tokens are split off and the rest normalised (so that a
// space an added token such as GPT-NeoX's whitespace runs takes does not
// count, and one NFKC makes of a no-break space does); at the start of a
// stretch of text, whether the pre-tokeniser adds a prefix space.
func (t *Tokenizer) spaceBefore(text string, at []int, prefixSpace bool) []bool {
	out := make([]bool, len(at))
	for _, seg := range splitAdded(text, t.rawAdded) {
		if seg.id >= 0 {
			continue
		}
		nt := t.normalizeAt(text[seg.start:seg.end], seg.start)
		for _, sub := range splitAdded(string(nt.text), t.normAdded) {
			if sub.id >= 0 {
				continue
			}
			for i, p := range at {
				for k := sub.start; k < sub.end; k++ {
					if nt.align[k][0] < p {
						continue
					}
					if nt.align[k][0] == p {
						out[i] = k == sub.start && prefixSpace || k > sub.start && nt.text[k-1] == ' '
					}
					break
				}
			}
		}
	}
	return out
}

func (t *Tokenizer) encodeSafe(text string, addSpecial bool, opts encodeOpts) (enc *Encoding, err error) {
	defer func() {
		if r := recover(); r != nil {
			enc = nil
			if e, ok := r.(encodeError); ok {
				err = fmt.Errorf("encode %q: %w", truncate(text, 80), e.err)
				return
			}
			err = fmt.Errorf("encode %q: internal error: %v\n%s", truncate(text, 80), r, debug.Stack())
		}
	}()
	return t.encode(text, addSpecial, opts), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// encodeOpts are internal variations of encoding.
type encodeOpts struct {
	// noPrefixSpace turns the byte-level pre-tokeniser's add_prefix_space
	// and Metaspace's prepending off (for text that continues a word, see
	// AnswerPieces).
	noPrefixSpace bool
	// forcePrefix makes Metaspace prepend its replacement character
	// whatever its prepend scheme (for text that starts a word).
	forcePrefix bool
	// wordStarts, when set, collects the offsets in the original text of
	// the characters that Metaspace puts right after its replacement
	// character (see AnswerPieces).
	wordStarts *[]int
	// atTextStart is set by encode for a stretch of text that starts at
	// offset 0 of the original text (Metaspace's prepend_scheme "first").
	atTextStart bool
}

func (t *Tokenizer) encode(text string, addSpecial bool, opts encodeOpts) *Encoding {
	enc := &Encoding{}
	// push appends a token; tok is its text in the encoding: the vocabulary
	// entry for model tokens, and the matched text (with any whitespace
	// that lstrip or rstrip took) for added tokens, as in Hugging Face.
	push := func(id int, tok string, start, end int) {
		enc.IDs = append(enc.IDs, id)
		enc.Tokens = append(enc.Tokens, tok)
		enc.Offsets = append(enc.Offsets, [2]int{start, end})
		enc.Special = append(enc.Special, t.IsSpecial(id))
	}
	var pieces []piece
	for _, seg := range splitAdded(text, t.rawAdded) {
		if seg.id >= 0 {
			push(seg.id, text[seg.start:seg.end], seg.start, seg.end)
			continue
		}
		nt := t.normalizeAt(text[seg.start:seg.end], seg.start)
		for _, nseg := range splitAdded(string(nt.text), t.normAdded) {
			if nseg.id >= 0 {
				s, e := nt.originalRange(nseg.start, nseg.end)
				push(nseg.id, string(nt.text[nseg.start:nseg.end]), s, e)
				continue
			}
			o := opts
			o.atTextStart = nseg.start < len(nt.align) && nt.align[nseg.start][0] == 0
			var nStarts int
			if o.wordStarts != nil {
				nStarts = len(*o.wordStarts)
			}
			pieces = t.model.tokenize(t, nt.text, nseg.start, nseg.end, o, pieces[:0])
			if o.wordStarts != nil {
				for k := nStarts; k < len(*o.wordStarts); k++ {
					(*o.wordStarts)[k] = nt.align[(*o.wordStarts)[k]][0]
				}
			}
			for _, p := range pieces {
				s, e := nt.originalRange(p.start, p.end)
				tok := p.tok
				if tok == "" {
					tok, _ = t.IDToToken(p.id)
				}
				push(p.id, tok, s, e)
			}
		}
	}
	t.model.trim(enc, text)
	if addSpecial {
		cls, _ := t.IDToToken(t.clsID)
		sep, _ := t.IDToToken(t.sepID)
		enc.IDs = append(append([]int{t.clsID}, enc.IDs...), t.sepID)
		enc.Tokens = append(append([]string{cls}, enc.Tokens...), sep)
		enc.Offsets = append(append([][2]int{{0, 0}}, enc.Offsets...), [2]int{0, 0})
		enc.Special = append(append([]bool{t.IsSpecial(t.clsID)}, enc.Special...), t.IsSpecial(t.sepID))
	}
	return enc
}

// tokenize implements model: BertPreTokenizer, then WordPiece on each
// word.
func (wp *wordPieceModel) tokenize(t *Tokenizer, text []byte, start, end int, _ encodeOpts, dst []piece) []piece {
	for _, w := range preTokenize(text[start:end]) {
		ws := start + w.start
		n := len(dst)
		dst, _ = wp.wordPiece(t, string(text[ws:start+w.end]), dst)
		for k := n; k < len(dst); k++ {
			dst[k].start += ws
			dst[k].end += ws
		}
	}
	return dst
}

// trim implements model: WordPiece offsets need no post-processing.
func (wp *wordPieceModel) trim(*Encoding, string) {}

// decode implements model as Hugging Face's WordPiece decoder does:
// continuation pieces are glued to the previous piece, other tokens are
// separated by spaces, and (with cleanup) spaces before punctuation and
// contractions are removed.
func (wp *wordPieceModel) decode(tokens []string) string {
	var b strings.Builder
	for i, tok := range tokens {
		if i > 0 {
			if wp.prefix != "" && strings.HasPrefix(tok, wp.prefix) {
				tok = strings.Replace(tok, wp.prefix, "", 1)
			} else {
				tok = " " + tok
			}
		}
		if wp.cleanup {
			tok = cleanupTokenization(tok)
		}
		b.WriteString(tok)
	}
	return b.String()
}

// normalizeAt normalises s, which starts at offset base of the original
// text, with the tokenizer's normaliser (if any).
func (t *Tokenizer) normalizeAt(s string, base int) normalized {
	switch {
	case t.chain != nil:
		return t.chain.normalize(s, base)
	case t.hasNorm:
		return t.norm.normalize(s, base)
	}
	return identity(s, base)
}

// identity is the normalized form of s when the tokenizer has no normaliser.
func identity(s string, base int) normalized {
	n := normalized{text: []byte(s), align: make([][2]int, len(s)), base: base}
	for i, r := range s {
		size := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, size = utf8.DecodeRuneInString(s[i:])
		}
		for k := range size {
			n.align[i+k] = [2]int{base + i, base + i + size}
		}
	}
	return n
}

// segment is a byte range of text; id is the added token matched there, or
// -1 for ordinary text.
type segment struct {
	id         int
	start, end int
	lit        int // where the added token's text starts (after any lstrip whitespace)
}

// splitAdded finds the added tokens in s as Hugging Face does: leftmost
// longest non-overlapping matches, with the single_word, lstrip and rstrip
// rules applied, and returns matched and unmatched segments in order.
func splitAdded(s string, tokens []AddedToken) []segment {
	if len(tokens) == 0 || s == "" {
		return []segment{{id: -1, start: 0, end: len(s)}}
	}
	var out []segment
	startOffset := 0
	for i := 0; i < len(s); {
		best := -1
		for k, a := range tokens {
			if strings.HasPrefix(s[i:], a.Content) && (best < 0 || len(a.Content) > len(tokens[best].Content)) {
				best = k
			}
		}
		if best < 0 {
			i++
			continue
		}
		a := tokens[best]
		start, stop := i, i+len(a.Content)
		i = stop
		if a.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if a.LStrip {
			ns := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			start = max(ns, startOffset)
		}
		if a.RStrip {
			stop += len(s[stop:]) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			out = append(out, segment{id: -1, start: startOffset, end: start})
		}
		out = append(out, segment{id: a.ID, start: start, end: stop, lit: i - len(a.Content)})
		startOffset = stop
		i = max(i, stop)
	}
	if startOffset < len(s) {
		out = append(out, segment{id: -1, start: startOffset, end: len(s)})
	}
	return out
}

// isWordChar is the \w of Rust's regex crate, which Hugging Face uses for
// single_word added tokens: Alphabetic (letters, Nl and Other_Alphabetic),
// marks, decimal digits, connector punctuation and the joiners U+200C and
// U+200D.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.In(r, unicode.Nl, unicode.Other_Alphabetic, unicode.M, unicode.Nd, unicode.Pc) ||
		r == 0x200C || r == 0x200D
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isWordChar(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordChar(r)
}

// Decode turns ids back into text with the tokenizer's decoder: for
// WordPiece, continuation pieces are glued to the previous piece, other
// tokens are separated by spaces, and (when the decoder asks for it)
// spaces before punctuation and contractions are cleaned up; for
// byte-level BPE, the tokens' bytes are joined and read as UTF-8 (invalid
// sequences become U+FFFD); for Unigram, the decoder chain of its
// tokenizer.json runs (Metaspace turns "▁" into spaces, ByteFallback
// "<0xE4>" tokens into their bytes, …), or without one the tokens are
// joined with spaces. skipSpecial leaves special tokens out. An id outside
// the vocabulary is an error.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.IDToToken(id)
		if !ok {
			return "", fmt.Errorf("decode: id %d is not in the vocabulary (size %d)", id, t.VocabSize())
		}
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		tokens = append(tokens, tok)
	}
	s := t.model.decode(tokens)
	if t.cleanupSpaces {
		s = cleanupTokenization(s)
	}
	return s, nil
}

// cleanupTokenization removes the spaces Hugging Face's decoder cleanup
// removes, applying its replacements one after another.
func cleanupTokenization(s string) string {
	for _, r := range [...][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"},
		{" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}
