package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/sim"
	"github.com/clozeloop/clozeloop/workflows"
)

func simulateCmd() command {
	return command{
		name:    "simulate",
		summary: "compare acquisition strategies in an active-learning simulation with an oracle annotator",
		run:     runSimulate,
	}
}

// simulateOutput is what simulate --json prints.
type simulateOutput struct {
	Out string `json:"out"`
	// EvalItems of EvalTotal eval items were measured on (a random subset
	// drawn with EvalSeed when fewer).
	EvalItems int           `json:"eval_items"`
	EvalTotal int           `json:"eval_total"`
	EvalSeed  int64         `json:"eval_seed"`
	Base      sim.Accuracy  `json:"base"`
	Summary   []sim.Summary `json:"summary"`
	// Adapt is the adaptation of the starting model (--adapt-steps).
	Adapt *sim.AdaptRecord `json:"adapt,omitempty"`
}

func runSimulate(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 && args[0] == "compare" {
		return runSimulateCompare(env, args[1:])
	}
	fs := newFlagSet(env, "simulate", "--model DIR --data DIR --out DIR [--strategies random,entropy,margin,hybrid] [flags]")
	modelDir := fs.String("model", "", "starting model directory (config.json, weights, tokenizer), or a Hugging Face Hub model hf://org/name[@revision]")
	dataDir := fs.String("data", "", "data folder with pool.jsonl, oracle.jsonl and eval.jsonl (from 'clozeloop data build')")
	out := fs.String("out", "", "output folder for results.json, results.csv, summary.csv and the plots")
	strategies := fs.String("strategies", "random,entropy,margin,hybrid", "strategies to compare, comma-separated (separate with ';' when one has commas, e.g. a mix entropy:0.8,random:0.2 or density(by=margin,beta=2)); also density, target, domain, domain(by=random), kcenter, bald, surprisal")
	seeds := fs.Int("seeds", 5, "number of seeds per strategy (seeds 1..N); every strategy runs the same seeds, paired with random's")
	firstSeed := fs.Int64("first-seed", 1, "first seed")
	rounds := fs.Int("rounds", 5, "acquisition rounds after the initial set")
	batch := fs.Int("batch", 20, "items acquired per round")
	initial := fs.Int("initial", 20, "size of the initial labelled set")
	seeding := fs.String("seeding", "random", "how to choose the initial set: random or surprisal (ALPS-style)")
	poolSample := fs.Int("pool-sample", 2000, "score a random sample of this many unlabelled items per round (0: the whole pool)")
	evalLimit := fs.Int("eval-limit", 500, "evaluate on a seeded random subset of N eval items, the same for every strategy and seed (0: all)")
	evalSeed := fs.Int64("eval-seed", 1, "seed of the --eval-limit subset")
	mode := fs.String("finetune-mode", "continue", "from-start: fine-tune a fresh copy of the starting model on all labels every round (order-independent); continue: keep training the previous round's model on all labels (as a long-running workflow does)")
	steps := fs.Int("finetune-steps", 0, "optimizer steps per fine-tune (0: use --finetune-epochs)")
	epochs := fs.Int("finetune-epochs", workflows.DefaultFineTuneEpochs, "passes over the labels per fine-tune (ignored with --finetune-steps)")
	ftBatch := fs.Int("finetune-batch", workflows.DefaultFineTuneBatchSize, "examples per fine-tune step")
	lr := fs.Float64("lr", workflows.DefaultFineTuneLearningRate, "peak fine-tune learning rate (run config fine_tune.learning_rate)")
	warmup := fs.Float64("warmup-ratio", workflows.DefaultFineTuneWarmupRatio, "share of the fine-tune steps spent warming up the learning rate (run config fine_tune.warmup_ratio)")
	replayWeight := fs.Float64("replay-weight", 0, "masked-LM replay weight in [0, 1] (run config fine_tune.replay_weight): replays the labelled items with their answers filled in, as the workflow does, plus the --replay texts")
	replayFile := fs.String("replay", "", "general replay text file, one text per line (e.g. DATA/raw.txt), used besides the labelled items when --replay-weight > 0")
	replayMax := fs.Int("replay-max", 5000, "keep a seeded random sample of at most this many --replay lines (0: all)")
	bootSeed := fs.Uint64("bootstrap-seed", 1, "seed of the bootstrap confidence intervals")
	bootN := fs.Int("bootstrap-resamples", sim.DefaultBootstrapResamples, "bootstrap resamples of the paired confidence intervals")
	mc := fs.Int("mc-dropout", sim.DefaultMCDropout, "MC-dropout samples for BALD")
	targetSample := fs.Int("target-sample", sim.DefaultTargetSample, "eval items taken as the target sample of the target and domain strategies (drawn from the eval items --eval-limit leaves unmeasured, when there are any)")
	answers := fs.String("answers", "", "the task's closed answer set, comma-separated words or @FILE (one word per line; for data build supersense, the verbaliser words in its stats.json): the uncertainty strategies then measure the model's distribution over these words only")
	noiseWrong := fs.Float64("noise-wrong", 0, "share of items the oracle answers with a wrong gold word")
	noiseSkip := fs.Float64("noise-skip", 0, "share of items the oracle skips")
	threads := fs.Int("threads", 0, "libtorch threads (0: number of CPUs)")
	device := fs.String("device", "auto", "auto, cpu, cuda or cuda:N")
	scoreBatch := fs.Int("score-batch", 32, "items per forward pass when scoring and evaluating")
	var adapt sim.AdaptOptions
	fs.IntVar(&adapt.Steps, "adapt-steps", 0, "adapt the starting model first: this many steps of masked-LM pretraining on the pool's text, once for all strategies and seeds, cached in <out>/"+sim.AdaptDir+" (0: no adaptation)")
	fs.Float64Var(&adapt.LR, "adapt-lr", 5e-4, "peak learning rate of the adaptation")
	fs.IntVar(&adapt.BatchSize, "adapt-batch", 32, "texts per adaptation step")
	fs.IntVar(&adapt.SeqLen, "adapt-seq-len", 0, "longest adaptation sequence in tokens (0: the model's maximum)")
	fs.Float64Var(&adapt.MaskProb, "adapt-mask-prob", 0.15, "share of tokens predicted in adaptation")
	fs.Int64Var(&adapt.Seed, "adapt-seed", 1, "seed of the adaptation")
	fs.Float64Var(&adapt.TargetShare, "adapt-target-share", 0, "adapt on this share of the pool's texts only, those most like the target sample (--target-sample; cross-entropy difference of word unigrams), for a mostly off-target pool (0: the whole pool)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := parseFlagsOnly(fs, args, "model", "data", "out"); err != nil {
		return err
	}
	if *seeds <= 0 {
		return usagef("--seeds %d: must be positive", *seeds)
	}
	if adapt.Steps < 0 {
		return usagef("--adapt-steps %d: must not be negative", adapt.Steps)
	}
	if !(adapt.TargetShare >= 0 && adapt.TargetShare <= 1) {
		return usagef("--adapt-target-share %g: must be within [0, 1] (0: the whole pool)", adapt.TargetShare)
	}
	if adapt.TargetShare > 0 && adapt.Steps == 0 {
		return usagef("--adapt-target-share needs --adapt-steps")
	}
	sep := ","
	if strings.Contains(*strategies, ";") {
		sep = ";"
	}
	var strats []string
	for _, s := range strings.Split(*strategies, sep) {
		if s = strings.TrimSpace(s); s != "" {
			strats = append(strats, s)
		}
	}
	if *replayFile != "" && !(*replayWeight > 0) {
		return usagef("--replay %s needs a positive --replay-weight", *replayFile)
	}
	if *replayMax < 0 || *evalLimit < 0 {
		return usagef("--replay-max %d and --eval-limit %d must not be negative", *replayMax, *evalLimit)
	}
	answerSet, err := parseAnswers(*answers)
	if err != nil {
		return usagef("--answers: %v", err)
	}
	cfg := sim.Config{
		Answers:    answerSet,
		Strategies: strats, Initial: *initial, Seeding: sim.Seeding(*seeding), Rounds: *rounds, Batch: *batch,
		PoolSample: *poolSample, MCDropout: *mc, TargetSample: *targetSample, Mode: sim.FineTuneMode(*mode),
		FineTune: sim.FineTuneOptions{Steps: *steps, Epochs: *epochs, LR: *lr, BatchSize: *ftBatch,
			WarmupRatio: *warmup, ReplayWeight: *replayWeight},
		Noise:              sim.NoiseOptions{WrongRate: *noiseWrong, SkipRate: *noiseSkip},
		ReplayFile:         *replayFile,
		BootstrapResamples: *bootN, BootstrapSeed: *bootSeed,
	}
	for i := 0; i < *seeds; i++ {
		cfg.Seeds = append(cfg.Seeds, *firstSeed+int64(i))
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	data, err := sim.LoadData(ctx, *dataDir, sim.LoadOptions{EvalLimit: *evalLimit, EvalSeed: *evalSeed})
	if err != nil {
		return err
	}
	if *replayFile != "" {
		if data.Replay, err = sim.LoadReplay(ctx, *replayFile, *replayMax, *evalSeed); err != nil {
			return err
		}
	}
	env.log.Info("simulation data", "pool", len(data.Pool), "eval", len(data.Eval), "eval_total", data.EvalTotal,
		"replay_texts", len(data.Replay), "strategies", strings.Join(strats, " | "), "seeds", *seeds)
	dir, _, err := resolveModel(ctx, env, *modelDir)
	if err != nil {
		return err
	}
	*modelDir = dir
	mopts := mlm.Options{Device: *device, Threads: *threads}
	var adapted *sim.AdaptRecord
	if adapt.Steps > 0 {
		var target []sim.Item
		if adapt.TargetShare > 0 {
			n := *targetSample
			if n == 0 {
				n = sim.DefaultTargetSample
			}
			target, _ = sim.TargetSample(data, n, data.EvalSeed)
		}
		rec, err := sim.Adapt(ctx, *modelDir, mopts, data.Pool, target, adapt, *out, env.log)
		if err != nil {
			return err
		}
		adapted, *modelDir = &rec, rec.Dir
	}
	eng := &sim.MLMEngine{Dir: *modelDir, Options: mopts, BatchSize: *scoreBatch}
	res, err := sim.Run(ctx, eng, data, cfg, env.log)
	if err != nil {
		return err
	}
	if err := sim.WriteOutputs(*out, res); err != nil {
		return err
	}
	env.log.Info("simulation written", "out", *out)
	if *asJSON {
		return writeJSON(env.stdout, simulateOutput{Out: *out, EvalItems: res.EvalItems, EvalTotal: res.EvalTotal,
			EvalSeed: res.EvalSeed, Base: res.Base, Summary: res.Summary, Adapt: adapted})
	}
	return sim.WriteTable(env.stdout, res)
}

// simulateCompareOutput is what simulate compare --json prints.
type simulateCompareOutput struct {
	A           string           `json:"a"`
	B           string           `json:"b"`
	BaseA       sim.Accuracy     `json:"base_a"`
	BaseB       sim.Accuracy     `json:"base_b"`
	Comparisons []sim.Comparison `json:"comparisons"`
}

// runSimulateCompare pairs two simulations' runs seed by seed (A − B), to
// measure what differs between them, such as an adaptation phase.
func runSimulateCompare(env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "simulate compare", "[--json] A B   (output folders or results.json files of two simulations)")
	bootN := fs.Int("bootstrap-resamples", sim.DefaultBootstrapResamples, "bootstrap resamples of the paired confidence intervals")
	bootSeed := fs.Uint64("bootstrap-seed", 1, "seed of the bootstrap confidence intervals")
	asJSON := fs.Bool("json", false, "print the comparison as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError{fmt.Errorf("simulate compare needs two simulations, A and B; got %d arguments", fs.NArg())}
	}
	if *bootN < 1 {
		return usageError{fmt.Errorf("--bootstrap-resamples must be at least 1, got %d", *bootN)}
	}
	a, err := sim.ReadResults(fs.Arg(0))
	if err != nil {
		return err
	}
	b, err := sim.ReadResults(fs.Arg(1))
	if err != nil {
		return err
	}
	cmp, err := sim.Compare(a, b, sim.BootstrapOptions{Resamples: *bootN, Seed: *bootSeed})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, simulateCompareOutput{A: fs.Arg(0), B: fs.Arg(1), BaseA: a.Base, BaseB: b.Base, Comparisons: cmp})
	}
	return sim.WriteComparison(env.stdout, a, b, cmp)
}

// parseAnswers reads --answers: comma-separated words, or @FILE with one
// word per line (blank lines and lines starting with # skipped).
func parseAnswers(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var words []string
	if path, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				words = append(words, line)
			}
		}
	} else {
		for _, w := range strings.Split(v, ",") {
			if w = strings.TrimSpace(w); w != "" {
				words = append(words, w)
			}
		}
	}
	if len(words) < 2 {
		return nil, fmt.Errorf("%q gives %d word(s); a closed answer set needs at least 2", v, len(words))
	}
	return words, nil
}
