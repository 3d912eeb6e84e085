package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/acquire"
	"github.com/clozeloop/clozeloop/mlm"
)

// Seeding is how the initial labelled set is chosen.
type Seeding string

// The seeding methods.
const (
	// SeedRandom picks the initial items uniformly at random (seeded).
	SeedRandom Seeding = "random"
	// SeedSurprisal picks the items the starting model finds most
	// surprising (ALPS-style cold start) among a pool sample.
	SeedSurprisal Seeding = "surprisal"
)

// FineTuneMode says which model each round fine-tunes.
type FineTuneMode string

// The fine-tune modes; see the package documentation.
const (
	// FineTuneFromStart fine-tunes a fresh copy of the starting model on
	// all answers so far every round (the default).
	FineTuneFromStart FineTuneMode = "from-start"
	// FineTuneContinue keeps training the previous round's model on all
	// answers so far.
	FineTuneContinue FineTuneMode = "continue"
)

// DefaultMCDropout is the number of dropout samples used for BALD.
const DefaultMCDropout = 5

// DefaultTargetSample is the number of eval items whose mask embeddings
// form the target sample of the target-aware strategies.
const DefaultTargetSample = 200

// Config configures a simulation.
type Config struct {
	// Strategies are acquire strategy specs (see acquire.Parse).
	Strategies []string `json:"strategies"`
	// Seeds are the seeds to run every strategy with.
	Seeds []int64 `json:"seeds"`
	// Initial is the size of the initial labelled set (round 0).
	Initial int `json:"initial"`
	// Seeding chooses the initial set (default SeedRandom).
	Seeding Seeding `json:"seeding"`
	// Rounds is the number of acquisition rounds after round 0.
	Rounds int `json:"rounds"`
	// Batch is the number of items acquired per round.
	Batch int `json:"batch"`
	// PoolSample, when positive, scores a seeded random sample of that
	// many unlabelled items per round instead of the whole pool.
	PoolSample int `json:"pool_sample"`
	// MCDropout is the number of dropout samples for BALD (default
	// DefaultMCDropout); only strategies using BALD pay for it.
	MCDropout int `json:"mc_dropout"`
	// TargetSample is the number of eval items embedded as the target
	// sample of the target-aware strategies (default DefaultTargetSample),
	// a seeded sample of the eval items not measured on (Data.EvalRest),
	// or of the measured ones when every eval item is measured.
	TargetSample int `json:"target_sample"`
	// FineTune are the per-round fine-tune settings; FineTune.Seed is
	// replaced per run and round.
	FineTune FineTuneOptions `json:"finetune"`
	// Mode is the fine-tune mode (default FineTuneFromStart).
	Mode FineTuneMode `json:"finetune_mode"`
	// ReplayFile names the file of the general replay texts in
	// Data.Replay, for the record ("" for none): with a replay weight, the
	// replay texts are the labelled items with their answers filled in (as
	// in the workflow) plus these.
	ReplayFile string `json:"replay_file,omitempty"`
	// BootstrapResamples is the number of bootstrap resamples of the
	// paired confidence intervals (default DefaultBootstrapResamples);
	// BootstrapSeed seeds them.
	BootstrapResamples int    `json:"bootstrap_resamples"`
	BootstrapSeed      uint64 `json:"bootstrap_seed"`
	// Noise makes the oracle imperfect.
	Noise NoiseOptions `json:"noise"`
	// Answers, when set, is the task's closed answer set: the uncertainty
	// strategies then measure the model's distribution over these words
	// only (mlm.ScoreOptions.Answers). Evaluation is unchanged.
	Answers []string `json:"answers,omitempty"`
}

// Validate reports what is wrong with c, defaults applied: every problem,
// unknown strategies included.
func (c Config) Validate() error {
	if err := c.normalize(); err != nil {
		return err
	}
	for _, spec := range c.Strategies {
		if _, err := acquire.Parse(spec); err != nil {
			return err
		}
	}
	return nil
}

