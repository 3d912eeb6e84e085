package dataset

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TextStats are the raw-text-specific counts of a build.
type TextStats struct {
	Lines        int `json:"lines"`
	TooShort     int `json:"too_short"`
	TooLong      int `json:"too_long"`
	Vocabulary   int `json:"vocabulary"`
	EligibleWord int `json:"eligible_words"`
}

// Sentence is a candidate sentence for masking.
type Sentence struct {
	Text  string
	Words []Word
}

// A Chooser picks the word of a sentence to mask. Implementations may be
// frequency-based (FrequencyChooser) or model-based (for example the word
// the current model is least sure of).
type Chooser interface {
	// Choose returns the index in s.Words of the word to mask, or -1 to
	// skip the sentence.
	Choose(ctx context.Context, s Sentence) (int, error)
}

// defaultStopwords is a short list of English function words that are never
// masked by FrequencyChooser.
var defaultStopwords = strings.Fields(`a about above after again against all am an and any are as at be
because been before being below between both but by can could did do does doing down during each
few for from further had has have having he her here hers herself him himself his how i if in into
is it its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up upon very was we were what when where which
while who whom why will with would you your yours yourself yourselves shall unto thee thou thy thine ye hath doth`)

// FrequencyOptions configure a FrequencyChooser.
type FrequencyOptions struct {
	// SkipTop skips the most frequent words of the corpus (0: default 100;
	// negative: none).
	SkipTop int
	// MinCount skips words seen fewer times in the corpus (default 3).
	MinCount int
	// MinLetters skips shorter words (default 3).
	MinLetters int
	// Stopwords are never masked (default a built-in English list).
	Stopwords []string
	// Seed varies which eligible word is chosen.
	Seed int64
}

// FrequencyChooser masks a content word in a frequency band: not a
// stopword, not among the SkipTop most frequent words, seen at least
// MinCount times, letters only. Among the eligible words of a sentence it
// picks one by a hash of the seed and the sentence, so choices are
// deterministic.
type FrequencyChooser struct {
	counts map[string]int
	top    map[string]bool
	stop   map[string]bool
	opts   FrequencyOptions
}

