package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ChangeForgettingEval is the GetVersion change id of the forgetting check:
// version 1 also evaluates on RunConfig.ForgettingEvalURI. Runs recorded
// before the change replay with DefaultVersion.
const ChangeForgettingEval = "forgetting-eval"

// ChangeLabelSemantics is the GetVersion change id of exact label
// semantics, taken once when a run starts. Version 1: answers are lists
// checked against the item's blanks and normalised before votes; a skip
// without scope "all" excludes only its annotator; a round closed with no
// labels ends that round, not the run (unless CloseRequest.EndRun);
// min_labels never exceeds the round's active items; late answers that
// arrive while labels are persisted stay for the next PersistLabels; a new
// run refuses a run id whose labels or models exist already. Runs recorded
// before the change replay with DefaultVersion and the old behaviour.
const ChangeLabelSemantics = "label-semantics"

// activeLearning is the state of one ActiveLearning run (one round).
type activeLearning struct {
	cfg    RunConfig
	shares []StrategyShare
	carry  Carry
	phase  Phase
	// phaseStart is when the current phase began (zero before the first).
	phaseStart time.Time
	cur        *round
	// late collects answers and notes for rounds that are not open; they
	// are persisted by the next PersistLabels, within MaxLateRecords.
	late lateLog
	// version is the ChangeLabelSemantics version of this run.
	version workflow.Version
}

// ActiveLearning runs one active-learning round — score the pool, select a
// batch, wait for labels, persist them, fine-tune, evaluate, decide on
// promotion, upload — and continues as new for the next round until the
// budget or a stop criterion ends the run.
func ActiveLearning(ctx workflow.Context, cfg RunConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("invalid run config: "+err.Error(), "InvalidRunConfig", nil)
	}
	cfg = cfg.withDefaults()
	shares, _ := ParseStrategy(cfg.Strategy) // validated above
	w := &activeLearning{cfg: cfg, shares: shares, phase: PhaseScoring}
	w.version = workflow.GetVersion(ctx, ChangeLabelSemantics, workflow.DefaultVersion, 1)
	if cfg.Resume != nil {
		w.carry = *cfg.Resume
		w.late = lateLog{records: w.carry.Late, dropped: w.carry.LateDropped}
		w.carry.Late, w.carry.LateDropped = nil, 0
	} else {
		w.carry = Carry{Round: 1, ModelURI: cfg.ModelURI}
	}
	if err := w.registerHandlers(ctx); err != nil {
		return nil, err
	}
	w.listenForSignals(ctx)
	if err := workflow.UpsertMemo(ctx, map[string]any{
		"dataset": cfg.Dataset, "pool": cfg.PoolURI, "model": w.carry.ModelURI, "round": w.carry.Round, "strategy": cfg.Strategy,
	}); err != nil {
		return nil, fmt.Errorf("upsert memo: %w", err)
	}
	if w.version >= 1 && cfg.Resume == nil {
		if err := w.checkRunIDUnused(ctx); err != nil {
			return nil, err
		}
	}
	if err := w.adapt(ctx); err != nil {
		return nil, err
	}
	return w.runRound(ctx)
}

// checkRunIDUnused refuses to start a run whose output prefix already holds
// labels or a current model (a run id used before): the new run would
// overwrite the earlier run's label files. The same activity pins a Hub
// starting model to its current commit, which the run then uses.
func (w *activeLearning) checkRunIDUnused(ctx workflow.Context) error {
	var prev ResolveRunOutput
	in := ResolveRunInput{OutputPrefix: w.cfg.OutputPrefix, ModelURI: w.cfg.ModelURI}
	if err := workflow.ExecuteActivity(storeOptions(ctx), ActivityResolveRun, in).Get(ctx, &prev); err != nil {
		return fmt.Errorf("check that run id %q is unused: %w", w.cfg.RunID, err)
	}
	if prev.LabelSetURI == "" && prev.ModelURI == "" {
		if prev.PinnedModelURI != "" {
			w.carry.ModelURI = prev.PinnedModelURI
		}
		return nil
	}
	found := prev.LabelSetURI
	if found == "" {
		found = prev.ModelURI
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"run id %q is already used: %s holds an earlier run's data (%s); start with a new run_id (or another output_prefix) so that its labels are not overwritten",
		w.cfg.RunID, w.cfg.OutputPrefix, found), "RunIDInUse", nil)
}