// normalize applies the defaults and checks the settings.
func (c *Config) normalize() error {
	if c.Seeding == "" {
		c.Seeding = SeedRandom
	}
	if c.Mode == "" {
		c.Mode = FineTuneFromStart
	}
	if c.MCDropout == 0 {
		c.MCDropout = DefaultMCDropout
	}
	if c.TargetSample == 0 {
		c.TargetSample = DefaultTargetSample
	}
	if c.BootstrapResamples == 0 {
		c.BootstrapResamples = DefaultBootstrapResamples
	}
	var errs []error
	if len(c.Strategies) == 0 {
		errs = append(errs, errors.New("no strategies"))
	}
	if len(c.Seeds) == 0 {
		errs = append(errs, errors.New("no seeds"))
	}
	if c.Initial < 0 || c.Rounds < 0 || c.PoolSample < 0 || c.MCDropout < 0 || c.BootstrapResamples < 0 || c.TargetSample < 0 {
		errs = append(errs, fmt.Errorf("initial (%d), rounds (%d), pool sample (%d), MC-dropout samples (%d), bootstrap resamples (%d) and target sample (%d) must not be negative",
			c.Initial, c.Rounds, c.PoolSample, c.MCDropout, c.BootstrapResamples, c.TargetSample))
	}
	if f := c.FineTune; !(f.ReplayWeight >= 0 && f.ReplayWeight <= 1) || !(f.WarmupRatio >= 0 && f.WarmupRatio < 1) {
		errs = append(errs, fmt.Errorf("replay weight %g must be in [0, 1] and warm-up ratio %g in [0, 1)", f.ReplayWeight, f.WarmupRatio))
	}
	if f := c.FineTune; f.Steps < 0 || f.Epochs < 0 || f.BatchSize < 0 || !(f.LR >= 0) {
		errs = append(errs, fmt.Errorf("fine-tune steps %d, epochs %d, batch size %d and learning rate %g must not be negative", f.Steps, f.Epochs, f.BatchSize, f.LR))
	}
	if c.Rounds > 0 && c.Batch <= 0 {
		errs = append(errs, fmt.Errorf("batch size %d: must be positive", c.Batch))
	}
	if c.Seeding != SeedRandom && c.Seeding != SeedSurprisal {
		errs = append(errs, fmt.Errorf("seeding %q: want random or surprisal", c.Seeding))
	}
	if c.Mode != FineTuneFromStart && c.Mode != FineTuneContinue {
		errs = append(errs, fmt.Errorf("fine-tune mode %q: want from-start or continue", c.Mode))
	}
	if err := c.Noise.Validate(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for _, s := range c.Strategies {
		if seen[s] {
			errs = append(errs, fmt.Errorf("strategy %q given twice", s))
		}
		seen[s] = true
	}
	return errors.Join(errs...)
}

// Timing is the wall time of each phase of a round, in seconds.
type Timing struct {
	// Load is the time spent loading the starting model.
	Load     float64 `json:"load_s"`
	Score    float64 `json:"score_s"`
	Select   float64 `json:"select_s"`
	FineTune float64 `json:"finetune_s"`
	Eval     float64 `json:"eval_s"`
}

// RoundResult is the state after one round.
type RoundResult struct {
	Round int `json:"round"`
	// Labels is the number of items sent to the oracle so far (skipped
	// ones included); Answered those it answered, Wrong those answered
	// wrongly on purpose (noise).
	Labels   int `json:"labels"`
	Answered int `json:"answered"`
	Wrong    int `json:"wrong"`
	// Acquired lists the items chosen this round, in selection order.
	Acquired []string `json:"acquired"`
	// Top1, Top5, MRR and NLL are the evaluation after the round (see
	// Accuracy).
	Top1     float64       `json:"top1"`
	Top5     float64       `json:"top5"`
	MRR      float64       `json:"mrr"`
	NLL      float64       `json:"nll"`
	FineTune FineTuneStats `json:"finetune"`
	Timing   Timing        `json:"timing"`
}

// RunResult is one strategy with one seed.
type RunResult struct {
	Strategy string        `json:"strategy"`
	Seed     int64         `json:"seed"`
	Rounds   []RoundResult `json:"rounds"`
	// AULCTop1, AULCTop5 and AULCMRR are the normalised areas under the
	// run's learning curves over its labelled rounds (1..Rounds; see
	// RunAULC).
	AULCTop1 float64 `json:"aulc_top1"`
	AULCTop5 float64 `json:"aulc_top5"`
	AULCMRR  float64 `json:"aulc_mrr"`
	// Bought describes the items the strategy chose (rounds 1..Rounds).
	Bought Bought `json:"bought"`
}

// Results is the outcome of a simulation.
type Results struct {
	Config Config `json:"config"`
	// PoolSize and EvalItems describe the data: EvalItems of the EvalTotal
	// items of the eval file, a random subset drawn with EvalSeed when
	// fewer (see EvalSubset). ReplayTexts counts the general replay texts.
	PoolSize    int   `json:"pool_size"`
	EvalItems   int   `json:"eval_items"`
	EvalTotal   int   `json:"eval_total"`
	EvalSeed    int64 `json:"eval_seed"`
	ReplayTexts int   `json:"replay_texts"`
	// TargetItems is the size of the target sample of the target-aware
	// strategies (0 when none ran); TargetFrom says where it was drawn:
	// "eval-rest" (eval items not measured on) or "eval" (the measured
	// items themselves, when the whole eval file is measured).
	TargetItems int    `json:"target_items,omitempty"`
	TargetFrom  string `json:"target_from,omitempty"`
	// Base is the starting model's metrics, before any fine-tuning.
	Base     Accuracy    `json:"base"`
	Runs     []RunResult `json:"runs"`
	Summary  []Summary   `json:"summary"`
	Started  time.Time   `json:"started"`
	Finished time.Time   `json:"finished"`
}

// needs says what a strategy reads from the candidates.
type needs struct {
	scores, embeddings, surprisal, target bool
	// domain: the strategy reads the pool items' domain evidence, the
	// log-likelihood ratio of their text to the target sample's.
	domain bool
	// labelled: the strategy starts from the labelled items' embeddings
	// (kcenter, hybrid).
	labelled  bool
	mcDropout int
}

func needsOf(s acquire.Strategy, mc int) needs {
	name := s.Name()
	n := needs{scores: name != "random"}
	n.target = strings.Contains(name, "target")
	n.labelled = strings.Contains(name, "kcenter") || strings.Contains(name, "hybrid")
	n.embeddings = n.target || n.labelled || strings.Contains(name, "density")
	n.surprisal = strings.Contains(name, "surprisal")
	n.domain = strings.Contains(name, "domain")
	if _, ok := s.(acquire.Domain); ok {
		n.scores = false // the text alone decides
	}
	if strings.Contains(name, "bald") {
		n.mcDropout = mc
	}
	return n
}

// Run runs every strategy with every seed on data and returns the results
// with their summary. log receives progress lines (nil: discard).
func Run(ctx context.Context, eng Engine, data *Data, cfg Config, log *slog.Logger) (*Results, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	if data == nil || len(data.Pool) == 0 || len(data.Eval) == 0 {
		return nil, errors.New("simulate: empty pool or eval set")
	}
	strategies := make([]acquire.Strategy, len(cfg.Strategies))
	for i, spec := range cfg.Strategies {
		s, err := acquire.Parse(spec)
		if err != nil {
			return nil, fmt.Errorf("simulate: %w", err)
		}
		strategies[i] = s
	}
	for _, it := range data.Pool {
		if _, ok := data.Gold[it.ID]; !ok {
			return nil, fmt.Errorf("simulate: pool item %q has no gold answer", it.ID)
		}
	}
	res := &Results{Config: cfg, PoolSize: len(data.Pool), EvalItems: len(data.Eval), EvalTotal: data.EvalTotal,
		EvalSeed: data.EvalSeed, ReplayTexts: len(data.Replay), Started: time.Now()}
	if res.EvalTotal < res.EvalItems {
		res.EvalTotal = res.EvalItems
	}
	ranks := FreqRanks(data.Gold)
	var target targetInfo
	for _, st := range strategies {
		if n := needsOf(st, 0); n.target || n.domain {
			target.items, res.TargetFrom = TargetSample(data, cfg.TargetSample, data.EvalSeed)
			res.TargetItems = len(target.items)
			log.Info("target sample for the target-aware strategies", "items", len(target.items), "from", res.TargetFrom)
			break
		}
	}
	for _, st := range strategies {
		if needsOf(st, 0).domain {
			ev, err := DomainEvidence(data.Pool, target.items)
			if err != nil {
				return nil, fmt.Errorf("simulate: %w", err)
			}
			target.evidence = ev
			break
		}
	}
	m, err := eng.Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("simulate: load starting model: %w", err)
	}
	res.Base, err = m.Evaluate(ctx, data.Eval)
	m.Close()
	if err != nil {
		return nil, fmt.Errorf("simulate: evaluate starting model: %w", err)
	}
	log.Info("starting model", "top1", res.Base.Top1, "top5", res.Base.Top5, "mrr", res.Base.MRR, "nll", res.Base.NLL,
		"eval_masks", res.Base.Masks, "eval_skipped", res.Base.Skipped)
	for i, s := range strategies {
		for _, seed := range cfg.Seeds {
			run, err := runOne(ctx, eng, data, cfg, cfg.Strategies[i], s, seed, ranks, &target, log)
			if err != nil {
				return nil, fmt.Errorf("simulate %s seed %d: %w", cfg.Strategies[i], seed, err)
			}
			res.Runs = append(res.Runs, run)
		}
	}
	res.Summary = Summarize(res.Runs, cfg.Strategies, res.Base, BootstrapOptions{Resamples: cfg.BootstrapResamples, Seed: cfg.BootstrapSeed})
	res.Finished = time.Now()
	return res, nil
}

