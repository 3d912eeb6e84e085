package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/mlm"
)

func finetuneCmd() command {
	return command{
		name:    "finetune",
		summary: "fine-tune a fill-mask model on annotated cloze items",
		run:     runFinetune,
	}
}

// finetuneReport is what finetune prints and records in training_args.json.
type finetuneReport struct {
	Command      string              `json:"command"`
	Model        string              `json:"model"`
	Data         string              `json:"data"`
	Replay       string              `json:"replay,omitempty"`
	Out          string              `json:"out"`
	Options      mlm.FineTuneOptions `json:"options"`
	Started      time.Time           `json:"started"`
	Finished     time.Time           `json:"finished"`
	TokensPerSec float64             `json:"tokens_per_sec"`
	Result       mlm.FineTuneResult  `json:"result"`
}

func runFinetune(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "finetune", "--model DIR --data FILE.jsonl --out DIR [--replay FILE --replay-weight W] [flags]")
	modelDir := fs.String("model", "", "model directory to start from, or a Hugging Face Hub model hf://org/name[@revision]")
	data := fs.String("data", "", `JSONL of annotated items: {"text": "... [MASK] ...", "answers": ["word"]} ("gold" is accepted for "answers")`)
	replay := fs.String("replay", "", "unlabelled texts, one per line, for masked-LM replay against forgetting")
	out := fs.String("out", "", "output model directory (checkpoints/ while training)")
	var o mlm.FineTuneOptions
	fs.IntVar(&o.Epochs, "epochs", 3, "passes over the items (ignored with --max-steps)")
	fs.IntVar(&o.MaxSteps, "max-steps", 0, "optimizer steps (0: use --epochs)")
	fs.IntVar(&o.BatchSize, "batch", 16, "items per micro-batch")
	fs.IntVar(&o.GradAccum, "grad-accum", 1, "micro-batches per optimizer step")
	fs.Float64Var(&o.LR, "lr", 5e-5, "peak learning rate")
	fs.Float64Var(&o.WarmupRatio, "warmup-ratio", 0.1, "share of the steps spent warming up")
	fs.Float64Var(&o.ReplayWeight, "replay-weight", 0.5, "weight of the replay loss (with --replay)")
	fs.IntVar(&o.ReplayBatchSize, "replay-batch", 0, "replay texts per micro-batch (0: --batch)")
	fs.Float64Var(&o.AdamW.WeightDecay, "weight-decay", 0.01, "AdamW weight decay (biases and LayerNorm excluded; negative for none)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed for data order, replay masking and dropout")
	fs.IntVar(&o.CheckpointEvery, "checkpoint-every", 100, "write a resumable checkpoint every N steps (0: only at the end)")
	threads := fs.Int("threads", 0, "libtorch threads (0: number of CPUs)")
	device := fs.String("device", "auto", "auto, cpu, cuda or cuda:N")
	resume := fs.Bool("resume", false, "continue from the checkpoint in --out/checkpoints")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlagsOnly(fs, args, "model", "data", "out"); err != nil {
		return err
	}
	if *replay == "" {
		o.ReplayWeight = 0
	}
	examples, err := readExamples(*data)
	if err != nil {
		return err
	}
	var texts []string
	if *replay != "" {
		if texts, err = readLines(*replay); err != nil {
			return err
		}
	}
	ckDir := filepath.Join(*out, checkpointsDir)
	_, _, hasCkpt, err := mlm.LatestCheckpoint(ckDir)
	if err != nil {
		return err
	}
	if hasCkpt && !*resume {
		return usagef("%s holds a checkpoint: pass --resume to continue it, or choose another --out", ckDir)
	}
	o.CheckpointDir, o.ResumeDir = ckDir, ckDir
	dir, _, err := resolveModel(ctx, env, *modelDir)
	if err != nil {
		return err
	}
	m, err := mlm.Load(ctx, dir, mlm.Options{Device: *device, Threads: *threads, Seed: o.Seed})
	if err != nil {
		return err
	}
	defer m.Close()
	rep := finetuneReport{Command: "clozeloop finetune " + strings.Join(args, " "), Model: *modelDir, Data: *data,
		Replay: *replay, Out: *out, Started: time.Now().UTC()}
	bar := newProgressBar(env.stderr, "finetune")
	res, err := m.FineTune(ctx, examples, texts, o, bar.update)
	bar.done()
	for _, s := range res.Skipped {
		env.log.Warn("skipped item", "line", s.Index+1, "reason", s.Reason)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w (run again with --resume to continue from the last checkpoint in %s)", err, ckDir)
		}
		return err
	}
	if err := m.Save(ctx, *out); err != nil {
		return err
	}
	rep.Options = o
	rep.Finished = time.Now().UTC()
	rep.Result = res
	if res.Duration > 0 {
		rep.TokensPerSec = float64(res.Tokens) / res.Duration.Seconds()
	}
	if err := writeTrainingArgs(*out, rep); err != nil {
		return err
	}
	if err := os.RemoveAll(ckDir); err != nil {
		return fmt.Errorf("remove checkpoints: %w", err)
	}
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	fmt.Fprintf(env.stdout, "fine-tuned %s: %d items (%d skipped), %d steps (resumed from %d), final loss %.4f, %s\n",
		*out, res.Trained, len(res.Skipped), res.Steps, res.ResumedFrom, res.FinalLoss, res.Duration.Round(time.Second))
	return nil
}

// readExamples reads annotated items from a JSONL file; a bad line is an
// error naming the file and line.
func readExamples(path string) ([]mlm.Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var out []mlm.Example
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec struct {
			Text    string   `json:"text"`
			Answers []string `json:"answers"`
			Gold    []string `json:"gold"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if rec.Answers == nil {
			rec.Answers = rec.Gold
		}
		if rec.Text == "" || len(rec.Answers) == 0 {
			return nil, fmt.Errorf("%s:%d: want \"text\" and \"answers\"", path, n)
		}
		out = append(out, mlm.Example{Text: rec.Text, Answers: rec.Answers})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s after line %d: %w", path, n, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no items", path)
	}
	return out, nil
}
