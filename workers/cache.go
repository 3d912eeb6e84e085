package workers

import (
	"context"
	"fmt"
	"sync"
)

// ModelCache loads models once and keeps them by URI, so that a worker
// serving many activities does not reload the same checkpoint. It keeps at
// most Max models (default 2), dropping the least recently used one (and
// calling Close on it when set). Safe for concurrent use.
type ModelCache[M any] struct {
	// Load reads a model.
	Load func(ctx context.Context, uri string) (M, error)
	// Close releases a dropped model (optional).
	Close func(M)
	// Max is the number of models kept.
	Max int

	mu      sync.Mutex
	entries map[string]*cacheEntry[M]
	clock   int64
}

type cacheEntry[M any] struct {
	ready chan struct{}
	model M
	err   error
	used  int64
}

// Get returns the model for uri, loading it if needed. Concurrent calls for
// the same URI share one load. A failed load is not cached.
func (c *ModelCache[M]) Get(ctx context.Context, uri string) (M, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*cacheEntry[M]{}
	}
	c.clock++
	if e, ok := c.entries[uri]; ok {
		e.used = c.clock
		c.mu.Unlock()
		select {
		case <-e.ready:
			return e.model, e.err
		case <-ctx.Done():
			var zero M
			return zero, fmt.Errorf("wait for model %s: %w", uri, ctx.Err())
		}
	}
	e := &cacheEntry[M]{ready: make(chan struct{}), used: c.clock}
	c.entries[uri] = e
	c.mu.Unlock()

	e.model, e.err = c.Load(ctx, uri)
	close(e.ready)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.err != nil {
		delete(c.entries, uri)
		return e.model, fmt.Errorf("load model %s: %w", uri, e.err)
	}
	c.evict()
	return e.model, nil
}

// evict drops the least recently used loaded models beyond Max.
func (c *ModelCache[M]) evict() {
	limit := c.Max
	if limit <= 0 {
		limit = 2
	}
	for len(c.entries) > limit {
		var oldest string
		var at int64 = -1
		for uri, e := range c.entries {
			select {
			case <-e.ready:
			default:
				continue // still loading
			}
			if at < 0 || e.used < at {
				oldest, at = uri, e.used
			}
		}
		if at < 0 {
			return
		}
		if c.Close != nil {
			c.Close(c.entries[oldest].model)
		}
		delete(c.entries, oldest)
	}
}
