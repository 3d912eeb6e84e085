package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/safetensors"
)

func convertCmd() command {
	return command{
		name:    "convert",
		summary: "rewrite a model's weights in another precision (f16, bf16, f32)",
		run:     runConvert,
	}
}

// convertExtras returns the files of a model folder that convert copies
// unchanged besides the ones the model writer produces.
func convertExtras() []string { return []string{trainingArgsFile, "README.md"} }

// convertReport is what convert prints.
type convertReport struct {
	Model    string   `json:"model"`
	Out      string   `json:"out"`
	DType    string   `json:"dtype"`
	InBytes  int64    `json:"in_bytes"`
	OutBytes int64    `json:"out_bytes"`
	Files    []string `json:"files"`
}

// parseDType maps the --dtype spelling to a safetensors dtype.
func parseDType(s string) (safetensors.DType, error) {
	switch strings.ToLower(s) {
	case "f32", "fp32", "float32":
		return safetensors.F32, nil
	case "f16", "fp16", "float16":
		return safetensors.F16, nil
	case "bf16", "bfloat16":
		return safetensors.BF16, nil
	}
	return "", usagef("--dtype %q: want f16, bf16 or f32", s)
}

func runConvert(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "convert", "--model DIR --out DIR [--dtype f16|bf16|f32] [--json]")
	modelDir := fs.String("model", "", "model directory (config.json, model.safetensors or pytorch_model.bin, tokenizer files), or a Hugging Face Hub model hf://org/name[@revision]")
	out := fs.String("out", "", "output model directory (must differ from --model)")
	dtypeName := fs.String("dtype", "f16", "precision of the written weights: f16, bf16 or f32")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlagsOnly(fs, args, "model", "out"); err != nil {
		return err
	}
	dtype, err := parseDType(*dtypeName)
	if err != nil {
		return err
	}
	dir, _, err := resolveModel(ctx, env, *modelDir)
	if err != nil {
		return err
	}
	src, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("model folder %s: %w", *modelDir, err)
	}
	dst, err := filepath.Abs(*out)
	if err != nil {
		return fmt.Errorf("output folder %s: %w", *out, err)
	}
	if src == dst {
		return usagef("--out must differ from --model (%s): convert writes a new folder", src)
	}
	m, err := mlm.Load(ctx, src, mlm.Options{Device: "cpu", Threads: 1})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.SaveWith(ctx, dst, mlm.SaveOptions{DType: dtype}); err != nil {
		return err
	}
	for _, name := range convertExtras() {
		if err := copyFileIfExists(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	rep := convertReport{Model: src, Out: dst, DType: strings.ToLower(string(dtype))}
	rep.InBytes = weightsSize(src)
	rep.OutBytes = weightsSize(dst)
	entries, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("list %s: %w", dst, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			rep.Files = append(rep.Files, e.Name())
		}
	}
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	fmt.Fprintf(env.stdout, "converted %s to %s in %s: weights %.1f MB -> %.1f MB (%s)\n",
		src, rep.DType, dst, float64(rep.InBytes)/1e6, float64(rep.OutBytes)/1e6, strings.Join(rep.Files, ", "))
	return nil
}

// weightsSize returns the size of the weights in dir (model.safetensors,
// pytorch_model.bin or the shards of either), or 0 when there are none.
func weightsSize(dir string) int64 {
	files, _ := mlm.WeightFiles(dir)
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// copyFileIfExists copies src to dst atomically; a missing src is not an
// error.
func copyFileIfExists(src, dst string) error {
	f, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer f.Close()
	if err := atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	}); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