func (w *activeLearning) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return w.status(), nil }); err != nil {
		return fmt.Errorf("register %s query: %w", QueryStatus, err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryBatch, func() (BatchView, error) { return w.cur.view(), nil }); err != nil {
		return fmt.Errorf("register %s query: %w", QueryBatch, err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryHistory, func() ([]RoundMetrics, error) { return w.carry.History, nil }); err != nil {
		return fmt.Errorf("register %s query: %w", QueryHistory, err)
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSubmitLabels,
		func(ctx workflow.Context, s LabelSubmission) (SubmitResult, error) {
			counted := w.cur.apply(s, "update", workflow.Now(ctx))
			return SubmitResult{
				Round: s.Round, Counted: counted, ItemsComplete: w.cur.itemsComplete(),
				ItemsNeeded: w.cur.activeItems(), RoundComplete: w.cur.complete(),
			}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, s LabelSubmission) error {
			return w.cur.validate(s)
		}},
	)
	if err != nil {
		return fmt.Errorf("register %s update: %w", UpdateSubmitLabels, err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, CloseRound,
		func(ctx workflow.Context, req CloseRequest) (Status, error) {
			w.cur.closeAsked = true
			w.cur.endRun = w.cur.endRun || req.EndRun
			return w.status(), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req CloseRequest) error {
			switch {
			case w.cur == nil:
				return errors.New("no round is open yet")
			case req.Round != w.cur.number:
				return fmt.Errorf("wrong round: asked to close round %d, the current round is %d", req.Round, w.cur.number)
			case !w.cur.open:
				return fmt.Errorf("round %d is already closed", w.cur.number)
			}
			return nil
		}},
	)
	if err != nil {
		return fmt.Errorf("register %s update: %w", CloseRound, err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, ExtendRound,
		func(ctx workflow.Context, req ExtendRequest) (Status, error) {
			w.extend(ctx, req, "update")
			return w.status(), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ExtendRequest) error {
			return w.cur.checkExtend(req)
		}},
	)
	if err != nil {
		return fmt.Errorf("register %s update: %w", ExtendRound, err)
	}
	return nil
}

// extend moves the open round's deadline for a checked ExtendRequest; the
// waiting loop (waitForLabels) waits for the new deadline.
func (w *activeLearning) extend(ctx workflow.Context, req ExtendRequest, via string) {
	w.cur.extend(req.Extend.D())
	workflow.GetLogger(ctx).Info("round deadline extended by a lead", "round", w.cur.number, "by", req.Extend.D().String(),
		"deadline", w.cur.deadline, "lead_extensions", w.cur.leadExtensions, "reason", cut(req.Reason, MaxReasonBytes), "via", via)
}

// signalChannels are the channels of every signal the workflow accepts.
type signalChannels struct {
	labels, close, extend, skip, flag workflow.ReceiveChannel
}

func (w *activeLearning) channels(ctx workflow.Context) signalChannels {
	return signalChannels{
		labels: workflow.GetSignalChannel(ctx, SignalLabels),
		close:  workflow.GetSignalChannel(ctx, CloseRound),
		extend: workflow.GetSignalChannel(ctx, ExtendRound),
		skip:   workflow.GetSignalChannel(ctx, SignalSkip),
		flag:   workflow.GetSignalChannel(ctx, SignalFlag),
	}
}

// listenForSignals handles signals as they come, for the whole run.
func (w *activeLearning) listenForSignals(ctx workflow.Context) {
	ch := w.channels(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch.labels, func(c workflow.ReceiveChannel, _ bool) {
			var s LabelSubmission
			c.Receive(ctx, &s)
			w.onLabels(ctx, s)
		})
		sel.AddReceive(ch.close, func(c workflow.ReceiveChannel, _ bool) {
			var req CloseRequest
			c.Receive(ctx, &req)
			w.onClose(ctx, req)
		})
		sel.AddReceive(ch.extend, func(c workflow.ReceiveChannel, _ bool) {
			var req ExtendRequest
			c.Receive(ctx, &req)
			w.onExtend(ctx, req)
		})
		sel.AddReceive(ch.skip, func(c workflow.ReceiveChannel, _ bool) {
			var n ItemNote
			c.Receive(ctx, &n)
			w.onNote(ctx, n, true)
		})
		sel.AddReceive(ch.flag, func(c workflow.ReceiveChannel, _ bool) {
			var n ItemNote
			c.Receive(ctx, &n)
			w.onNote(ctx, n, false)
		})
		for {
			sel.Select(ctx)
		}
	})
}

