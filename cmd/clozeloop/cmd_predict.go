package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/clozeloop/clozeloop/mlm"
)

func predictCmd() command {
	return command{
		name:    "predict",
		summary: "fill masks in texts with a Hugging Face fill-mask model",
		run:     runPredict,
	}
}

func runPredict(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "predict", `--model DIR|hf://org/name[@rev] [--top-k 5] [--targets a,b] [--file F|-] [--json] ["text with [MASK]" ...]`)
	modelDir := fs.String("model", "", "model directory (config.json, model.safetensors, tokenizer files), or a Hugging Face Hub model hf://org/name[@revision]")
	topK := fs.Int("top-k", 5, "predictions per mask")
	targets := fs.String("targets", "", "comma-separated candidate words to score instead of the whole vocabulary")
	file := fs.String("file", "", "read texts from this file, one per line (- for stdin)")
	device := fs.String("device", "auto", "auto, cpu, cuda or cuda:N")
	threads := fs.Int("threads", 0, "libtorch threads (0: number of CPUs)")
	batch := fs.Int("batch-size", 32, "texts per forward pass")
	asJSON := fs.Bool("json", false, "print JSON (the Hugging Face pipeline's fields per mask)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelDir == "" {
		return usagef("--model is required")
	}
	if *topK < 1 {
		return usagef("--top-k must be at least 1")
	}
	texts := fs.Args()
	if *file != "" {
		more, err := readLines(*file)
		if err != nil {
			return err
		}
		texts = append(texts, more...)
	}
	if len(texts) == 0 {
		return usagef("no texts: give them as arguments or with --file")
	}
	var tg []string
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tg = append(tg, t)
		}
	}
	dir, _, err := resolveModel(ctx, env, *modelDir)
	if err != nil {
		return err
	}
	m, err := mlm.Load(ctx, dir, mlm.Options{Device: *device, Threads: *threads})
	if err != nil {
		return err
	}
	defer m.Close()
	res, err := m.FillMask(ctx, texts, mlm.FillOptions{TopK: *topK, Targets: tg, BatchSize: *batch})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, res)
	}
	for i, r := range res {
		if i > 0 {
			fmt.Fprintln(env.stdout)
		}
		fmt.Fprintf(env.stdout, "%s\n", r.Text)
		for j, preds := range r.Masks {
			if len(r.Masks) > 1 {
				fmt.Fprintf(env.stdout, "  mask %d\n", j+1)
			}
			for _, p := range preds {
				fmt.Fprintf(env.stdout, "  %-16s %.4f  %s\n", p.TokenStr, p.Score, p.Sequence)
			}
		}
	}
	return nil
}

// readLines returns the non-empty lines of path ("-" reads stdin).
func readLines(path string) ([]string, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read texts: %w", err)
		}
		defer f.Close()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read texts from %s: %w", path, err)
	}
	return out, nil
}
