package activities

import (
	"github.com/clozeloop/clozeloop/internal/topn"
	"github.com/clozeloop/clozeloop/workflows"
)

// TopCollector keeps, per strategy, the m highest-scored items offered to
// it (ties by item id, then by the order they were offered), so that a
// shard's best candidates are known without holding the whole shard in
// memory. Its result equals sorting every offered item by score and
// keeping the first m. A TopCollector is not safe for concurrent use.
type TopCollector struct {
	m     int
	skip  func(itemID string) bool
	seq   int
	heaps map[string]*topn.Keeper[rankedCand]
	order []string
}

// NewTopCollector returns a collector keeping m candidates for each of
// strategies; items for which skip (may be nil) reports true are ignored.
func NewTopCollector(strategies []string, m int, skip func(itemID string) bool) *TopCollector {
	c := &TopCollector{m: m, skip: skip, heaps: make(map[string]*topn.Keeper[rankedCand], len(strategies))}
	for _, s := range strategies {
		if _, dup := c.heaps[s]; dup {
			continue
		}
		c.heaps[s] = topn.New(m, rankedCand.better)
		c.order = append(c.order, s)
	}
	return c
}

// Add offers it for every strategy it has a score for.
func (c *TopCollector) Add(it ScoredItem) {
	c.seq++
	if c.m <= 0 || (c.skip != nil && c.skip(it.ItemID)) {
		return
	}
	for _, s := range c.order {
		score, ok := it.Scores[s]
		if !ok {
			continue
		}
		h := c.heaps[s]
		e := rankedCand{score: score, seq: c.seq, c: workflows.Candidate{ItemID: it.ItemID, Text: it.Text, Score: score}}
		if !h.Admits(e) {
			continue
		}
		e.c.Suggestions = workflows.ClipSuggestions(it.Suggestions)
		h.Push(e)
	}
}

// Top returns the kept candidates per strategy, best first. Every strategy
// asked for has an entry (nil when no item had a score for it).
func (c *TopCollector) Top() map[string][]workflows.Candidate {
	top := make(map[string][]workflows.Candidate, len(c.order))
	for _, s := range c.order {
		var cands []workflows.Candidate
		for _, e := range c.heaps[s].Sorted() {
			cands = append(cands, e.c)
		}
		top[s] = cands
	}
	return top
}

// rankedCand is a candidate with its rank keys.
type rankedCand struct {
	score float64
	seq   int
	c     workflows.Candidate
}

// better reports whether a ranks before b: higher score, then smaller item
// id, then offered earlier.
func (a rankedCand) better(b rankedCand) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if a.c.ItemID != b.c.ItemID {
		return a.c.ItemID < b.c.ItemID
	}
	return a.seq < b.seq
}