// drainSignals handles every signal still buffered, so that none is lost
// when the run continues as new or completes.
func (w *activeLearning) drainSignals(ctx workflow.Context) {
	ch := w.channels(ctx)
	for {
		got := false
		var s LabelSubmission
		for ch.labels.ReceiveAsync(&s) {
			w.onLabels(ctx, s)
			s, got = LabelSubmission{}, true
		}
		var req CloseRequest
		for ch.close.ReceiveAsync(&req) {
			w.onClose(ctx, req)
			req, got = CloseRequest{}, true
		}
		var ext ExtendRequest
		for ch.extend.ReceiveAsync(&ext) {
			w.onExtend(ctx, ext)
			ext, got = ExtendRequest{}, true
		}
		var n ItemNote
		for ch.skip.ReceiveAsync(&n) {
			w.onNote(ctx, n, true)
			n, got = ItemNote{}, true
		}
		for ch.flag.ReceiveAsync(&n) {
			w.onNote(ctx, n, false)
			n, got = ItemNote{}, true
		}
		if !got {
			return
		}
	}
}

func (w *activeLearning) roundOpen(number int) bool {
	return w.cur != nil && w.cur.open && w.cur.number == number
}

func (w *activeLearning) onLabels(ctx workflow.Context, s LabelSubmission) {
	now := workflow.Now(ctx)
	if !w.roundOpen(s.Round) {
		reason := fmt.Sprintf("round %d is not open", s.Round)
		for _, a := range s.Answers {
			w.late.add(RawAnswer{Round: s.Round, ItemID: a.ItemID, Annotator: s.Annotator, Answers: rawBlanks(a), At: now, Via: "signal", Rejected: reason})
		}
		workflow.GetLogger(ctx).Info("labels for a round that is not open kept as late answers", "round", s.Round, "answers", len(s.Answers))
		return
	}
	if s.Annotator == "" {
		s.Annotator = "anonymous"
	}
	w.cur.apply(s, "signal", now)
}

func (w *activeLearning) onClose(ctx workflow.Context, req CloseRequest) {
	if !w.roundOpen(req.Round) {
		workflow.GetLogger(ctx).Warn("CloseRound signal ignored: round not open", "round", req.Round)
		return
	}
	w.cur.closeAsked = true
	w.cur.endRun = w.cur.endRun || req.EndRun
}

// onExtend applies an ExtendRound signal; an invalid one (the Update's
// validator would refuse it) is logged and ignored.
func (w *activeLearning) onExtend(ctx workflow.Context, req ExtendRequest) {
	if err := w.cur.checkExtend(req); err != nil {
		workflow.GetLogger(ctx).Warn("ExtendRound signal ignored", "round", req.Round, "error", err)
		return
	}
	w.extend(ctx, req, "signal")
}

func (w *activeLearning) onNote(ctx workflow.Context, n ItemNote, skip bool) {
	kind := "flag"
	if skip {
		kind = "skip"
	}
	if !w.roundOpen(n.Round) || w.cur.index == nil {
		w.late.add(RawAnswer{Round: n.Round, ItemID: n.ItemID, Annotator: n.Annotator, Answer: n.Reason,
			At: workflow.Now(ctx), Via: kind, Scope: n.Scope, Rejected: fmt.Sprintf("round %d is not open", n.Round)})
		return
	}
	r := w.cur
	raw := RawAnswer{Round: n.Round, ItemID: n.ItemID, Annotator: n.Annotator, Answer: n.Reason, At: workflow.Now(ctx), Via: kind, Scope: n.Scope}
	_, known := r.index[n.ItemID]
	switch {
	case !known:
		raw.Rejected = fmt.Sprintf("unknown item id %q in round %d", cut(n.ItemID, keptIDBytes), n.Round)
	case !skip:
		reason := n.Reason
		if reason == "" {
			reason = "flagged"
		}
		if n.Annotator != "" {
			reason = n.Annotator + ": " + reason
		}
		r.flag(n.ItemID, reason)
	case r.legacy || n.Scope == ScopeAll:
		r.skipped[n.ItemID] = true
	case n.Scope != "" && n.Scope != ScopeSelf:
		raw.Rejected = fmt.Sprintf("unknown skip scope %q (want %q or %q)", n.Scope, ScopeSelf, ScopeAll)
	case strings.TrimSpace(n.Annotator) == "":
		raw.Rejected = "a skip for oneself needs the annotator"
	case len(n.Annotator) > MaxAnnotatorBytes:
		raw.Rejected = fmt.Sprintf("annotator name is longer than %d bytes", MaxAnnotatorBytes)
	default:
		r.skipSelf(n.ItemID, n.Annotator)
	}
	r.note(raw)
}