// NewFrequencyChooser returns a FrequencyChooser for a corpus with the given
// lower-case word counts (see CountWords).
func NewFrequencyChooser(counts map[string]int, opts FrequencyOptions) *FrequencyChooser {
	if opts.SkipTop == 0 {
		opts.SkipTop = 100
	}
	if opts.MinCount == 0 {
		opts.MinCount = 3
	}
	if opts.MinLetters == 0 {
		opts.MinLetters = 3
	}
	if opts.Stopwords == nil {
		opts.Stopwords = defaultStopwords
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	c := &FrequencyChooser{counts: counts, top: map[string]bool{}, stop: map[string]bool{}, opts: opts}
	for _, w := range words[:max(0, min(opts.SkipTop, len(words)))] {
		c.top[w] = true
	}
	for _, w := range opts.Stopwords {
		c.stop[strings.ToLower(w)] = true
	}
	return c
}

// Eligible reports whether the word may be masked.
func (c *FrequencyChooser) Eligible(word string) bool {
	lw := strings.ToLower(word)
	if utf8.RuneCountInString(lw) < c.opts.MinLetters || c.stop[lw] || c.top[lw] || c.counts[lw] < c.opts.MinCount {
		return false
	}
	for _, r := range lw {
		if !unicode.IsLetter(r) {
			return false
		}
	}
	return true
}

// Choose implements Chooser.
func (c *FrequencyChooser) Choose(_ context.Context, s Sentence) (int, error) {
	var eligible []int
	for i, w := range s.Words {
		if c.Eligible(w.Text) {
			eligible = append(eligible, i)
		}
	}
	if len(eligible) == 0 {
		return -1, nil
	}
	h := hash64(fmt.Sprint(c.opts.Seed), NormalizeText(s.Text))
	return eligible[h%uint64(len(eligible))], nil
}

// TextOptions configure BuildText and ScanSentences.
type TextOptions struct {
	// Open opens the corpus; BuildText reads it twice (word counts, then
	// items).
	Open func() (io.ReadCloser, error)
	// Name is the corpus name used in stats and meta.
	Name string
	// Out is the output folder.
	Out string
	// StripLineNumbers removes a leading number from every line (verse
	// numbers, line numbers).
	StripLineNumbers bool
	// MinWords and MaxWords bound the sentence length in words (defaults 5
	// and 50).
	MinWords, MaxWords int
	// Frequency configures the default chooser.
	Frequency FrequencyOptions
	// Chooser overrides the frequency chooser.
	Chooser Chooser
	Split   SplitOptions
}

func (o *TextOptions) defaults() {
	if o.MinWords == 0 {
		o.MinWords = 5
	}
	if o.MaxWords == 0 {
		o.MaxWords = 50
	}
}

// abbreviations do not end a sentence.
var abbreviations = map[string]bool{"mr": true, "mrs": true, "ms": true, "dr": true, "st": true, "vs": true,
	"etc": true, "e.g": true, "i.e": true, "jr": true, "sr": true, "prof": true, "gen": true, "rev": true, "no": true, "cf": true}

// ScanSentences streams the sentences of a text. Paragraphs end at blank
// lines; lines within a paragraph are joined; sentences end at '.', '!' or
// '?' (plus closing quotes or brackets) before white space and an
// upper-case letter, digit or opening quote, except after common
// abbreviations and single letters. Only one paragraph (at most 64 KiB of
// pending text) is held at a time. fn receives cleaned sentences.
func ScanSentences(ctx context.Context, r io.Reader, stripLineNumbers bool, fn func(sentence string) error) (lines int, err error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var para strings.Builder
	flush := func(final bool) error {
		sents, rest := splitSentences(para.String(), final)
		para.Reset()
		para.WriteString(rest)
		for _, s := range sents {
			if err := fn(s); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		line, rerr := br.ReadString('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return lines, fmt.Errorf("read line %d: %w", lines+1, rerr)
		}
		if line != "" {
			lines++
			if lines%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return lines, err
				}
			}
			if !utf8.ValidString(line) {
				line = strings.ToValidUTF8(line, " ")
			}
			t := strings.TrimSpace(line)
			if stripLineNumbers {
				t = strings.TrimSpace(strings.TrimLeftFunc(t, unicode.IsDigit))
			}
			if t == "" {
				if err := flush(true); err != nil {
					return lines, err
				}
			} else {
				para.WriteString(t)
				para.WriteByte(' ')
				if para.Len() > 64<<10 {
					if err := flush(false); err != nil {
						return lines, err
					}
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			return lines, flush(true)
		}
	}
}

// splitSentences splits text into sentences. Unless final, the last
// (possibly unfinished) sentence is returned as rest.
func splitSentences(text string, final bool) (sents []string, rest string) {
	start := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '.' && c != '!' && c != '?' {
			continue
		}
		j := i + 1
		for j < len(text) && strings.IndexByte(`"')]`, text[j]) >= 0 {
			j++
		}
		for j < len(text) && (strings.HasPrefix(text[j:], "’") || strings.HasPrefix(text[j:], "”")) {
			j += len("’")
		}
		if j >= len(text) || text[j] != ' ' {
			continue
		}
		k := j
		for k < len(text) && text[k] == ' ' {
			k++
		}
		if k >= len(text) {
			continue
		}
		next, _ := utf8.DecodeRuneInString(text[k:])
		if !unicode.IsUpper(next) && !unicode.IsDigit(next) && !strings.ContainsRune(`"'“‘(`, next) {
			continue
		}
		if c == '.' {
			ws := Words(text[start:i])
			if len(ws) > 0 {
				last := strings.ToLower(ws[len(ws)-1].Text)
				if abbreviations[last] || utf8.RuneCountInString(last) == 1 {
					continue
				}
			}
		}
		if s := CleanText(text[start:j]); s != "" {
			sents = append(sents, s)
		}
		start = j
	}
	if final {
		if s := CleanText(text[start:]); s != "" {
			sents = append(sents, s)
		}
		return sents, ""
	}
	return sents, text[start:]
}

// CountWords counts the lower-case words of the sentences of a text.
func CountWords(ctx context.Context, r io.Reader, stripLineNumbers bool) (map[string]int, error) {
	counts := map[string]int{}
	_, err := ScanSentences(ctx, r, stripLineNumbers, func(s string) error {
		for _, w := range Words(s) {
			counts[strings.ToLower(w.Text)]++
		}
		return nil
	})
	return counts, err
}

// textMeta is the meta object of raw-text items.
type textMeta struct {
	Source string `json:"source"`
	Word   string `json:"word"`
}

// BuildText turns a raw-text corpus into cloze items: it splits the text
// into sentences, keeps those of MinWords..MaxWords words, lets the chooser
// pick a word and masks every occurrence of that word (any case), the
// surface words being the gold answers. Sentences go to pool or eval by
// hash; pool-side sentences are also written to raw.txt.
func BuildText(ctx context.Context, opts TextOptions) (*BuildStats, error) {
	opts.defaults()
	if opts.Open == nil {
		return nil, errors.New("build text: no input")
	}
	chooser := opts.Chooser
	ts := &TextStats{}
	if chooser == nil {
		rc, err := opts.Open()
		if err != nil {
			return nil, fmt.Errorf("open corpus: %w", err)
		}
		counts, err := CountWords(ctx, rc, opts.StripLineNumbers)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("count words of %s: %w", opts.Name, err)
		}
		fc := NewFrequencyChooser(counts, opts.Frequency)
		ts.Vocabulary = len(counts)
		for w := range counts {
			if fc.Eligible(w) {
				ts.EligibleWord++
			}
		}
		chooser = fc
	}
	stats := &BuildStats{Source: "text:" + opts.Name, Text: ts}
	out, err := newOutputs(opts.Out, opts.Split, stats)
	if err != nil {
		return nil, err
	}
	rc, err := opts.Open()
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("open corpus: %w", err)
	}
	defer rc.Close()
	lines, err := ScanSentences(ctx, rc, opts.StripLineNumbers, func(s string) error {
		stats.Sentences++
		words := Words(s)
		switch {
		case len(words) < opts.MinWords:
			ts.TooShort++
			return nil
		case len(words) > opts.MaxWords:
			ts.TooLong++
			return nil
		}
		i, err := chooser.Choose(ctx, Sentence{Text: s, Words: words})
		if err != nil {
			return fmt.Errorf("choose a word: %w", err)
		}
		if i < 0 || i >= len(words) {
			stats.NoMask++
			return out.addRaw(s)
		}
		target := strings.ToLower(words[i].Text)
		var idx []int
		for j, w := range words {
			if strings.ToLower(w.Text) == target {
				idx = append(idx, j)
			}
		}
		text, gold := maskWords(s, words, idx)
		_, err = out.add(s, text, gold, textMeta{Source: opts.Name, Word: target}, "")
		return err
	})
	ts.Lines = lines
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("build cloze items from %s: %w", opts.Name, err)
	}
	if err := out.commit(); err != nil {
		return nil, err
	}
	return stats, nil
}
