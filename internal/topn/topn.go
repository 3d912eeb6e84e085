// Package topn keeps the n best of a stream of values in O(n) memory.
package topn

import (
	"container/heap"
	"sort"
)

// Keeper holds the limit best values pushed to it, by a strict order better
// (better(a, b) reports whether a ranks before b; it must break ties so
// that the result does not depend on push order where that matters). It is
// a min-heap whose root is the worst value kept. A Keeper is not safe for
// concurrent use.
type Keeper[T any] struct {
	limit  int
	better func(a, b T) bool
	h      []T
}

// New returns a Keeper of the limit best values by better. A limit of zero
// or less keeps nothing.
func New[T any](limit int, better func(a, b T) bool) *Keeper[T] {
	return &Keeper[T]{limit: limit, better: better}
}

// Limit returns the number of values the Keeper holds at most.
func (k *Keeper[T]) Limit() int { return k.limit }

// Len returns the number of values kept.
func (k *Keeper[T]) Len() int { return len(k.h) }

// Admits reports whether Push(v) would keep v: the Keeper is not full, or
// v ranks before the worst value kept.
func (k *Keeper[T]) Admits(v T) bool {
	if k.limit <= 0 {
		return false
	}
	return len(k.h) < k.limit || k.better(v, k.h[0])
}

// Push keeps v when Admits(v), dropping the worst value kept when full.
func (k *Keeper[T]) Push(v T) {
	switch {
	case !k.Admits(v):
	case len(k.h) < k.limit:
		heap.Push((*minHeap[T])(k), v)
	default:
		k.h[0] = v
		heap.Fix((*minHeap[T])(k), 0)
	}
}

// Items returns a copy of the values kept, in no particular order.
func (k *Keeper[T]) Items() []T { return append([]T(nil), k.h...) }

// Sorted returns a copy of the values kept, best first.
func (k *Keeper[T]) Sorted() []T {
	s := k.Items()
	sort.Slice(s, func(i, j int) bool { return k.better(s[i], s[j]) })
	return s
}

// minHeap adapts a Keeper to container/heap: the root is the worst value.
type minHeap[T any] Keeper[T]

func (h *minHeap[T]) Len() int           { return len(h.h) }
func (h *minHeap[T]) Less(i, j int) bool { return h.better(h.h[j], h.h[i]) }
func (h *minHeap[T]) Swap(i, j int)      { h.h[i], h.h[j] = h.h[j], h.h[i] }
func (h *minHeap[T]) Push(x any)         { h.h = append(h.h, x.(T)) }
func (h *minHeap[T]) Pop() any {
	x := h.h[len(h.h)-1]
	h.h = h.h[:len(h.h)-1]
	return x
}
