package mlmengine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/activities"
)

// TestWaitTurnReportsWhileWaiting: a chunk waiting for a model another
// shard holds reports progress at every tick (so its activity heartbeats),
// and gets its turn when the holder ends its own.
func TestWaitTurnReportsWhileWaiting(t *testing.T) {
	gate := make(chan struct{}, 1)
	gate <- struct{}{} // another shard holds the model
	tick := make(chan time.Time)
	waited := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		got <- waitTurn(context.Background(), gate, tick, func() { waited <- struct{}{} })
	}()
	for range 3 {
		tick <- time.Time{}
		<-waited
	}
	select {
	case err := <-got:
		t.Fatalf("turn taken while the model was held: %v", err)
	default:
	}
	<-gate // the holder ends its turn
	if err := <-got; err != nil {
		t.Fatalf("waitTurn: %v", err)
	}
	if len(gate) != 1 {
		t.Fatal("the waiter's turn is not held")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- waitTurn(ctx, gate, tick, nil) }()
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestExamplesFromLists(t *testing.T) {
	tests := []struct {
		name string
		ex   activities.Example
		want string
		err  string
	}{
		{name: "list", ex: activities.Example{ItemID: "a", Text: "[MASK] and [MASK]", Answers: []string{"salt", "pepper"}}, want: "salt,pepper"},
		{name: "list entry with the old separator", ex: activities.Example{ItemID: "b", Text: "[MASK] or [MASK]", Answers: []string{"a|b", "c"}}, want: "a|b,c"},
		{name: "old joined label", ex: activities.Example{ItemID: "c", Text: "[MASK] and [MASK]", Label: "salt | pepper"}, want: "salt,pepper"},
		{name: "old single label", ex: activities.Example{ItemID: "d", Text: "a [MASK]", Label: " cat "}, want: "cat"},
		{name: "list with the wrong count", ex: activities.Example{ItemID: "e", Text: "a [MASK]", Answers: []string{"x", "y"}}, err: "1 masks but 2 answers"},
	}
	for _, tc := range tests {
		got, err := examples([]activities.Example{tc.ex})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, activities.ErrBadData) {
				t.Errorf("%s: %v, want bad data %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got[0].Answers, ",") != tc.want {
			t.Errorf("%s: %+v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}
