package acquire

import (
	"fmt"
	"math"
	"sort"
)

// Scored is an item ID with a scalar score; higher scores rank first.
type Scored struct {
	ID    string  `json:"id"`
	Score float64 `json:"score"`
}

// entry is a heap element: a score, the ID that breaks ties, and the
// candidate's index (or -1).
type entry struct {
	score float64
	id    string
	idx   int
}

// better reports whether a ranks before b: higher score, then smaller ID.
func better(a, b entry) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.id < b.id
}

// worstHeap is a bounded min-heap whose root is the worst kept entry. When
// pos is non-nil it tracks each ID's slot so that repeated IDs are merged.
type worstHeap struct {
	k   int
	h   []entry
	pos map[string]int
}

func (w *worstHeap) swap(i, j int) {
	w.h[i], w.h[j] = w.h[j], w.h[i]
	if w.pos != nil {
		w.pos[w.h[i].id] = i
		w.pos[w.h[j].id] = j
	}
}

func (w *worstHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !better(w.h[p], w.h[i]) {
			break
		}
		w.swap(i, p)
		i = p
	}
}

func (w *worstHeap) down(i int) {
	n := len(w.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		worst := l
		if r := l + 1; r < n && better(w.h[l], w.h[r]) {
			worst = r
		}
		if !better(w.h[i], w.h[worst]) {
			return
		}
		w.swap(i, worst)
		i = worst
	}
}

// push offers e; it is kept if it is among the k best seen so far. With
// ID tracking, an ID already kept keeps its better score.
func (w *worstHeap) push(e entry) {
	full := len(w.h) >= w.k
	if full && !better(e, w.h[0]) {
		return
	}
	if w.pos != nil {
		if i, ok := w.pos[e.id]; ok {
			if better(e, w.h[i]) {
				w.h[i] = e
				w.down(i)
			}
			return
		}
	}
	if !full {
		w.h = append(w.h, e)
		if w.pos != nil {
			w.pos[e.id] = len(w.h) - 1
		}
		w.up(len(w.h) - 1)
		return
	}
	if w.pos != nil {
		delete(w.pos, w.h[0].id)
		w.pos[e.id] = 0
	}
	w.h[0] = e
	w.down(0)
}

// sorted returns the kept entries best first.
func (w *worstHeap) sorted() []entry {
	out := make([]entry, len(w.h))
	copy(out, w.h)
	sort.Slice(out, func(i, j int) bool { return better(out[i], out[j]) })
	return out
}

// topEntries returns the k best of the n entries that get yields, best first.
func topEntries(n, k int, get func(i int) entry) []entry {
	if k > n {
		k = n
	}
	if k <= 0 {
		return []entry{}
	}
	w := worstHeap{k: k, h: make([]entry, 0, k)}
	for i := 0; i < n; i++ {
		w.push(get(i))
	}
	return w.sorted()
}

// TopK keeps the k best-scored IDs of a stream: each shard of a sharded
// scoring run keeps its top m with a TopK, and [Merge] combines the shards.
// Ties in score are broken by ID (ascending), so the result does not depend
// on the order of pushes. An ID pushed more than once counts once, with its
// highest score. A TopK is not safe for concurrent use.
type TopK struct {
	w worstHeap
}

// NewTopK returns an empty TopK keeping k items.
func NewTopK(k int) (*TopK, error) {
	if k <= 0 {
		return nil, fmt.Errorf("top-k size %d: must be positive", k)
	}
	return &TopK{w: worstHeap{k: k, pos: make(map[string]int, k)}}, nil
}

// Push offers an item. It fails, keeping nothing, on an empty ID or a NaN
// or infinite score.
func (t *TopK) Push(id string, score float64) error {
	if id == "" {
		return fmt.Errorf("top-k push: empty ID")
	}
	if math.IsNaN(score) || math.IsInf(score, 0) {
		return fmt.Errorf("top-k push %q: score is %v", id, score)
	}
	t.w.push(entry{score: score, id: id, idx: -1})
	return nil
}

// Len returns the number of items kept.
func (t *TopK) Len() int { return len(t.w.h) }

// Result returns the kept items, best first.
func (t *TopK) Result() []Scored {
	es := t.w.sorted()
	out := make([]Scored, len(es))
	for i, e := range es {
		out[i] = Scored{ID: e.id, Score: e.score}
	}
	return out
}

// Merge returns the global top k of several shards' results, best first,
// with ties broken by ID. Shards may overlap (a retried shard): an ID
// appearing more than once counts once, with its highest score. Each shard
// must have kept at least k items (or all of its items) for the result to be
// the exact global top k.
func Merge(k int, shards ...[]Scored) ([]Scored, error) {
	t, err := NewTopK(k)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	for s, shard := range shards {
		for i, it := range shard {
			if err := t.Push(it.ID, it.Score); err != nil {
				return nil, fmt.Errorf("merge shard %d item %d: %w", s, i, err)
			}
		}
	}
	return t.Result(), nil
}
