// Package orchestration measures what Temporal costs clozeloop: the wall
// time of an active-learning round spent in orchestration (everything but
// the activities' own work) and the round-trip latency of a label
// submission (the SubmitLabels update).
//
// It starts a real embedded Temporal server (package devserver: in-process,
// SQLite file), runs the real ActiveLearning workflow with the real worker
// registration (workers.RegisterDefault and workers.RegisterGPU) and the
// real activities (package activities), over an in-memory object store and
// a model engine whose work is trivial (it returns valid results at once).
// A worker interceptor times every activity execution; a round's
// orchestration overhead is its wall time minus the time at least one
// activity was executing.
package orchestration

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/headers"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/devserver"
	"github.com/clozeloop/clozeloop/internal/workdir"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

// PollInterval is how often the driver asks the workflow (Batch query)
// whether the next batch is open. It does not bias the measurement: the
// moment a batch opened is read from the workflow's history afterwards.
const PollInterval = 20 * time.Millisecond

// Config configures Run.
type Config struct {
	// Cycles is the number of full round cycles measured (default 5): the
	// run labels Cycles+1 batches, and cycle r is the time from the last
	// answer of batch r to the moment batch r+1 is open.
	Cycles int
	// Updates is the total number of SubmitLabels updates sent (default
	// 200), one answer each, spread over the Cycles+1 batches (the batch
	// size is Updates/(Cycles+1), rounded up).
	Updates int
	// PoolShards is the number of parallel ScoreShard activities per round
	// (default 2).
	PoolShards int
	// FrontendAddr is the embedded server's gRPC address (default
	// 127.0.0.1:0, a free loopback port).
	FrontendAddr string
	// DataDir holds the server's SQLite file; empty means a temporary
	// folder removed at the end.
	DataDir string
	// Logger receives progress messages (default: discarded).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Cycles == 0 {
		c.Cycles = 5
	}
	if c.Updates == 0 {
		c.Updates = 200
	}
	if c.PoolShards == 0 {
		c.PoolShards = 2
	}
	if c.FrontendAddr == "" {
		c.FrontendAddr = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports the first problem of a configuration (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Cycles < 1 || c.Cycles > 1000:
		return fmt.Errorf("cycles must be within [1, 1000], got %d", c.Cycles)
	case c.Updates < c.Cycles+1:
		return fmt.Errorf("updates must be at least cycles+1 = %d (one per batch), got %d", c.Cycles+1, c.Updates)
	case c.Updates > 100000:
		return fmt.Errorf("updates must be at most 100000, got %d", c.Updates)
	case c.PoolShards < 1 || c.PoolShards > 256:
		return fmt.Errorf("pool shards must be within [1, 256], got %d", c.PoolShards)
	}
	return nil
}

// Stats summarise a set of durations, in milliseconds.
type Stats struct {
	Count  int     `json:"count"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	MeanMS float64 `json:"mean_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Summarize returns the nearest-rank percentiles, mean and maximum of d.
func Summarize(d []time.Duration) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	ms := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	rank := func(p float64) time.Duration {
		i := int(float64(len(s))*p+0.999999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Stats{Count: len(s), P50MS: ms(rank(0.50)), P99MS: ms(rank(0.99)), MeanMS: ms(sum / time.Duration(len(s))), MaxMS: ms(s[len(s)-1])}
}

// Cycle is one measured stretch of automatic work. Batch-open instants
// are read from the workflow's history (the server's record of the
// workflow task that opened the batch); the other boundaries are the
// driver's client calls returning.
type Cycle struct {
	// WallMS is the stretch's wall time.
	WallMS float64 `json:"wall_ms"`
	// ActivityMS is the time at least one activity was executing.
	ActivityMS float64 `json:"activity_ms"`
	// OverheadMS is WallMS − ActivityMS.
	OverheadMS float64 `json:"overhead_ms"`
	// Activities counts the activity executions in the stretch.
	Activities int `json:"activities"`
}

// Result is what Run measured.
type Result struct {
	// Server describes the Temporal server.
	Server string `json:"server"`
	// ServerVersion is the embedded Temporal server's version.
	ServerVersion string `json:"server_version"`
	Cycles        int    `json:"cycles"`
	PoolShards    int    `json:"pool_shards"`
	BatchSize     int    `json:"batch_size"`
	// Round holds the full cycles: persist labels, fine-tune, evaluate,
	// upload, continue-as-new, score the pool, select the next batch.
	Round []Cycle `json:"round"`
	// Wall, Activity and Overhead summarise Round.
	Wall     Stats `json:"wall"`
	Activity Stats `json:"activity"`
	Overhead Stats `json:"overhead"`
	// Start is from starting the workflow to the first batch being open;
	// Finish from the last answer to the workflow's result.
	Start  Cycle `json:"start"`
	Finish Cycle `json:"finish"`
	// Updates summarises the SubmitLabels round trips (client call to the
	// update's result).
	Updates Stats `json:"updates"`
	// PollIntervalMS is the driver's Batch query polling interval (it only
	// says when to start answering; open times come from the history).
	PollIntervalMS float64 `json:"poll_interval_ms"`
}

// ServerDescription says which Temporal server Run uses.
const ServerDescription = "embedded Temporal server (package devserver, as `clozeloop dev`): in-process, SQLite file (WAL, synchronous=FULL), 1 history shard, gRPC on loopback"

// Run starts an embedded Temporal server, measures, and stops it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("temporal bench: %w", err)
	}
	cfg = cfg.withDefaults()
	dir, cleanup, err := workdir.OrTemp(cfg.DataDir, "clozeloop-bench-temporal-")
	if err != nil {
		return nil, fmt.Errorf("temporal bench: %w", err)
	}
	defer cleanup()
	srv, err := devserver.Start(ctx, devserver.Options{FrontendAddr: cfg.FrontendAddr, DataDir: dir,
		Namespace: "clozeloop-bench", LogLevel: "error", Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("temporal bench: %w", err)
	}
	res, err := runOn(ctx, srv, cfg)
	if serr := srv.Stop(); serr != nil && err == nil {
		err = fmt.Errorf("temporal bench: %w", serr)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// span is one activity execution.
type span struct {
	name       string
	start, end time.Time
}

// recorder collects activity spans; it is the worker interceptor.
type recorder struct {
	interceptor.WorkerInterceptorBase
	mu    sync.Mutex
	spans []span
}

func (r *recorder) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &timedActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, rec: r}
}

func (r *recorder) snapshot() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.spans...)
}