func (w *activeLearning) status() Status {
	st := Status{
		RunID: w.cfg.RunID, Phase: w.phase, Round: w.carry.Round, ModelURI: w.carry.ModelURI,
		LabelSetURI: w.carry.LabelSetURI, LabelsTotal: w.carry.LabelsTotal, LastMetrics: w.carry.CurrentMetrics,
		Adaptation: w.carry.Adaptation,
	}
	if r := w.cur; r != nil {
		st.Items = len(r.items)
		st.ItemsComplete = r.itemsComplete()
		st.LabelsReceived = r.answerCount()
		st.LabelsNeeded = r.activeItems() * r.quorum
		st.Deadline = r.deadline
		st.Extensions = r.allExtensions()
		st.LeadExtensions = r.leadExtensions
		if !r.legacy {
			st.Agreement = r.agreement()
		}
	}
	return st
}

// Activity options: each step has its own timeouts. Heartbeat timeouts
// notice a dead worker within minutes; retries resume (see activities).
func scoreOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 4 * time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute, MaximumAttempts: 10},
	})
}

func storeOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 20},
	})
}

// DefaultTrainHeartbeatTimeout is how long a training activity (FineTune,
// Adapt) may go without a heartbeat before Temporal gives it to another GPU
// worker, which resumes from its last checkpoint.
const DefaultTrainHeartbeatTimeout = 5 * time.Minute

// MinTrainHeartbeatTimeout is the shortest fine_tune.heartbeat_timeout a
// run config may set: a training step, a checkpoint upload and the SDK's
// heartbeat throttling must fit in it.
const MinTrainHeartbeatTimeout = 10 * time.Second

func trainOptions(ctx workflow.Context, heartbeat Duration) workflow.Context {
	hb := time.Duration(heartbeat)
	if hb <= 0 {
		hb = DefaultTrainHeartbeatTimeout
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              GPUTaskQueue,
		ScheduleToStartTimeout: 24 * time.Hour,
		StartToCloseTimeout:    12 * time.Hour,
		HeartbeatTimeout:       hb,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 5},
	})
}

func evalOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute, MaximumAttempts: 5},
	})
}

