package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/tokenize"
)

func pretrainCmd() command {
	return command{
		name:    "pretrain",
		summary: "pretrain a masked language model on raw text, from scratch or continued",
		run:     runPretrain,
	}
}

// checkpointsDir is the folder under --out that holds resumable
// checkpoints while a training command runs.
const checkpointsDir = "checkpoints"

// trainingArgsFile records how a model was trained.
const trainingArgsFile = "training_args.json"

// pretrainConfig returns the named model size for a vocabulary of vocab
// tokens: tiny (2 layers, hidden 128), small (4 layers, hidden 256, 4
// heads, intermediate 1024, 128 positions) or base (bert-base).
func pretrainConfig(name string, vocab int) (mlm.Config, error) {
	switch name {
	case "tiny":
		return mlm.TinyConfig(vocab), nil
	case "small":
		c := mlm.TinyConfig(vocab)
		c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings = 4, 256, 4, 1024, 128
		return c, nil
	case "base":
		c := mlm.BERTBaseConfig()
		c.VocabSize = vocab
		return c, nil
	}
	return mlm.Config{}, usagef("--config %q: want tiny, small or base", name)
}

// pretrainReport is what pretrain prints and records in training_args.json.
type pretrainReport struct {
	Command      string             `json:"command"`
	Corpus       string             `json:"corpus"`
	Init         string             `json:"init,omitempty"`
	Config       string             `json:"config,omitempty"`
	VocabSize    int                `json:"vocab_size"`
	Out          string             `json:"out"`
	Steps        int                `json:"steps"`
	Batch        int                `json:"batch"`
	SeqLen       int                `json:"seq_len"`
	Packing      string             `json:"packing"`
	LR           float64            `json:"lr"`
	Warmup       int                `json:"warmup"`
	Seed         uint64             `json:"seed"`
	Threads      int                `json:"threads"`
	Device       string             `json:"device"`
	Started      time.Time          `json:"started"`
	Finished     time.Time          `json:"finished"`
	Seconds      float64            `json:"seconds"`
	TokensPerSec float64            `json:"tokens_per_sec"`
	Result       mlm.PretrainResult `json:"result"`
}

