package dataset

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultWordNetDir is where Debian's wordnet-base installs the database.
const DefaultWordNetDir = "/usr/share/wordnet"

// wordNetFiles lists the data files read, in order, with their exception
// lists and part of speech.
var wordNetFiles = []struct{ file, exc, pos string }{
	{"data.noun", "noun.exc", "noun"},
	{"data.verb", "verb.exc", "verb"},
	{"data.adj", "adj.exc", "adj"},
	{"data.adv", "adv.exc", "adv"},
}

// Synset is one parsed line of a WordNet data.* file.
type Synset struct {
	// Offset is the byte offset of the line in its file (8 digits).
	Offset string
	// LexFile is the lexicographer file number.
	LexFile int
	// Type is the synset type: n, v, a, s (adjective satellite) or r.
	Type string
	// Lemmas are the synset's words, lower case, underscores replaced by
	// spaces and adjective markers such as "(a)" removed.
	Lemmas []string
	// Pointers is the number of pointers to other synsets.
	Pointers int
	// Definition is the gloss without its examples.
	Definition string
	// Examples are the gloss's quoted example sentences.
	Examples []string
}

// ParseSynset parses one line of a WordNet data file: offset, lex_filenum,
// ss_type, w_cnt (2 hex digits), w_cnt × (word, lex_id), p_cnt (3 digits),
// p_cnt × (symbol, offset, pos, source/target), for verbs f_cnt × (+,
// f_num, w_num), then "| gloss".
func ParseSynset(line string) (Synset, error) {
	head, gloss, ok := strings.Cut(line, " | ")
	if !ok {
		if h, found := strings.CutSuffix(strings.TrimRight(line, " "), " |"); found {
			head, ok = h, true
		}
	}
	if !ok {
		return Synset{}, errors.New("no gloss separator \" | \"")
	}
	f := strings.Fields(head)
	if len(f) < 6 {
		return Synset{}, fmt.Errorf("only %d fields before the gloss", len(f))
	}
	var s Synset
	s.Offset = f[0]
	if _, err := strconv.ParseUint(f[0], 10, 64); err != nil {
		return Synset{}, fmt.Errorf("bad synset offset %q", f[0])
	}
	lex, err := strconv.Atoi(f[1])
	if err != nil {
		return Synset{}, fmt.Errorf("bad lex_filenum %q", f[1])
	}
	s.LexFile = lex
	s.Type = f[2]
	if !strings.Contains("nvasr", s.Type) || len(s.Type) != 1 {
		return Synset{}, fmt.Errorf("bad ss_type %q", f[2])
	}
	wc, err := strconv.ParseUint(f[3], 16, 16)
	if err != nil || wc == 0 {
		return Synset{}, fmt.Errorf("bad w_cnt %q", f[3])
	}
	i := 4
	if len(f) < i+2*int(wc)+1 {
		return Synset{}, fmt.Errorf("w_cnt %d but only %d fields", wc, len(f))
	}
	for j := 0; j < int(wc); j++ {
		w := f[i]
		if k := strings.IndexByte(w, '('); k > 0 && strings.HasSuffix(w, ")") {
			w = w[:k] // adjective position marker: (a), (p), (ip)
		}
		s.Lemmas = append(s.Lemmas, strings.ToLower(strings.ReplaceAll(w, "_", " ")))
		i += 2 // word, lex_id
	}
	pc, err := strconv.Atoi(f[i])
	if err != nil {
		return Synset{}, fmt.Errorf("bad p_cnt %q", f[i])
	}
	s.Pointers = pc
	i += 1 + 4*pc
	if i > len(f) {
		return Synset{}, fmt.Errorf("p_cnt %d but only %d fields", pc, len(f))
	}
	if s.Type == "v" && i < len(f) {
		fc, err := strconv.Atoi(f[i])
		if err != nil {
			return Synset{}, fmt.Errorf("bad f_cnt %q", f[i])
		}
		i += 1 + 3*fc
	}
	if i != len(f) {
		return Synset{}, fmt.Errorf("%d unexpected fields before the gloss", len(f)-i)
	}
	s.Definition, s.Examples = splitGloss(gloss)
	return s, nil
}

// splitGloss separates a gloss into its definition and its quoted example
// sentences.
func splitGloss(g string) (string, []string) {
	g = strings.TrimSpace(g)
	def := g
	if k := strings.IndexByte(g, '"'); k >= 0 {
		def = g[:k]
	}
	def = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(def), ";"))
	var ex []string
	rest := g
	for {
		a := strings.IndexByte(rest, '"')
		if a < 0 {
			break
		}
		b := strings.IndexByte(rest[a+1:], '"')
		if b < 0 {
			break
		}
		if e := CleanText(rest[a+1 : a+1+b]); e != "" {
			ex = append(ex, e)
		}
		rest = rest[a+1+b+1:]
	}
	return def, ex
}

// WordNetStats are the WordNet-specific counts of a build.
type WordNetStats struct {
	Synsets             int            `json:"synsets"`
	SynsetsWithExamples int            `json:"synsets_with_examples"`
	Examples            int            `json:"examples"`
	ItemsByPOS          map[string]int `json:"items_by_pos"`
	MultiwordItems      int            `json:"multiword_items"`
}