// runRound is one round, top to bottom.
func (w *activeLearning) runRound(ctx workflow.Context) (*Result, error) {
	cfg := w.cfg
	number := w.carry.Round
	logger := workflow.GetLogger(ctx)

	if cfg.Budget.MaxRounds > 0 && number > cfg.Budget.MaxRounds {
		return w.finish(ctx, "max rounds reached")
	}
	k := cfg.BatchSize
	if cfg.Budget.MaxLabels > 0 {
		k = min(k, cfg.Budget.MaxLabels-w.carry.LabelsTotal)
		if k <= 0 {
			return w.finish(ctx, "label budget spent")
		}
	}

	// 1. Score the pool, one activity per shard, in parallel.
	w.setPhase(ctx, PhaseScoring)
	shards, err := w.scorePool(ctx, number, k)
	if err != nil {
		return nil, err
	}

	// 2. Select the batch, excluding items in flight (the label set is
	// excluded by the scorer).
	exclude := map[string]bool{}
	for _, id := range w.carry.LastBatch {
		exclude[id] = true
	}
	batch := mergeCandidates(shards, w.shares, k, exclude)
	if len(batch) == 0 {
		return w.finish(ctx, "pool exhausted: no unlabelled item left to select")
	}

	// 3. Wait for labels.
	w.setPhase(ctx, PhaseLabeling)
	w.cur = newRound(number, cfg.Quorum, batch)
	w.cur.legacy = w.version < 1
	w.cur.fold = !cfg.CaseSensitiveVotes
	w.cur.open = true
	endedBy, err := w.waitForLabels(ctx)
	w.cur.open = false
	if err != nil {
		return nil, err
	}
	logger.Info("round closed", "round", number, "ended_by", endedBy, "labeled", w.cur.labeledItems(), "answers", w.cur.answerCount())

	// 4. Persist the labels and every raw answer (idempotent per round).
	w.setPhase(ctx, PhasePersist)
	decisions := w.cur.decisions()
	var agreement *Agreement
	if !w.cur.legacy {
		agreement = w.cur.agreement()
	}
	late, lateDropped := w.late.records, w.late.dropped
	var persisted PersistLabelsOutput
	err = workflow.ExecuteActivity(storeOptions(ctx), ActivityPersistLabels, PersistLabelsInput{
		RunID: cfg.RunID, Round: number, OutputPrefix: cfg.OutputPrefix, PrevLabelSet: w.carry.LabelSetURI,
		Decisions: decisions, Raw: w.cur.raw, Late: late, Dropped: w.cur.dropped + lateDropped, Agreement: agreement,
	}).Get(ctx, &persisted)
	if err != nil {
		return nil, fmt.Errorf("round %d: persist labels: %w", number, err)
	}
	w.persistedLate(len(late), lateDropped)
	w.carry.LabelSetURI = persisted.LabelSetURI
	w.carry.LabelsTotal = persisted.Labeled
	metrics := RoundMetrics{
		Round: number, EndedBy: endedBy, Items: len(batch), Labeled: w.cur.labeledItems(), Answers: w.cur.answerCount(),
		Extensions: w.cur.allExtensions(), LeadExtensions: w.cur.leadExtensions, LabelSetURI: persisted.LabelSetURI, Dropped: w.cur.dropped, Agreement: agreement,
	}
	for _, d := range decisions {
		metrics.Ties += b2i(d.Tie)
		metrics.Flagged += b2i(d.Flagged)
		metrics.Skipped += b2i(d.Skipped)
	}
	if metrics.Labeled == 0 {
		if w.version < 1 {
			w.carry.Round = number + 1
			w.appendHistory(metrics)
			return w.finish(ctx, fmt.Sprintf("round %d ended with no labels (%s)", number, endedBy))
		}
		// A round without labels ends, not the run: the next round
		// selects other items (this batch is LastBatch) with the same
		// model, and the round counts towards Stop.Patience.
		logger.Info("round ended with no labels; the run goes on", "round", number, "ended_by", endedBy)
		metrics.ModelURI = w.carry.ModelURI
		metrics.PromotionNote = "no labels: nothing trained"
		w.carry.RoundsWithoutPromotion++
		return w.nextRound(ctx, metrics, batch)
	}

	// 5. Fine-tune on the GPU queue.
	w.setPhase(ctx, PhaseTraining)
	var trained FineTuneOutput
	err = workflow.ExecuteActivity(trainOptions(ctx, cfg.FineTune.HeartbeatTimeout), ActivityFineTune, FineTuneInput{
		RunID: cfg.RunID, Round: number, BaseModelURI: w.carry.ModelURI, LabelSetURI: persisted.LabelSetURI,
		OutputPrefix: fmt.Sprintf("%s/rounds/%04d/train", cfg.OutputPrefix, number), Settings: cfg.FineTune,
	}).Get(ctx, &trained)
	if err != nil {
		return nil, fmt.Errorf("round %d: fine-tune: %w", number, err)
	}
	metrics.Steps, metrics.FinalLoss, metrics.CandidateURI = trained.Steps, trained.FinalLoss, trained.CheckpointURI

	// 6. Evaluate (the current model too, once, for the first comparison).
	w.setPhase(ctx, PhaseEvaluate)
	forgetting := ""
	if workflow.GetVersion(ctx, ChangeForgettingEval, workflow.DefaultVersion, 1) >= 1 {
		forgetting = cfg.ForgettingEvalURI
	}
	if w.carry.CurrentMetrics == nil {
		var base EvaluateOutput
		if err := workflow.ExecuteActivity(evalOptions(ctx), ActivityEvaluate, EvaluateInput{
			ModelURI: w.carry.ModelURI, EvalURI: cfg.EvalURI, ForgettingEvalURI: forgetting,
		}).Get(ctx, &base); err != nil {
			return nil, fmt.Errorf("round %d: evaluate current model %s: %w", number, w.carry.ModelURI, err)
		}
		w.carry.CurrentMetrics, w.carry.CurrentForgetting = base.Metrics, base.Forgetting
	}
	var cand EvaluateOutput
	if err := workflow.ExecuteActivity(evalOptions(ctx), ActivityEvaluate, EvaluateInput{
		ModelURI: trained.CheckpointURI, EvalURI: cfg.EvalURI, ForgettingEvalURI: forgetting,
	}).Get(ctx, &cand); err != nil {
		return nil, fmt.Errorf("round %d: evaluate candidate %s: %w", number, trained.CheckpointURI, err)
	}
	metrics.Metrics, metrics.Forgetting = cand.Metrics, cand.Forgetting

	// 7. Promotion decision.
	promote, note := Decide(cfg.Promotion, cand, EvaluateOutput{Metrics: w.carry.CurrentMetrics, Forgetting: w.carry.CurrentForgetting})
	metrics.PromotionNote = note

	// 8. Upload the checkpoint (and move the current pointer if promoted).
	w.setPhase(ctx, PhaseUploading)
	var up UploadCheckpointOutput
	if err := workflow.ExecuteActivity(storeOptions(ctx), ActivityUploadCheckpoint, UploadCheckpointInput{
		RunID: cfg.RunID, Round: number, CheckpointURI: trained.CheckpointURI, OutputPrefix: cfg.OutputPrefix,
		Name: fmt.Sprintf("round-%04d", number), Promote: promote, Metrics: cand.Metrics,
		CheckCurrent: true, ExpectedCurrentURI: w.carry.ModelURI,
	}).Get(ctx, &up); err != nil {
		return nil, fmt.Errorf("round %d: upload checkpoint: %w", number, err)
	}
	// The activity's answer, not the decision, says whether the run's
	// current model moved: another workflow (a Retrain) may have promoted
	// a model meanwhile. Older activity results always equal the decision.
	metrics.Promoted = up.Promoted
	switch {
	case up.Promoted:
		w.carry.ModelURI = up.ModelURI
		w.carry.CurrentMetrics, w.carry.CurrentForgetting = cand.Metrics, cand.Forgetting
		w.carry.RoundsWithoutPromotion = 0
	case up.Conflict != "" && up.CurrentModelURI != "":
		// Continue from the model the other workflow promoted; the next
		// round evaluates it as the new baseline.
		metrics.PromotionNote += "; " + up.Conflict
		w.carry.ModelURI = up.CurrentModelURI
		w.carry.CurrentMetrics, w.carry.CurrentForgetting = nil, nil
		w.carry.RoundsWithoutPromotion++
	default:
		w.carry.RoundsWithoutPromotion++
	}
	metrics.ModelURI = w.carry.ModelURI
	return w.nextRound(ctx, metrics, batch)
}