// runState is the labelled set of one run.
type runState struct {
	labelled acquire.IDSet
	order    []string // labelled IDs in acquisition order
	examples []Example
	answered int
	wrong    int
}

func runOne(ctx context.Context, eng Engine, data *Data, cfg Config, spec string, strat acquire.Strategy, seed int64,
	ranks map[string]int, target *targetInfo, log *slog.Logger) (RunResult, error) {
	run := RunResult{Strategy: spec, Seed: seed}
	oracle, err := NewOracle(data.Gold, cfg.Noise, seed)
	if err != nil {
		return run, err
	}
	texts := make(map[string]string, len(data.Pool))
	sources := make(map[string]string, len(data.Pool))
	for _, it := range data.Pool {
		texts[it.ID] = it.Text
		if it.Source != "" {
			sources[it.ID] = it.Source
		}
	}
	st := &runState{labelled: acquire.IDSet{}}
	t := time.Now()
	model, err := eng.Start(ctx)
	if err != nil {
		return run, fmt.Errorf("load starting model: %w", err)
	}
	defer func() {
		if model != nil {
			model.Close()
		}
	}()
	need := needsOf(strat, cfg.MCDropout)
	for round := 0; round <= cfg.Rounds; round++ {
		if err := ctx.Err(); err != nil {
			return run, err
		}
		rr := RoundResult{Round: round}
		rr.Timing.Load = time.Since(t).Seconds()
		// 1. Choose the items of this round.
		var picked []string
		if round == 0 {
			picked, err = initialSet(ctx, model, data, cfg, seed, &rr.Timing)
		} else {
			picked, err = acquireBatch(ctx, model, data, cfg, strat, need, seed, round, st, texts, target, &rr.Timing)
		}
		if err != nil {
			return run, fmt.Errorf("round %d: %w", round, err)
		}
		if round > 0 && len(picked) == 0 {
			log.Info("pool exhausted", "strategy", spec, "seed", seed, "round", round)
			break
		}
		// 2. Ask the oracle.
		for _, id := range picked {
			if st.labelled.Has(id) {
				return run, fmt.Errorf("round %d: item %q selected twice", round, id)
			}
			a, err := oracle.Ask(id)
			if err != nil {
				return run, fmt.Errorf("round %d: %w", round, err)
			}
			st.labelled[id] = struct{}{}
			st.order = append(st.order, id)
			if a.Skipped {
				continue
			}
			st.answered++
			if a.Wrong {
				st.wrong++
			}
			st.examples = append(st.examples, Example{ID: id, Text: texts[id], Answers: a.Answers})
		}
		rr.Acquired, rr.Labels, rr.Answered, rr.Wrong = picked, len(st.order), st.answered, st.wrong
		// 3. Fine-tune on every answer so far.
		if cfg.Mode == FineTuneFromStart && round > 0 {
			t = time.Now()
			model.Close()
			model = nil
			if model, err = eng.Start(ctx); err != nil {
				return run, fmt.Errorf("round %d: reload starting model: %w", round, err)
			}
			rr.Timing.Load += time.Since(t).Seconds()
		}
		if len(st.examples) > 0 {
			t = time.Now()
			ft := cfg.FineTune
			ft.Seed = seed*1000 + int64(round)
			// Both modes train on every answer so far; they differ in the
			// model they start from (reloaded above or kept).
			examples := st.examples
			rr.FineTune, err = model.FineTune(ctx, examples, replayTexts(examples, data.Replay, ft.ReplayWeight), ft)
			if err != nil {
				return run, fmt.Errorf("round %d: fine-tune on %d examples: %w", round, len(examples), err)
			}
			rr.Timing.FineTune = time.Since(t).Seconds()
		}
		// 4. Evaluate.
		t = time.Now()
		acc, err := model.Evaluate(ctx, data.Eval)
		if err != nil {
			return run, fmt.Errorf("round %d: evaluate: %w", round, err)
		}
		rr.Timing.Eval = time.Since(t).Seconds()
		rr.Top1, rr.Top5, rr.MRR, rr.NLL = acc.Top1, acc.Top5, acc.MRR, acc.NLL
		run.Rounds = append(run.Rounds, rr)
		log.Info("round done", "strategy", spec, "seed", seed, "round", round, "labels", rr.Labels,
			"top1", fmt.Sprintf("%.4f", rr.Top1), "top5", fmt.Sprintf("%.4f", rr.Top5),
			"mrr", fmt.Sprintf("%.4f", rr.MRR), "nll", fmt.Sprintf("%.3f", rr.NLL),
			"score_s", fmt.Sprintf("%.2f", rr.Timing.Score), "finetune_s", fmt.Sprintf("%.2f", rr.Timing.FineTune),
			"eval_s", fmt.Sprintf("%.2f", rr.Timing.Eval))
		t = time.Now()
	}
	run.AULCTop1, run.AULCTop5, run.AULCMRR = RunAULC(run.Rounds)
	var bought []Item
	for _, r := range run.Rounds {
		if r.Round == 0 {
			continue
		}
		for _, id := range r.Acquired {
			bought = append(bought, Item{ID: id, Text: texts[id], Source: sources[id]})
		}
	}
	run.Bought = describeBought(bought, data.Gold, ranks, model.AnswerPieces)
	return run, nil
}

