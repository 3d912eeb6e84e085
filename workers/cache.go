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
	// refs counts Acquire callers that have not released the model; a
	// pinned model is never dropped.
	refs int
}

// Get returns the model for uri, loading it if needed. Concurrent calls for
// the same URI share one load. A failed load is not cached. The model may
// be dropped (and closed) by later loads; callers that use it while other
// models load should use Acquire.
func (c *ModelCache[M]) Get(ctx context.Context, uri string) (M, error) {
	m, release, err := c.Acquire(ctx, uri)
	if err != nil {
		return m, err
	}
	release()
	return m, nil
}

// Acquire is Get that pins the model until release is called: it is not
// dropped or closed meanwhile (the cache may then hold more than Max
// models for a while). release must be called exactly once.
func (c *ModelCache[M]) Acquire(ctx context.Context, uri string) (M, func(), error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*cacheEntry[M]{}
	}
	c.clock++
	var zero M
	if e, ok := c.entries[uri]; ok {
		e.used = c.clock
		e.refs++
		c.mu.Unlock()
		select {
		case <-e.ready:
			if e.err != nil {
				c.release(e)
				return zero, nil, fmt.Errorf("load model %s: %w", uri, e.err)
			}
			return e.model, c.releaser(e), nil
		case <-ctx.Done():
			c.release(e)
			return zero, nil, fmt.Errorf("wait for model %s: %w", uri, ctx.Err())
		}
	}
	e := &cacheEntry[M]{ready: make(chan struct{}), used: c.clock, refs: 1}
	c.entries[uri] = e
	c.mu.Unlock()

	e.model, e.err = c.Load(ctx, uri)
	close(e.ready)
	c.mu.Lock()
	if e.err != nil {
		delete(c.entries, uri)
		e.refs--
		c.mu.Unlock()
		return zero, nil, fmt.Errorf("load model %s: %w", uri, e.err)
	}
	c.evict()
	c.mu.Unlock()
	return e.model, c.releaser(e), nil
}

func (c *ModelCache[M]) releaser(e *cacheEntry[M]) func() {
	var once sync.Once
	return func() { once.Do(func() { c.release(e) }) }
}

func (c *ModelCache[M]) release(e *cacheEntry[M]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	c.evict()
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
			if e.refs > 0 {
				continue // in use
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
