package dataset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// lexNames are WordNet 3.0's lexicographer file names by number, as listed
// in lexnames(5WN). Debian's wordnet-base does not ship the lexnames file;
// when a folder has one, LoadLexNames reads it instead.
var lexNames = [...]string{
	"adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
	"noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
	"noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
	"noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
	"noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
	"verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
	"verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
	"verb.stative", "verb.weather", "adj.ppl",
}

// supersenseWords maps each lexicographer class used by BuildSupersense to
// its verbaliser: the answer word of the prompt "… <lemma> is a kind of
// [MASK]". Every word is one piece of the shipped model's vocabulary (a
// test checks it). A word may serve one noun and one verb class ("state",
// "feeling", "communication", "possession"): the prompt's "to" tells them
// apart. noun.Tops (a few dozen top-level synsets of mixed kinds) and the
// adjective and adverb files (grouped by syntax, not meaning: adj.all holds
// 80% of adjectives) have no verbaliser.
var supersenseWords = map[string]string{
	"noun.act":           "act",
	"noun.animal":        "animal",
	"noun.artifact":      "artifact",
	"noun.attribute":     "quality",
	"noun.body":          "body",
	"noun.cognition":     "knowledge",
	"noun.communication": "communication",
	"noun.event":         "event",
	"noun.feeling":       "feeling",
	"noun.food":          "food",
	"noun.group":         "group",
	"noun.location":      "place",
	"noun.motive":        "goal",
	"noun.object":        "object",
	"noun.person":        "person",
	"noun.phenomenon":    "phenomenon",
	"noun.plant":         "plant",
	"noun.possession":    "possession",
	"noun.process":       "process",
	"noun.quantity":      "quantity",
	"noun.relation":      "relation",
	"noun.shape":         "shape",
	"noun.state":         "state",
	"noun.substance":     "substance",
	"noun.time":          "time",
	"verb.body":          "care",
	"verb.change":        "change",
	"verb.cognition":     "thinking",
	"verb.communication": "communication",
	"verb.competition":   "competition",
	"verb.consumption":   "eating",
	"verb.contact":       "contact",
	"verb.creation":      "creation",
	"verb.emotion":       "feeling",
	"verb.motion":        "motion",
	"verb.perception":    "perception",
	"verb.possession":    "possession",
	"verb.social":        "interaction",
	"verb.stative":       "state",
	"verb.weather":       "weather",
}

// SupersenseVerbaliser returns the answer word of a lexicographer class
// ("noun.animal" → "animal") and whether the class is used.
func SupersenseVerbaliser(lexName string) (string, bool) {
	w, ok := supersenseWords[lexName]
	return w, ok
}

// SupersenseAnswers returns the closed answer set of BuildSupersense: the
// distinct verbaliser words, sorted.
func SupersenseAnswers() []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range supersenseWords {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// LoadLexNames returns the lexicographer file names by number: from the
// file lexnames in dir when there is one (lines "NN<tab>name<tab>category"),
// else WordNet 3.0's list.
func LoadLexNames(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "lexnames"))
	if errors.Is(err, os.ErrNotExist) {
		return lexNames[:], nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lexnames: %w", err)
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || len(f) < 2 || n < 0 || n > 999 {
			return nil, fmt.Errorf("lexnames:%d: want \"NN name category\", got %q", i+1, line)
		}
		for len(out) <= n {
			out = append(out, "")
		}
		out[n] = f[1]
	}
	return out, nil
}

// SupersenseStats are the supersense-specific counts of a build.
type SupersenseStats struct {
	// Synsets counts the noun and verb synsets read, Examples their
	// example sentences.
	Synsets  int `json:"synsets"`
	Examples int `json:"examples"`
	// NoClass counts examples of synsets whose class has no verbaliser
	// (noun.Tops).
	NoClass int `json:"no_class"`
	// LemmaNotFound counts items whose example holds none of the synset's
	// lemmas (the prompt then names the first lemma).
	LemmaNotFound int `json:"lemma_not_found"`
	// SharedWithEval counts pool-side examples dropped because the same
	// sentence is an example of an eval-side synset.
	SharedWithEval int `json:"shared_with_eval"`
	// PoolSynsets and EvalSynsets count the synsets with at least one item
	// on each side.
	PoolSynsets int            `json:"pool_synsets"`
	EvalSynsets int            `json:"eval_synsets"`
	ItemsByPOS  map[string]int `json:"items_by_pos"`
	// PoolByClass and EvalByClass count items by lexicographer class.
	PoolByClass map[string]int `json:"pool_by_class"`
	EvalByClass map[string]int `json:"eval_by_class"`
	// Verbalisers maps each class to its answer word.
	Verbalisers map[string]string `json:"verbalisers"`
}