type timedActivity struct {
	interceptor.ActivityInboundInterceptorBase
	rec *recorder
}

// ExecuteActivity times the activity function itself.
func (a *timedActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	start := time.Now()
	out, err := a.Next.ExecuteActivity(ctx, in)
	end := time.Now()
	a.rec.mu.Lock()
	a.rec.spans = append(a.rec.spans, span{name: activity.GetInfo(ctx).ActivityType.Name, start: start, end: end})
	a.rec.mu.Unlock()
	return out, err
}

// measure returns the cycle of the window [from, to] given the spans.
func measure(spans []span, from, to time.Time) Cycle {
	var in []span
	for _, s := range spans {
		if s.end.After(from) && s.start.Before(to) {
			if s.start.Before(from) {
				s.start = from
			}
			if s.end.After(to) {
				s.end = to
			}
			in = append(in, s)
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i].start.Before(in[j].start) })
	var busy time.Duration
	var curStart, curEnd time.Time
	for i, s := range in {
		if i == 0 || s.start.After(curEnd) {
			busy += curEnd.Sub(curStart)
			curStart, curEnd = s.start, s.end
			continue
		}
		if s.end.After(curEnd) {
			curEnd = s.end
		}
	}
	busy += curEnd.Sub(curStart)
	wall := to.Sub(from)
	ms := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	return Cycle{WallMS: ms(wall), ActivityMS: ms(busy), OverheadMS: ms(wall - busy), Activities: len(in)}
}

