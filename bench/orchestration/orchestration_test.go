package orchestration

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Stats
	}{
		{"empty", nil, Stats{}},
		{"one", ms(7), Stats{Count: 1, P50MS: 7, P99MS: 7, MeanMS: 7, MaxMS: 7}},
		{"unsorted four", ms(4, 1, 3, 2), Stats{Count: 4, P50MS: 2, P99MS: 4, MeanMS: 2.5, MaxMS: 4}},
		{"one to hundred", ms(hundred...), Stats{Count: 100, P50MS: 50, P99MS: 99, MeanMS: 50.5, MaxMS: 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.in); got != tc.want {
				t.Fatalf("Summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMeasureUnionOfSpans(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name     string
		spans    []span
		from, to int
		want     Cycle
	}{
		{"no activity", nil, 0, 100, Cycle{WallMS: 100, OverheadMS: 100}},
		{"disjoint", []span{{"a", at(10), at(20)}, {"b", at(50), at(80)}}, 0, 100,
			Cycle{WallMS: 100, ActivityMS: 40, OverheadMS: 60, Activities: 2}},
		{"parallel shards overlap", []span{{"s0", at(10), at(40)}, {"s1", at(20), at(50)}, {"s2", at(25), at(30)}}, 0, 100,
			Cycle{WallMS: 100, ActivityMS: 40, OverheadMS: 60, Activities: 3}},
		{"clipped to the window", []span{{"a", at(0), at(30)}, {"b", at(90), at(150)}, {"out", at(200), at(210)}}, 20, 100,
			Cycle{WallMS: 80, ActivityMS: 20, OverheadMS: 60, Activities: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := measure(tc.spans, at(tc.from), at(tc.to))
			if got != tc.want {
				t.Fatalf("measure = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"quick", Config{Cycles: 1, Updates: 4}, true},
		{"negative cycles", Config{Cycles: -1}, false},
		{"fewer updates than batches", Config{Cycles: 5, Updates: 3}, false},
		{"too many shards", Config{PoolShards: 1000}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
			}
		})
	}
}

// TestRunOnEmbeddedServer runs one cycle (two labelled batches) against a
// real embedded Temporal server.
func TestRunOnEmbeddedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Cycles: 1, Updates: 6, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.BatchSize != 3 || len(res.Round) != 1 || res.Updates.Count != 6 || res.Wall.Count != 1 {
		t.Fatalf("result shape %+v", res)
	}
	cy := res.Round[0]
	// A full cycle runs PersistLabels, FineTune, Evaluate twice (the base
	// model once, in round 1), UploadCheckpoint and two ScoreShards.
	// PersistLabels may finish before the client has the last update's
	// result (the workflow schedules it in the task that answers the
	// update), so it may fall outside the window.
	if cy.Activities != 7 && cy.Activities != 6 {
		t.Errorf("cycle ran %d activities, want 7 (or 6)", cy.Activities)
	}
	if cy.WallMS <= 0 || cy.ActivityMS <= 0 || cy.OverheadMS <= 0 || math.Abs(cy.WallMS-cy.ActivityMS-cy.OverheadMS) > 1e-6 {
		t.Errorf("cycle %+v: want positive parts that add up", cy)
	}
	// A new run first checks with ResolveRun that its run id is unused,
	// then scores its two shards.
	if res.Start.Activities != 3 || (res.Finish.Activities != 4 && res.Finish.Activities != 3) {
		t.Errorf("start ran %d activities (want ResolveRun and 2 shards), finish %d (want persist (maybe), fine-tune, evaluate, upload)",
			res.Start.Activities, res.Finish.Activities)
	}
	if res.Updates.P50MS <= 0 || res.Updates.MaxMS < res.Updates.P99MS || res.Updates.P99MS < res.Updates.P50MS {
		t.Errorf("update stats %+v", res.Updates)
	}
	if res.ServerVersion == "" {
		t.Error("no server version")
	}
	t.Logf("cycle %+v, start %+v, finish %+v, updates %+v", cy, res.Start, res.Finish, res.Updates)
}