// SupersenseOptions configure BuildSupersense.
type SupersenseOptions struct {
	// Dir holds data.noun, data.verb, the *.exc files and optionally
	// lexnames (default DefaultWordNetDir).
	Dir string
	// Out is the output folder.
	Out string
	// Split: EvalFraction is the share of synsets (by hash of the seed
	// and the synset id) in the eval split; MinContext applies to the
	// example sentence with the lemma left out. MaxMasks is not used (an
	// item has one blank).
	Split SplitOptions
}

// supersenseMeta is the meta object of supersense items.
type supersenseMeta struct {
	Source string `json:"source"`
	Synset string `json:"synset"`
	POS    string `json:"pos"`
	Lemma  string `json:"lemma"`
	Class  string `json:"class"`
}

// SupersensePrompt makes the item text for one example sentence: the
// example (with a full stop added when it has no final punctuation), then
// "<lemma> is a kind of [MASK]" for nouns or "to <lemma> is a kind of
// [MASK]" for verbs. The prompt has no final full stop: WordNet's glosses
// are full of "e.g.", so a model pretrained on them fills "[MASK]." with
// "e" or "g" (measured: the shipped model's top-5 on the eval set is 0.00%
// with the full stop, 1.68% without).
func SupersensePrompt(example, lemma, pos string) string {
	ex := CleanText(example)
	if ex != "" && !strings.ContainsAny(ex[len(ex)-1:], ".!?") {
		ex += "."
	}
	if pos == "verb" {
		lemma = "to " + lemma
	}
	return strings.TrimSpace(ex + " " + lemma + " is a kind of " + MaskToken)
}

// SynsetInEval reports whether the synset (ss_type letter and offset, as
// "n02084071") belongs to the eval split.
func SynsetInEval(synset string, evalFraction float64, seed int64) bool {
	if evalFraction <= 0 {
		return false
	}
	if evalFraction >= 1 {
		return true
	}
	h := hash64(fmt.Sprint(seed), "synset", synset)
	return float64(h>>11)/(1<<53) < evalFraction
}

// supersenseSynset is a parsed synset with its class and split.
type supersenseSynset struct {
	Synset
	pos, class, answer string
	eval               bool
}