// nextRound records the finished round and stops the run or continues as
// new with the small carried state.
func (w *activeLearning) nextRound(ctx workflow.Context, metrics RoundMetrics, batch []Candidate) (*Result, error) {
	w.appendHistory(metrics)
	w.carry.LastBatch = make([]string, 0, len(batch))
	for _, c := range batch {
		w.carry.LastBatch = append(w.carry.LastBatch, c.ItemID)
	}
	w.carry.Round = metrics.Round + 1

	// 9. Stop, or continue as new with the small carried state.
	if reason := w.stopReason(); reason != "" {
		return w.finish(ctx, reason)
	}
	if err := w.settle(ctx); err != nil {
		return nil, err
	}
	next := w.cfg
	c := w.carry
	c.Late, c.LateDropped = w.late.records, w.late.dropped
	next.Resume = &c
	w.setPhase(ctx, "")
	// The next round may run on a newer build: versioned workers pin each
	// run (one round) to the build that started it, and the new run starts
	// on the deployment's current version. Unversioned workers ignore this.
	return nil, workflow.NewContinueAsNewErrorWithOptions(ctx,
		workflow.ContinueAsNewErrorOptions{InitialVersioningBehavior: workflow.ContinueAsNewVersioningBehaviorAutoUpgrade},
		ActiveLearningName, next)
}

// persistedLate forgets the first n late records and the dropped count
// that a PersistLabels stored. Before ChangeLabelSemantics every late
// record was forgotten, also those that arrived while the activity ran.
func (w *activeLearning) persistedLate(n, dropped int) {
	if w.version < 1 {
		w.late = lateLog{}
		return
	}
	w.late.records = append([]RawAnswer(nil), w.late.records[n:]...)
	w.late.dropped -= dropped
}