func runOn(ctx context.Context, srv *devserver.Server, cfg Config) (*Result, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := client.Dial(client.Options{HostPort: srv.FrontendAddr(), Namespace: srv.Namespace(), Logger: sdklog.NewStructuredLogger(quiet)})
	if err != nil {
		return nil, fmt.Errorf("temporal bench: connect to %s: %w", srv.FrontendAddr(), err)
	}
	defer c.Close()

	batches := cfg.Cycles + 1
	batchSize := (cfg.Updates + batches - 1) / batches
	poolSize := max(2*batchSize*batches, 100)
	blobs := &activities.MemBlobs{}
	acts := &activities.Activities{Blobs: blobs, Scorer: trivialScorer{n: poolSize}, Trainer: trivialTrainer{blobs: blobs},
		Evaluator: trivialEvaluator{}, Logger: quiet}
	rec := &recorder{}
	wopts := worker.Options{WorkerStopTimeout: time.Second, Interceptors: []interceptor.WorkerInterceptor{rec}}
	wDefault := worker.New(c, workflows.DefaultTaskQueue, wopts)
	workers.RegisterDefault(wDefault, acts)
	wGPU := worker.New(c, workflows.GPUTaskQueue, wopts)
	workers.RegisterGPU(wGPU, acts)
	for _, w := range []worker.Worker{wDefault, wGPU} {
		if err := w.Start(); err != nil {
			return nil, fmt.Errorf("temporal bench: start worker: %w", err)
		}
		defer w.Stop()
	}

	runID := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	rc := workflows.RunConfig{RunID: runID, Dataset: "bench", PoolURI: "bench/pool.jsonl", PoolShards: cfg.PoolShards,
		EvalURI: "bench/eval.jsonl", ModelURI: "bench/models/base", Strategy: "entropy", BatchSize: batchSize, Quorum: 1,
		RoundDeadline: workflows.Duration(24 * time.Hour), MinLabels: 1, Budget: workflows.Budget{MaxRounds: batches}}
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: runID, TaskQueue: workflows.DefaultTaskQueue},
		workflows.ActiveLearningName, rc)
	if err != nil {
		return nil, fmt.Errorf("temporal bench: start workflow: %w", err)
	}
	firstRun := run.GetRunID() // Get below follows continue-as-new and moves it
	opened := make([]time.Time, batches+1)
	done := make([]time.Time, batches+1)
	var lat []time.Duration
	for r := 1; r <= batches; r++ {
		b, err := waitBatch(ctx, c, runID, r)
		if err != nil {
			return nil, err
		}
		opened[r] = time.Now()
		if len(b.Items) != batchSize {
			return nil, fmt.Errorf("temporal bench: round %d batch has %d items, want %d", r, len(b.Items), batchSize)
		}
		cfg.Logger.Debug("batch open", "round", r, "items", len(b.Items))
		for i, it := range b.Items {
			sub := workflows.LabelSubmission{Round: r, Annotator: "bench", Answers: []workflows.Answer{{ItemID: it.ItemID, Answer: "w7"}}}
			t0 := time.Now()
			h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: runID, UpdateName: workflows.UpdateSubmitLabels,
				Args: []any{sub}, WaitForStage: client.WorkflowUpdateStageCompleted})
			if err != nil {
				return nil, fmt.Errorf("temporal bench: round %d: submit label %d: %w", r, i+1, err)
			}
			var sr workflows.SubmitResult
			if err := h.Get(ctx, &sr); err != nil {
				return nil, fmt.Errorf("temporal bench: round %d: label %d result: %w", r, i+1, err)
			}
			lat = append(lat, time.Since(t0))
			if sr.Counted != 1 || sr.RoundComplete != (i == len(b.Items)-1) {
				return nil, fmt.Errorf("temporal bench: round %d: label %d got %+v", r, i+1, sr)
			}
		}
		done[r] = time.Now()
	}
	var out workflows.Result
	if err := run.Get(ctx, &out); err != nil {
		return nil, fmt.Errorf("temporal bench: workflow result: %w", err)
	}
	end := time.Now()
	if out.Rounds != batches || out.LabelsTotal != batches*batchSize {
		return nil, fmt.Errorf("temporal bench: workflow ended with %d rounds and %d labels, want %d and %d (%s)",
			out.Rounds, out.LabelsTotal, batches, batches*batchSize, out.StopReason)
	}

	opens, err := openTimes(ctx, c, runID, firstRun, batches)
	if err != nil {
		return nil, err
	}
	for r := 1; r <= batches; r++ {
		if opens[r-1].After(opened[r]) || opens[r-1].Before(start) {
			return nil, fmt.Errorf("temporal bench: batch %d opened at %v by its history, outside [%v, %v]", r, opens[r-1], start, opened[r])
		}
		opened[r] = opens[r-1]
	}
	spans := rec.snapshot()
	res := &Result{Server: ServerDescription, ServerVersion: headers.ServerVersion,
		Cycles: cfg.Cycles, PoolShards: cfg.PoolShards, BatchSize: batchSize,
		Start: measure(spans, start, opened[1]), Finish: measure(spans, done[batches], end),
		Updates: Summarize(lat), PollIntervalMS: float64(PollInterval) / float64(time.Millisecond)}
	var wall, busy, over []time.Duration
	for r := 1; r < batches; r++ {
		cy := measure(spans, done[r], opened[r+1])
		res.Round = append(res.Round, cy)
		wall = append(wall, msDur(cy.WallMS))
		busy = append(busy, msDur(cy.ActivityMS))
		over = append(over, msDur(cy.OverheadMS))
	}
	res.Wall, res.Activity, res.Overhead = Summarize(wall), Summarize(busy), Summarize(over)
	return res, nil
}