// BuildSupersense turns WordNet's noun and verb example sentences into
// prompt-based classification items: "<example> <lemma> is a kind of
// [MASK]" whose answer is the verbaliser of the synset's lexicographer
// class (SupersenseVerbaliser), one item per example. Synsets go to pool
// or eval by hash (SynsetInEval), so no synset is on both sides; a
// pool-side example that is also an eval-side synset's example is dropped.
// Examples with fewer than MinContext context words besides the lemma are
// dropped. raw.txt holds the definitions and examples of the pool-side
// synsets, without any text of an eval-side synset. The output is
// deterministic for a given seed.
func BuildSupersense(ctx context.Context, opts SupersenseOptions) (*BuildStats, error) {
	if opts.Dir == "" {
		opts.Dir = DefaultWordNetDir
	}
	exc, err := LoadExceptions(opts.Dir)
	if err != nil {
		return nil, err
	}
	names, err := LoadLexNames(opts.Dir)
	if err != nil {
		return nil, err
	}
	morph := NewMorphology(exc)
	ss := &SupersenseStats{ItemsByPOS: map[string]int{}, PoolByClass: map[string]int{}, EvalByClass: map[string]int{}, Verbalisers: map[string]string{}}
	for c, w := range supersenseWords {
		ss.Verbalisers[c] = w
	}
	frac := opts.Split.fraction()
	var synsets []supersenseSynset
	for _, wf := range wordNetFiles[:2] { // data.noun, data.verb
		path := filepath.Join(opts.Dir, wf.file)
		err := readSynsets(ctx, path, func(s Synset) error {
			if s.LexFile < 0 || s.LexFile >= len(names) || names[s.LexFile] == "" {
				return fmt.Errorf("lex_filenum %d is not in the lexicographer file list", s.LexFile)
			}
			class := names[s.LexFile]
			ss.Synsets++
			ss.Examples += len(s.Examples)
			ans, ok := supersenseWords[class]
			if !ok {
				ss.NoClass += len(s.Examples)
				return nil
			}
			id := s.Type + s.Offset
			synsets = append(synsets, supersenseSynset{Synset: s, pos: wf.pos, class: class, answer: ans, eval: SynsetInEval(id, frac, opts.Split.Seed)})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Every text of an eval-side synset stays out of the pool and the raw
	// text.
	evalText := map[uint64]struct{}{}
	for _, s := range synsets {
		if !s.eval {
			continue
		}
		evalText[hash64(NormalizeText(s.Definition))] = struct{}{}
		for _, ex := range s.Examples {
			evalText[hash64(NormalizeText(ex))] = struct{}{}
		}
	}
	isEvalText := func(line string) bool {
		_, ok := evalText[hash64(NormalizeText(line))]
		return ok
	}
	stats := &BuildStats{Source: "wordnet-supersense:" + opts.Dir, Supersense: ss}
	out, err := newOutputs(opts.Out, opts.Split, stats)
	if err != nil {
		return nil, err
	}
	out.rawEval = isEvalText
	out.noPoolRaw = true
	poolSyn, evalSyn := map[string]bool{}, map[string]bool{}
	for i, s := range synsets {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				out.abort()
				return nil, err
			}
		}
		id := s.Type + s.Offset
		for _, ex := range s.Examples {
			stats.Sentences++
			if !s.eval && isEvalText(ex) {
				ss.SharedWithEval++
				continue
			}
			lemma, masked := findSynsetLemma(ex, s.Lemmas, morph)
			if lemma < 0 {
				lemma = 0
				ss.LemmaNotFound++
			}
			text := SupersensePrompt(ex, s.Lemmas[lemma], s.pos)
			ok, err := out.addTo(s.eval, text, text, []string{s.answer},
				supersenseMeta{Source: "supersense", Synset: id, POS: s.pos, Lemma: s.Lemmas[lemma], Class: s.class}, "", ContextWords(masked))
			if err != nil {
				out.abort()
				return nil, err
			}
			if !ok {
				continue
			}
			ss.ItemsByPOS[s.pos]++
			if s.eval {
				ss.EvalByClass[s.class]++
				evalSyn[id] = true
			} else {
				ss.PoolByClass[s.class]++
				poolSyn[id] = true
			}
		}
		if err := out.addRaw(s.Definition); err != nil {
			out.abort()
			return nil, err
		}
		for _, ex := range s.Examples {
			if err := out.addRaw(ex); err != nil {
				out.abort()
				return nil, err
			}
		}
	}
	ss.PoolSynsets, ss.EvalSynsets = len(poolSyn), len(evalSyn)
	if err := out.commit(); err != nil {
		return nil, err
	}
	return stats, nil
}

// findSynsetLemma returns the index of the first of lemmas found in the
// example (multiword lemmas first, as BuildWordNet) and the example with
// that lemma's occurrences masked; -1 and the example itself when none is
// found.
func findSynsetLemma(example string, lemmas []string, morph *Morphology) (int, string) {
	words := Words(example)
	parts := make([][]string, len(lemmas))
	order := make([]int, len(lemmas))
	for i, l := range lemmas {
		parts[i] = strings.Fields(l)
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(parts[order[a]]) > len(parts[order[b]]) })
	for _, li := range order {
		var idx []int
		for _, occ := range morph.findLemma(words, parts[li]) {
			idx = append(idx, occ...)
		}
		if len(idx) > 0 {
			text, _ := maskWords(example, words, idx)
			return li, text
		}
	}
	return -1, example
}