func (w *activeLearning) scorePool(ctx workflow.Context, number, k int) ([]ScoreShardOutput, error) {
	cfg := w.cfg
	names := make([]string, len(w.shares))
	for i, s := range w.shares {
		names[i] = s.Name
	}
	futures := make([]workflow.Future, cfg.PoolShards)
	actx := scoreOptions(ctx)
	for i := range futures {
		futures[i] = workflow.ExecuteActivity(actx, ActivityScoreShard, ScoreShardInput{
			RunID: cfg.RunID, Round: number, ModelURI: w.carry.ModelURI, PoolURI: cfg.PoolURI,
			Shard: i, NumShards: cfg.PoolShards, Strategies: names, TopM: k + len(w.carry.LastBatch),
			Seed: cfg.FineTune.Seed + int64(number), LabelSetURI: w.carry.LabelSetURI, Exclude: w.carry.LastBatch,
			ScoresKey: fmt.Sprintf("%s/rounds/%04d/scores/shard-%04d-of-%04d.jsonl", cfg.OutputPrefix, number, i, cfg.PoolShards),
			TargetURI: cfg.TargetURI,
		})
	}
	outs := make([]ScoreShardOutput, len(futures))
	for i, f := range futures {
		if err := f.Get(ctx, &outs[i]); err != nil {
			return nil, fmt.Errorf("round %d: score pool shard %d/%d: %w", number, i, cfg.PoolShards, err)
		}
	}
	return outs, nil
}

// waitForLabels blocks until every item reaches its quorum, the round is
// closed early, or the deadline passes with at least MinLabels labelled
// items; below the minimum it extends the deadline per the policy.
func (w *activeLearning) waitForLabels(ctx workflow.Context) (string, error) {
	cfg := w.cfg
	r := w.cur
	r.deadline = workflow.Now(ctx).Add(cfg.RoundDeadline.D())
	minLabels := func() int { return cfg.MinLabels }
	if w.version >= 1 {
		// The pool's last batch may be smaller than min_labels, and skips
		// for everyone shrink the round: never wait for more than exists.
		minLabels = func() int { return max(1, min(cfg.MinLabels, r.activeItems())) }
	}
	for {
		waitedFor := r.deadline
		wait := waitedFor.Sub(workflow.Now(ctx))
		done, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return r.complete() || r.closeAsked })
		if err != nil {
			return "", fmt.Errorf("round %d: waiting for labels: %w", r.number, err)
		}
		switch {
		case done && r.complete():
			return "quorum", nil
		case done:
			return "closed", nil
		case r.deadline.After(waitedFor):
			// A lead extended the round (ExtendRound) while it waited:
			// wait on for the new deadline. Runs that were never extended
			// never take this branch, so their command sequence is
			// unchanged.
			continue
		case r.labeledItems() >= minLabels():
			return "deadline", nil
		case cfg.Extension.MaxExtensions == 0 || r.extensions < cfg.Extension.MaxExtensions:
			r.extensions++
			r.deadline = r.deadline.Add(cfg.Extension.Extend.D())
			workflow.GetLogger(ctx).Info("deadline passed below the minimum; extending",
				"round", r.number, "labeled", r.labeledItems(), "min", minLabels(), "extension", r.extensions, "deadline", r.deadline)
		default:
			return "deadline-below-minimum", nil
		}
	}
}

func (w *activeLearning) stopReason() string {
	cfg := w.cfg
	switch {
	case w.cur != nil && w.cur.endRun:
		return fmt.Sprintf("run ended by the request that closed round %d", w.cur.number)
	case cfg.Budget.MaxRounds > 0 && w.carry.Round > cfg.Budget.MaxRounds:
		return "max rounds reached"
	case cfg.Budget.MaxLabels > 0 && w.carry.LabelsTotal >= cfg.Budget.MaxLabels:
		return "label budget spent"
	case cfg.Stop.TargetMetric != 0 && reached(cfg.Promotion, w.carry.CurrentMetrics, cfg.Stop.TargetMetric):
		return fmt.Sprintf("target %s %g reached", cfg.Promotion.Metric, cfg.Stop.TargetMetric)
	case cfg.Stop.Patience > 0 && w.carry.RoundsWithoutPromotion >= cfg.Stop.Patience:
		return fmt.Sprintf("no promotion for %d rounds", w.carry.RoundsWithoutPromotion)
	}
	return ""
}

func reached(rule PromotionRule, m map[string]float64, target float64) bool {
	v, ok := m[rule.Metric]
	if !ok {
		return false
	}
	if rule.LowerIsBetter {
		return v <= target
	}
	return v >= target
}