func msDur(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// openTimes returns, for each of the n runs of the continue-as-new chain
// that starts with firstRunID, when its batch opened: the time the server
// recorded the completion of the workflow task that followed the round's
// last ScoreShard completion (that task selects the batch and opens it).
func openTimes(ctx context.Context, c client.Client, id, firstRunID string, n int) ([]time.Time, error) {
	var out []time.Time
	runID := firstRunID
	for len(out) < n {
		if runID == "" {
			return nil, fmt.Errorf("temporal bench: history of %s: the chain ended after %d runs, want %d", id, len(out), n)
		}
		it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		names := map[int64]string{}
		var lastScore int64
		var open time.Time
		next := ""
		var lastType enumspb.EventType
		events := 0
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return nil, fmt.Errorf("temporal bench: read history of run %s: %w", runID, err)
			}
			events++
			lastType = ev.GetEventType()
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				names[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				if names[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] == workflows.ActivityScoreShard {
					lastScore, open = ev.GetEventId(), time.Time{}
				}
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				if lastScore != 0 && open.IsZero() {
					open = ev.GetEventTime().AsTime()
				}
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		if open.IsZero() {
			return nil, fmt.Errorf("temporal bench: run %s of %s has no workflow task after its scoring", runID, id)
		}
		out = append(out, open)
		if len(out) < n && next == "" {
			return nil, fmt.Errorf("temporal bench: run %s of %s (run %d of the chain) ended with %v after %d events, not continue-as-new",
				runID, id, len(out), lastType, events)
		}
		runID = next
	}
	return out, nil
}

// waitBatch polls the Batch query until round r's batch is open.
func waitBatch(ctx context.Context, c client.Client, id string, r int) (workflows.BatchView, error) {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := c.QueryWorkflow(qctx, id, "", workflows.QueryBatch)
		cancel()
		if err == nil {
			var b workflows.BatchView
			if err = v.Get(&b); err == nil && b.Round == r && b.Open {
				return b, nil
			}
		}
		if err != nil {
			last = err
		}
		if ctx.Err() != nil {
			return workflows.BatchView{}, fmt.Errorf("temporal bench: wait for batch %d: %w", r, ctx.Err())
		}
		if time.Now().After(deadline) {
			return workflows.BatchView{}, fmt.Errorf("temporal bench: batch %d did not open within 2 minutes (last query error: %v)", r, last)
		}
		time.Sleep(PollInterval)
	}
}

// trivialScorer returns n synthetic pool items at once, with valid scores
// and five suggestions each.
type trivialScorer struct{ n int }

func (s trivialScorer) ScoreShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) ([]activities.ScoredItem, error) {
	if req.NumShards <= 0 || req.Shard < 0 || req.Shard >= req.NumShards {
		return nil, fmt.Errorf("%w: shard %d of %d", activities.ErrBadData, req.Shard, req.NumShards)
	}
	var out []activities.ScoredItem
	for i := req.Shard; i < s.n; i += req.NumShards {
		id := fmt.Sprintf("item-%06d", i)
		if req.Skip != nil && req.Skip(id) {
			continue
		}
		scores := make(map[string]float64, len(req.Strategies))
		for _, st := range req.Strategies {
			h := fnv.New32a()
			h.Write([]byte(st + "/" + id))
			scores[st] = float64(h.Sum32()) / (1 << 32)
		}
		out = append(out, activities.ScoredItem{ItemID: id, Text: "w5 w6 [MASK] w8 " + id, Scores: scores,
			Suggestions: []workflows.Suggestion{{Token: "w7", Prob: 0.4}, {Token: "w9", Prob: 0.2}, {Token: "w11", Prob: 0.1},
				{Token: "w13", Prob: 0.1}, {Token: "w15", Prob: 0.05}}})
	}
	if progress != nil {
		progress(len(out), len(out))
	}
	return out, nil
}

// trivialTrainer writes a one-file checkpoint and returns.
type trivialTrainer struct{ blobs activities.Blobs }

func (t trivialTrainer) FineTune(ctx context.Context, req activities.TrainRequest, progress func(activities.TrainProgress)) (activities.TrainResult, error) {
	if len(req.Examples) == 0 {
		return activities.TrainResult{}, fmt.Errorf("%w: no examples", activities.ErrBadData)
	}
	final := strings.TrimSuffix(req.OutputPrefix, "/") + "/final"
	if err := t.blobs.Put(ctx, final+"/config.json", []byte(`{"model_type":"bert"}`)); err != nil {
		return activities.TrainResult{}, fmt.Errorf("write checkpoint: %w", err)
	}
	progress(activities.TrainProgress{Step: 1, TotalSteps: 1, Loss: 1, CheckpointURI: final, CheckpointStep: 1})
	return activities.TrainResult{CheckpointURI: final, Steps: 1, FinalLoss: 1}, nil
}

// trivialEvaluator returns fixed metrics.
type trivialEvaluator struct{}

func (trivialEvaluator) Evaluate(ctx context.Context, modelURI, evalURI string, progress func(done, total int)) (map[string]float64, error) {
	if modelURI == "" || evalURI == "" {
		return nil, errors.New("evaluate: empty model or eval URI")
	}
	return map[string]float64{"accuracy": 0.5, "top5": 0.8}, nil
}