// WordNetOptions configure BuildWordNet.
type WordNetOptions struct {
	// Dir holds data.noun, data.verb, data.adj, data.adv and the *.exc
	// files (default DefaultWordNetDir).
	Dir string
	// Out is the output folder.
	Out   string
	Split SplitOptions
}

// wordNetMeta is the meta object of WordNet items.
type wordNetMeta struct {
	Source string `json:"source"`
	Synset string `json:"synset"`
	POS    string `json:"pos"`
	Lemma  string `json:"lemma"`
}

// LoadExceptions reads WordNet *.exc files (lines of "inflected base...")
// from dir into one map. Missing files are skipped.
func LoadExceptions(dir string) (map[string][]string, error) {
	exc := map[string][]string{}
	for _, wf := range wordNetFiles {
		f, err := os.Open(filepath.Join(dir, wf.exc))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open exception list: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 2 {
				continue
			}
			for _, b := range fs[1:] {
				exc[fs[0]] = append(exc[fs[0]], strings.ReplaceAll(b, "_", " "))
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Name(), err)
		}
	}
	return exc, nil
}

// BuildWordNet turns WordNet's example sentences into cloze items: in each
// example, every occurrence of the first of the synset's lemmas that occurs
// (multiword lemmas first, then in WordNet's order; whole words, any case,
// inflections allowed) is replaced by one [MASK] per word, the surface
// words being the gold answers. Definitions and examples also go to the
// raw text. The output is deterministic for a given seed.
func BuildWordNet(ctx context.Context, opts WordNetOptions) (*BuildStats, error) {
	if opts.Dir == "" {
		opts.Dir = DefaultWordNetDir
	}
	exc, err := LoadExceptions(opts.Dir)
	if err != nil {
		return nil, err
	}
	morph := NewMorphology(exc)
	stats := &BuildStats{Source: "wordnet:" + opts.Dir, WordNet: &WordNetStats{ItemsByPOS: map[string]int{}}}
	out, err := newOutputs(opts.Out, opts.Split, stats)
	if err != nil {
		return nil, err
	}
	for _, wf := range wordNetFiles {
		if err := buildWordNetFile(ctx, filepath.Join(opts.Dir, wf.file), wf.pos, morph, out); err != nil {
			out.abort()
			return nil, err
		}
	}
	if err := out.commit(); err != nil {
		return nil, err
	}
	return stats, nil
}

// readSynsets calls fn with every synset of a WordNet data file, skipping
// the licence header. A malformed line fails with its file and line.
func readSynsets(ctx context.Context, path string, fn func(Synset) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open WordNet data (install Debian's wordnet-base): %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if line == "" && errors.Is(err, io.EOF) {
			return nil
		}
		if lineNo%4096 == 0 {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
		}
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, " ") && strings.TrimSpace(line) != "" {
			syn, perr := ParseSynset(line)
			if perr != nil {
				return fmt.Errorf("%s:%d: %w", path, lineNo, perr)
			}
			if ferr := fn(syn); ferr != nil {
				return fmt.Errorf("%s:%d: %w", path, lineNo, ferr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

func buildWordNetFile(ctx context.Context, path, pos string, morph *Morphology, out *outputs) error {
	st := out.stats.WordNet
	return readSynsets(ctx, path, func(syn Synset) error {
		st.Synsets++
		if len(syn.Examples) > 0 {
			st.SynsetsWithExamples++
		}
		return addSynset(syn, pos, morph, out)
	})
}

func addSynset(syn Synset, pos string, morph *Morphology, out *outputs) error {
	st := out.stats.WordNet
	lemmas := make([][]string, len(syn.Lemmas))
	order := make([]int, len(syn.Lemmas))
	for i, l := range syn.Lemmas {
		lemmas[i] = strings.Fields(l)
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(lemmas[order[a]]) > len(lemmas[order[b]]) })
	for _, ex := range syn.Examples {
		st.Examples++
		out.stats.Sentences++
		words := Words(ex)
		var idx []int
		lemma := -1
		for _, li := range order {
			for _, occ := range morph.findLemma(words, lemmas[li]) {
				idx = append(idx, occ...)
			}
			if len(idx) > 0 {
				lemma = li
				break
			}
		}
		if lemma < 0 {
			out.stats.NoMask++
			continue
		}
		text, gold := maskWords(ex, words, idx)
		ok, err := out.add(ex, text, gold, wordNetMeta{Source: "wordnet", Synset: syn.Type + syn.Offset, POS: pos, Lemma: syn.Lemmas[lemma]}, "")
		if err != nil {
			return err
		}
		if ok {
			st.ItemsByPOS[pos]++
			if len(lemmas[lemma]) > 1 {
				st.MultiwordItems++
			}
		}
	}
	if err := out.addRaw(syn.Definition); err != nil {
		return err
	}
	for _, ex := range syn.Examples {
		if err := out.addRaw(ex); err != nil {
			return err
		}
	}
	return nil
}
