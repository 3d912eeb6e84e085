package mlmengine

import (
	"context"
	"sync"
	"time"

	"github.com/clozeloop/clozeloop/mlm"
)

// DefaultWaitHeartbeat is how often a scoring or evaluation chunk that
// waits for its turn at a shared model reports progress (Options.WaitHeartbeat).
const DefaultWaitHeartbeat = 10 * time.Second

// turns hands out turns at the loaded models an Engine shares (one chunk
// at a time per model, as the model's own lock would), so that a shard
// that waits while other shards score on the same model keeps reporting
// progress, and with it heartbeats, instead of blocking silently inside
// the model's lock until its heartbeat timeout fails it.
type turns struct {
	mu    sync.Mutex
	gates map[*mlm.Model]*gate
}

type gate struct {
	ch   chan struct{}
	refs int
}

// take waits for a turn at m, calling waiting every e.o.WaitHeartbeat
// while it waits; the returned function ends the turn.
func (e *Engine) take(ctx context.Context, m *mlm.Model, waiting func()) (func(), error) {
	t := &e.turns
	t.mu.Lock()
	if t.gates == nil {
		t.gates = map[*mlm.Model]*gate{}
	}
	g := t.gates[m]
	if g == nil {
		g = &gate{ch: make(chan struct{}, 1)}
		t.gates[m] = g
	}
	g.refs++
	t.mu.Unlock()
	done := func() {
		t.mu.Lock()
		if g.refs--; g.refs == 0 {
			delete(t.gates, m)
		}
		t.mu.Unlock()
	}
	ticker := time.NewTicker(e.o.WaitHeartbeat)
	defer ticker.Stop()
	if err := waitTurn(ctx, g.ch, ticker.C, waiting); err != nil {
		done()
		return nil, err
	}
	return func() {
		<-g.ch
		done()
	}, nil
}

// waitTurn blocks until it puts a token into gate (a channel of capacity
// one), calling waiting at every tick meanwhile.
func waitTurn(ctx context.Context, gate chan struct{}, tick <-chan time.Time, waiting func()) error {
	for {
		select {
		case gate <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			if waiting != nil {
				waiting()
			}
		}
	}
}
