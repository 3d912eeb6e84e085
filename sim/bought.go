package sim

import (
	"sort"
	"strings"
)

// Bought describes the items a strategy chose in its labelled rounds (the
// initial set, shared by every strategy of a seed, is left out): what the
// labels were spent on.
type Bought struct {
	// Items is the number of items.
	Items int `json:"items"`
	// ContextWords is the mean number of words per item besides its
	// blanks (white-space separated, a word holding [MASK] not counted).
	ContextWords float64 `json:"context_words"`
	// MultiPiece is the share of the items' gold answers that the model's
	// tokenizer splits into several tokens at their masks (Model.AnswerPieces).
	MultiPiece float64 `json:"multi_piece"`
	// Sources is the share of the items per pool source (Item.Source; ""
	// for items without one).
	Sources map[string]float64 `json:"sources"`
	// FreqRank is the mean frequency rank of the items' gold answers among
	// all the pool's gold answers (FreqRanks: 1 is the most frequent
	// answer, so higher means rarer answers).
	FreqRank float64 `json:"freq_rank"`
}

// FreqRanks ranks the gold answers of the pool by frequency: the rank of a
// word (lower-cased) is 1 + the number of distinct words that are gold
// answers more often, so equally frequent words share a rank.
func FreqRanks(gold map[string][]string) map[string]int {
	count := map[string]int{}
	for _, g := range gold {
		for _, w := range g {
			count[strings.ToLower(w)]++
		}
	}
	freqs := make([]int, 0, len(count))
	for _, c := range count {
		freqs = append(freqs, c)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(freqs)))
	ranks := make(map[string]int, len(count))
	for w, c := range count {
		// The number of words with a higher count is the index of the
		// first count ≤ c in the descending list.
		ranks[w] = 1 + sort.Search(len(freqs), func(i int) bool { return freqs[i] <= c })
	}
	return ranks
}

// contextWords counts the words of text that are not blanks.
func contextWords(text string) int {
	n := 0
	for _, f := range strings.Fields(text) {
		if !strings.Contains(f, "[MASK]") {
			n++
		}
	}
	return n
}

// describeBought computes the Bought of items; pieces returns the number
// of tokens of each answer at its mask of a text (Model.AnswerPieces).
func describeBought(items []Item, gold map[string][]string, ranks map[string]int, pieces func(text string, answers []string) []int) Bought {
	b := Bought{Items: len(items), Sources: map[string]float64{}}
	if len(items) == 0 {
		return b
	}
	var words, answers, multi, rankSum, ranked float64
	for _, it := range items {
		words += float64(contextWords(it.Text))
		b.Sources[it.Source]++
		var n []int
		if pieces != nil {
			n = pieces(it.Text, gold[it.ID])
		}
		for j, g := range gold[it.ID] {
			answers++
			if j < len(n) && n[j] > 1 {
				multi++
			}
			if r, ok := ranks[strings.ToLower(g)]; ok {
				rankSum += float64(r)
				ranked++
			}
		}
	}
	n := float64(len(items))
	b.ContextWords = words / n
	for s := range b.Sources {
		b.Sources[s] /= n
	}
	if answers > 0 {
		b.MultiPiece = multi / answers
	}
	if ranked > 0 {
		b.FreqRank = rankSum / ranked
	}
	return b
}

// meanBought averages the Bought of several runs (each run weighs the
// same).
func meanBought(bs []Bought) Bought {
	out := Bought{Sources: map[string]float64{}}
	if len(bs) == 0 {
		return out
	}
	n := float64(len(bs))
	var items float64
	for _, b := range bs {
		items += float64(b.Items)
		out.ContextWords += b.ContextWords / n
		out.MultiPiece += b.MultiPiece / n
		out.FreqRank += b.FreqRank / n
		for s, v := range b.Sources {
			out.Sources[s] += v / n
		}
	}
	out.Items = int(items/n + 0.5)
	return out
}