func runPretrain(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "pretrain", "--corpus FILE [--init DIR | --config tiny|small|base --vocab-size 8000] --out DIR --steps N [flags]")
	corpus := fs.String("corpus", "", "raw text, one text per line")
	initDir := fs.String("init", "", "continue pretraining this model directory (or Hugging Face Hub model hf://org/name[@revision]) instead of creating a new model")
	cfgName := fs.String("config", "small", "size of a new model: tiny, small (4 layers, hidden 256) or base (bert-base)")
	vocab := fs.Int("vocab-size", 8000, "WordPiece vocabulary size of a new model (trained on the corpus)")
	out := fs.String("out", "", "output model directory (Hugging Face files, training_args.json; checkpoints/ while training)")
	steps := fs.Int("steps", 0, "optimizer steps")
	batch := fs.Int("batch", 32, "sequences per step")
	seqLen := fs.Int("seq-len", 128, "tokens per packed sequence (with --packing lines: at most), [CLS] and [SEP] included")
	packing := fs.String("packing", "pack", "pack: lines joined into sequences of --seq-len tokens; lines: one sequence per line, batched by length (better for short unrelated lines)")
	lr := fs.Float64("lr", 5e-4, "peak learning rate")
	warmup := fs.Int("warmup", 0, "warm-up steps (0: 6% of --steps)")
	seed := fs.Uint64("seed", 1, "seed for initialisation, data order, masking and dropout")
	threads := fs.Int("threads", 0, "libtorch threads (0: number of CPUs)")
	device := fs.String("device", "auto", "auto, cpu, cuda or cuda:N")
	every := fs.Int("checkpoint-every", 200, "write a resumable checkpoint every N steps (0: only at the end)")
	resume := fs.Bool("resume", false, "continue from the checkpoint in --out/checkpoints")
	keep := fs.Bool("keep-checkpoints", false, "keep --out/checkpoints after a successful run")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlagsOnly(fs, args, "corpus", "out"); err != nil {
		return err
	}
	switch {
	case *steps <= 0:
		return usagef("--steps must be positive")
	case *batch <= 0 || *seqLen < 3 || *lr <= 0 || *warmup < 0 || *every < 0 || *threads < 0:
		return usagef("--batch, --lr must be positive, --seq-len at least 3, --warmup, --checkpoint-every, --threads not negative")
	case *packing != string(mlm.PackSequences) && *packing != string(mlm.PackLines):
		return usagef("--packing must be pack or lines, not %q", *packing)
	case *initDir == "" && *vocab < 10:
		return usagef("--vocab-size %d is too small", *vocab)
	}
	if _, err := os.Stat(*corpus); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	ckDir := filepath.Join(*out, checkpointsDir)
	latest, _, hasCkpt, err := mlm.LatestCheckpoint(ckDir)
	if err != nil {
		return err
	}
	if hasCkpt && !*resume {
		return usagef("%s holds a checkpoint: pass --resume to continue it, or choose another --out", ckDir)
	}
	opts := mlm.Options{Device: *device, Threads: *threads, Seed: *seed}
	rep := pretrainReport{
		Command: "clozeloop pretrain " + strings.Join(args, " "), Corpus: *corpus, Init: *initDir, Out: *out,
		Steps: *steps, Batch: *batch, SeqLen: *seqLen, Packing: *packing, LR: *lr, Warmup: *warmup, Seed: *seed, Threads: *threads,
		Device: *device, Started: time.Now().UTC(),
	}
	var m *mlm.Model
	switch {
	case hasCkpt:
		// The checkpoint carries the configuration and tokenizer of the run
		// (trained on the corpus for a new model); Pretrain restores the
		// weights and optimizer state from it.
		env.log.Info("resuming", "checkpoint", latest)
		m, err = mlm.Load(ctx, latest, opts)
	case *initDir != "":
		var dir string
		if dir, _, err = resolveModel(ctx, env, *initDir); err == nil {
			m, err = mlm.Load(ctx, dir, opts)
		}
	default:
		rep.Config = *cfgName
		if _, err := pretrainConfig(*cfgName, *vocab); err != nil {
			return err
		}
		env.log.Info("training WordPiece vocabulary", "corpus", *corpus, "vocab_size", *vocab)
		tok, terr := tokenize.TrainWordPiece(ctx, mlm.FileLines(*corpus), tokenize.TrainOptions{VocabSize: *vocab, Lowercase: true})
		if terr != nil {
			return terr
		}
		cfg, _ := pretrainConfig(*cfgName, tok.VocabSize())
		m, err = mlm.New(cfg, tok, opts)
	}
	if err != nil {
		return err
	}
	defer m.Close()
	if hasCkpt && *initDir == "" {
		rep.Config = *cfgName
	}
	rep.VocabSize = m.Config().VocabSize
	if *seqLen > m.Config().MaxSequenceLength() {
		return usagef("--seq-len %d exceeds the model's maximum length %d", *seqLen, m.Config().MaxSequenceLength())
	}
	bar := newProgressBar(env.stderr, "pretrain")
	res, err := mlm.Pretrain(ctx, m, mlm.FileLines(*corpus), mlm.PretrainOptions{
		Steps: *steps, BatchSize: *batch, SeqLen: *seqLen, Packing: mlm.Packing(*packing), LR: *lr, Warmup: *warmup, Seed: *seed,
		CheckpointDir: ckDir, CheckpointEvery: *every,
	}, bar.update)
	bar.done()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w (run again with --resume to continue from the last checkpoint in %s)", err, ckDir)
		}
		return err
	}
	if err := m.Save(ctx, *out); err != nil {
		return err
	}
	rep.Finished = time.Now().UTC()
	rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
	rep.Result = res
	if res.Duration > 0 {
		rep.TokensPerSec = float64(res.Tokens) / res.Duration.Seconds()
	}
	if err := writeTrainingArgs(*out, rep); err != nil {
		return err
	}
	if !*keep {
		if err := os.RemoveAll(ckDir); err != nil {
			return fmt.Errorf("remove checkpoints: %w", err)
		}
	}
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	fmt.Fprintf(env.stdout, "pretrained %s: %d steps (resumed from %d), %d sequences of up to %d tokens, final loss %.4f, %.0f tokens/s, %s\n",
		*out, res.Steps, res.ResumedFrom, res.Sequences, *seqLen, res.FinalLoss, rep.TokensPerSec, res.Duration.Round(time.Second))
	return nil
}

// writeTrainingArgs writes v as dir/training_args.json.
func writeTrainingArgs(dir string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", trainingArgsFile, err)
	}
	path := filepath.Join(dir, trainingArgsFile)
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// progressBar draws a one-line text progress bar with \r: step, loss,
// tokens/s and ETA.
type progressBar struct {
	w       io.Writer
	label   string
	start   time.Time
	last    time.Time
	started int // step of the first update (resumed runs start late)
	drawn   bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, start: time.Now(), started: -1}
}

func (b *progressBar) update(p mlm.Progress) {
	now := time.Now()
	if b.started < 0 {
		b.started = p.Step - 1
	}
	if p.Step < p.TotalSteps && now.Sub(b.last) < 200*time.Millisecond {
		return
	}
	b.last = now
	const width = 30
	filled := width * p.Step / max(1, p.TotalSteps)
	eta := "?"
	if done := p.Step - b.started; done > 0 {
		left := time.Duration(float64(now.Sub(b.start)) / float64(done) * float64(p.TotalSteps-p.Step))
		eta = left.Round(time.Second).String()
	}
	fmt.Fprintf(b.w, "\r%s %d/%d [%s%s] loss %.4f  %.0f tok/s  lr %.2e  ETA %s ", b.label, p.Step, p.TotalSteps,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.Loss, p.TokensPerSec, p.LR, eta)
	b.drawn = true
}

// done ends the bar's line.
func (b *progressBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}