// replayTexts returns the replay texts of a fine-tune on examples: none
// without a replay weight; otherwise, as in the workflow's fine-tune, the
// examples with their answers filled in, followed by the general texts.
func replayTexts(examples []Example, general []string, weight float64) []string {
	if !(weight > 0) {
		return nil
	}
	ex := make([]mlm.Example, len(examples))
	for i, e := range examples {
		ex[i] = mlm.Example{Text: e.Text, Answers: e.Answers}
	}
	return append(mlm.ReplayTexts(ex), general...)
}

// RunAULC returns the normalised AULCs (top-1, top-5, MRR) of a run over
// its labelled rounds: round 0, which every strategy of a seed shares (the
// same initial set), is left out, so the areas compare only what the
// strategies chose. A run without labelled rounds gets round 0's values.
func RunAULC(rounds []RoundResult) (top1, top5, mrr float64) {
	if len(rounds) == 0 {
		return 0, 0, 0
	}
	if len(rounds) > 1 && rounds[0].Round == 0 {
		rounds = rounds[1:]
	}
	var xs, a1, a5, rr []float64
	for _, r := range rounds {
		xs = append(xs, float64(r.Labels))
		a1 = append(a1, r.Top1)
		a5 = append(a5, r.Top5)
		rr = append(rr, r.MRR)
	}
	top1, _ = AULC(xs, a1)
	top5, _ = AULC(xs, a5)
	mrr, _ = AULC(xs, rr)
	return top1, top5, mrr
}