func (w *activeLearning) appendHistory(m RoundMetrics) {
	w.carry.History = append(w.carry.History, m)
	if n := len(w.carry.History); n > MaxCarriedHistory {
		w.carry.History = append([]RoundMetrics(nil), w.carry.History[n-MaxCarriedHistory:]...)
	}
}

// settle drains buffered signals and waits for running update handlers.
func (w *activeLearning) settle(ctx workflow.Context) error {
	w.drainSignals(ctx)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return fmt.Errorf("wait for message handlers: %w", err)
	}
	w.drainSignals(ctx)
	return nil
}

// finish completes the run, persisting any late answers first.
// setPhase moves the run to phase p ("" only ends the current one) and
// records how long the phase it leaves took as the metric
// clozeloop_round_phase_seconds{phase}, through the SDK's replay-safe
// metrics handler.
func (w *activeLearning) setPhase(ctx workflow.Context, p Phase) {
	now := workflow.Now(ctx)
	if !w.phaseStart.IsZero() && w.phase != "" && w.phase != PhaseDone {
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"phase": string(w.phase)}).
			Timer(MetricRoundPhase).Record(now.Sub(w.phaseStart))
	}
	w.phase, w.phaseStart = p, now
}

func (w *activeLearning) finish(ctx workflow.Context, reason string) (*Result, error) {
	if err := w.settle(ctx); err != nil {
		return nil, err
	}
	// The late records go to the round file of w.carry.Round; records that
	// come in while they are persisted are persisted again with all the
	// earlier ones (the same key, a superset), until none comes.
	persisted, persistedDropped := -1, -1
	for len(w.late.records) > 0 || w.late.dropped > 0 {
		late, dropped := w.late.records, w.late.dropped
		if len(late) == persisted && dropped == persistedDropped {
			w.late = lateLog{}
			break
		}
		var out PersistLabelsOutput
		err := workflow.ExecuteActivity(storeOptions(ctx), ActivityPersistLabels, PersistLabelsInput{
			RunID: w.cfg.RunID, Round: w.carry.Round, OutputPrefix: w.cfg.OutputPrefix,
			PrevLabelSet: w.carry.LabelSetURI, Late: late, Dropped: dropped,
		}).Get(ctx, &out)
		if err != nil {
			return nil, fmt.Errorf("persist late answers: %w", err)
		}
		w.carry.LabelSetURI = out.LabelSetURI
		if w.version < 1 {
			w.late = lateLog{}
			break
		}
		persisted, persistedDropped = len(late), dropped
		if err := w.settle(ctx); err != nil {
			return nil, err
		}
	}
	w.setPhase(ctx, PhaseDone)
	workflow.GetLogger(ctx).Info("active learning run finished", "run", w.cfg.RunID, "reason", reason)
	return &Result{
		RunID: w.cfg.RunID, Rounds: len(w.carry.History), ModelURI: w.carry.ModelURI, LabelSetURI: w.carry.LabelSetURI,
		LabelsTotal: w.carry.LabelsTotal, StopReason: reason, History: w.carry.History, Adaptation: w.carry.Adaptation,
	}, nil
}

// Decide applies the promotion rule to a candidate's and the current
// model's evaluations and says why.
func Decide(rule PromotionRule, cand, cur EvaluateOutput) (bool, string) {
	metric := rule.Metric
	if metric == "" {
		metric = "accuracy"
	}
	c, ok := cand.Metrics[metric]
	if !ok {
		return false, fmt.Sprintf("candidate has no %q metric", metric)
	}
	p, ok := cur.Metrics[metric]
	if !ok {
		return true, fmt.Sprintf("no current %s to compare; candidate %s=%.4f promoted", metric, metric, c)
	}
	gain := c - p
	if rule.LowerIsBetter {
		gain = p - c
	}
	if gain < rule.MinDelta {
		return false, fmt.Sprintf("%s %.4f vs current %.4f: gain %.4f below min delta %.4f", metric, c, p, gain, rule.MinDelta)
	}
	if cf, ok := cand.Forgetting[metric]; ok {
		if pf, ok := cur.Forgetting[metric]; ok {
			drop := pf - cf
			if rule.LowerIsBetter {
				drop = cf - pf
			}
			if drop > rule.ForgettingTolerance {
				return false, fmt.Sprintf("forgetting: %s on the forgetting set dropped %.4f, tolerance %.4f", metric, drop, rule.ForgettingTolerance)
			}
		}
	}
	return true, fmt.Sprintf("%s %.4f vs current %.4f: gain %.4f", metric, c, p, gain)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