// initialSet picks the round-0 items.
func initialSet(ctx context.Context, model Model, data *Data, cfg Config, seed int64, tm *Timing) ([]string, error) {
	if cfg.Initial == 0 {
		return nil, nil
	}
	var (
		cands []acquire.Candidate
		strat acquire.Strategy
	)
	switch cfg.Seeding {
	case SeedSurprisal:
		sample := poolSample(data.Pool, nil, cfg.PoolSample, seed, 0)
		t := time.Now()
		sur, err := model.Surprisal(ctx, sample)
		if err != nil {
			return nil, fmt.Errorf("surprisal seeding: %w", err)
		}
		tm.Score = time.Since(t).Seconds()
		if len(sur) != len(sample) {
			return nil, fmt.Errorf("surprisal seeding: %d values for %d items", len(sur), len(sample))
		}
		cands = make([]acquire.Candidate, len(sample))
		for i, it := range sample {
			cands[i] = acquire.Candidate{ID: it.ID, Surprisal: sur[i]}
		}
		strat = acquire.NewUncertainty(acquire.Surprisal)
	default:
		cands = make([]acquire.Candidate, len(data.Pool))
		for i, it := range data.Pool {
			cands[i] = acquire.Candidate{ID: it.ID}
		}
		strat = acquire.Random{}
	}
	t := time.Now()
	sel, err := strat.Select(ctx, cands, cfg.Initial, acquire.SelectOptions{Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("initial selection: %w", err)
	}
	tm.Select = time.Since(t).Seconds()
	return selectedIDs(sel), nil
}

// acquireBatch scores the (sampled) unlabelled pool and selects a batch.
func acquireBatch(ctx context.Context, model Model, data *Data, cfg Config, strat acquire.Strategy, need needs,
	seed int64, round int, st *runState, texts map[string]string, target *targetInfo, tm *Timing) ([]string, error) {
	sample := poolSample(data.Pool, st.labelled, cfg.PoolSample, seed, round)
	if len(sample) == 0 {
		return nil, nil
	}
	t := time.Now()
	var (
		cands []acquire.Candidate
		opts  = acquire.SelectOptions{Seed: seed*1000 + int64(round), Exclude: st.labelled}
		err   error
	)
	if need.scores && strat.Name() != "surprisal" {
		so := ScoreOptions{Embeddings: need.embeddings, MCDropout: need.mcDropout, Seed: seed*1000 + int64(round), Answers: cfg.Answers}
		if cands, err = model.Score(ctx, sample, so); err != nil {
			return nil, fmt.Errorf("score %d pool items: %w", len(sample), err)
		}
		if len(cands) > len(sample) {
			return nil, fmt.Errorf("score: %d results for %d items", len(cands), len(sample))
		}
	} else {
		cands = make([]acquire.Candidate, len(sample))
		for i, it := range sample {
			cands[i] = acquire.Candidate{ID: it.ID}
		}
	}
	if need.surprisal {
		sur, err := model.Surprisal(ctx, sample)
		if err != nil {
			return nil, fmt.Errorf("surprisal of %d pool items: %w", len(sample), err)
		}
		if len(sur) != len(sample) {
			return nil, fmt.Errorf("surprisal: %d values for %d items", len(sur), len(sample))
		}
		byID := make(map[string]float64, len(sample))
		for i, it := range sample {
			byID[it.ID] = sur[i]
		}
		for i := range cands {
			cands[i].Surprisal = byID[cands[i].ID]
		}
	}
	if need.labelled && len(st.order) > 0 {
		lab := make([]Item, len(st.order))
		for i, id := range st.order {
			lab[i] = Item{ID: id, Text: texts[id]}
		}
		lc, err := model.Score(ctx, lab, ScoreOptions{Embeddings: true, Seed: seed})
		if err != nil {
			return nil, fmt.Errorf("embed %d labelled items: %w", len(lab), err)
		}
		for _, c := range lc {
			if len(c.Embedding) > 0 {
				opts.Labelled = append(opts.Labelled, c.Embedding)
			}
		}
	}
	if need.target {
		// The target sample is embedded by the current model, as the pool.
		tc, err := model.Score(ctx, target.items, ScoreOptions{Embeddings: true, Seed: seed})
		if err != nil {
			return nil, fmt.Errorf("embed %d target items: %w", len(target.items), err)
		}
		for _, c := range tc {
			if len(c.Embedding) > 0 {
				opts.Target = append(opts.Target, c.Embedding)
			}
		}
	}
	if need.domain {
		for i := range cands {
			cands[i].Domain = target.evidence[cands[i].ID]
		}
	}
	tm.Score = time.Since(t).Seconds()
	t = time.Now()
	sel, err := strat.Select(ctx, cands, cfg.Batch, opts)
	if err != nil {
		return nil, fmt.Errorf("select with %s: %w", strat.Name(), err)
	}
	tm.Select = time.Since(t).Seconds()
	return selectedIDs(sel), nil
}

// targetInfo is what the target-aware strategies know of the target: the
// target sample, and each pool item's domain evidence (by ID) when a
// strategy reads it.
type targetInfo struct {
	items    []Item
	evidence map[string]float64
}

// DomainEvidence returns each pool item's evidence of being like the
// target sample's items, by ID: the log-likelihood ratio of its words
// under the sample's unigram model against the pool's
// (dataset.DomainScorer.Evidence, the pool being the corpus).
func DomainEvidence(pool []Item, target []Item) (map[string]float64, error) {
	texts := make([]string, len(pool))
	for i, it := range pool {
		texts[i] = it.Text
	}
	d, err := targetScorer(target, texts)
	if err != nil {
		return nil, fmt.Errorf("domain evidence: %w", err)
	}
	out := make(map[string]float64, len(pool))
	for _, it := range pool {
		out[it.ID] = d.Evidence(it.Text)
	}
	return out, nil
}

// TargetSample returns the target sample of the target-aware strategies
// (and of the target-aware adaptation, AdaptOptions.TargetShare):
// up to n eval items, preferably not among those measured on (so that the
// strategy is not steered by the very items it is scored on), drawn as a
// seeded uniform sample; and where they came from.
func TargetSample(data *Data, n int, seed int64) ([]Item, string) {
	from, src := data.EvalRest, "eval-rest"
	if len(from) == 0 {
		from, src = data.Eval, "eval"
	}
	sub, _ := EvalSubset(from, n, seed+1)
	out := make([]Item, len(sub))
	for i, it := range sub {
		out[i] = Item{ID: it.ID, Text: it.Text}
	}
	return out, src
}

func selectedIDs(sel []acquire.Selection) []string {
	ids := make([]string, len(sel))
	for i, s := range sel {
		ids[i] = s.ID
	}
	return ids
}

// poolSample returns the pool items not in exclude: all of them when n ≤ 0
// or no more than n remain, otherwise the n items with the smallest hash of
// (seed, round, ID), a seeded uniform sample without replacement that does
// not depend on the pool's order.
func poolSample(pool []Item, exclude acquire.IDSet, n int, seed int64, round int) []Item {
	type keyed struct {
		h  float64
		it Item
	}
	var all []keyed
	for _, it := range pool {
		if exclude.Has(it.ID) {
			continue
		}
		all = append(all, keyed{hashUniform(seed, "sample", it.ID, round), it})
	}
	if n > 0 && len(all) > n {
		sort.Slice(all, func(i, j int) bool {
			if all[i].h != all[j].h {
				return all[i].h < all[j].h
			}
			return all[i].it.ID < all[j].it.ID
		})
		all = all[:n]
	}
	out := make([]Item, len(all))
	for i, k := range all {
		out[i] = k.it
	}
	return out
}

// strategyOrder returns the distinct strategies of runs, in first-seen order.
func strategyOrder(runs []RunResult) []string {
	var out []string
	for _, r := range runs {
		if !slices.Contains(out, r.Strategy) {
			out = append(out, r.Strategy)
		}
	}
	return out
}
