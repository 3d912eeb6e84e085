// Package models embeds the fill-mask models shipped with clozeloop, as
// Hugging Face model folders (config.json, model.safetensors, tokenizer
// files, README.md model card), so that a fresh install can start from a
// pretrained model without downloading anything.
//
// One model is shipped: WordNetSmall, a 4-layer BERT pretrained with
// `clozeloop pretrain` on the glosses and examples of WordNet; its model
// card (wordnet-small/README.md) records how it was trained and its
// scores. FS gives read access to a model's files; WriteTo materialises
// them in a folder that mlm.Load (or Hugging Face transformers) can read.
//
// This package is pure Go; it does not load the model.
package models

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/clozeloop/clozeloop/internal/atomicfile"
)

// WordNetSmall is the name of the shipped default model: a small BERT
// (4 layers, hidden size 256, 4 heads, WordPiece vocabulary of 8,000)
// pretrained on WordNet's glosses and examples, stored in float16.
const WordNetSmall = "wordnet-small"

// embedded holds the model folders. It is only read.
//
//go:embed wordnet-small
var embedded embed.FS

// ErrUnknownModel is wrapped by the errors of FS and WriteTo for a name
// that is not a shipped model.
var ErrUnknownModel = errors.New("unknown shipped model")

// Names returns the names of the shipped models, sorted.
func Names() []string {
	entries, err := embedded.ReadDir(".")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// FS returns the files of the shipped model name, at the root of the
// returned file system (config.json, model.safetensors, …).
func FS(name string) (fs.FS, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("%w %q (shipped: %q)", ErrUnknownModel, name, Names())
	}
	sub, err := fs.Sub(embedded, name)
	if err != nil {
		return nil, fmt.Errorf("shipped model %s: %w", name, err)
	}
	return sub, nil
}

// Files returns the file names of the shipped model name, sorted.
func Files(name string) ([]string, error) {
	fsys, err := FS(name)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("list shipped model %s: %w", name, err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// WriteResult says what WriteTo did.
type WriteResult struct {
	// Dir is the folder written to.
	Dir string `json:"dir"`
	// Written are the files created or replaced, Unchanged the files that
	// already held the shipped content.
	Written   []string `json:"written,omitempty"`
	Unchanged []string `json:"unchanged,omitempty"`
}

// WriteTo materialises the shipped model name in dir (created if needed)
// so that it can be loaded from there. It is idempotent: a file that
// already holds the shipped bytes is left alone, any other file of the
// model's name is replaced atomically (written to a temporary file and
// renamed), and files of dir that are not part of the model are kept.
func WriteTo(ctx context.Context, name, dir string) (WriteResult, error) {
	res := WriteResult{Dir: dir}
	fsys, err := FS(name)
	if err != nil {
		return res, err
	}
	files, err := Files(name)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("write shipped model %s: %w", name, err)
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("write shipped model %s: %w", name, err)
		}
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return res, fmt.Errorf("read shipped model file %s: %w", path.Join(name, f), err)
		}
		dst := filepath.Join(dir, f)
		if same, err := sameContent(dst, data); err != nil {
			return res, err
		} else if same {
			res.Unchanged = append(res.Unchanged, f)
			continue
		}
		if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
			return res, fmt.Errorf("write shipped model file %s: %w", dst, err)
		}
		res.Written = append(res.Written, f)
	}
	return res, nil
}

// cardFile is the model card every shipped model carries.
const cardFile = "README.md"

// IsCopy reports whether dir holds a copy of the shipped model name, from
// this release or an earlier one: its model card (README.md) has the same
// title (first "# " line) as the shipped card. A fine-tuned or user model
// has another card or none. A folder without README.md is not a copy.
func IsCopy(name, dir string) (bool, error) {
	fsys, err := FS(name)
	if err != nil {
		return false, err
	}
	shipped, err := fs.ReadFile(fsys, cardFile)
	if err != nil {
		return false, fmt.Errorf("read shipped model card %s: %w", path.Join(name, cardFile), err)
	}
	have, err := os.ReadFile(filepath.Join(dir, cardFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("check model card in %s: %w", dir, err)
	}
	want := cardTitle(shipped)
	return want != "" && cardTitle(have) == want, nil
}

// cardTitle returns the first line of a model card that starts with "# ".
func cardTitle(card []byte) string {
	for _, line := range bytes.Split(card, []byte("\n")) {
		if t := bytes.TrimSpace(line); bytes.HasPrefix(t, []byte("# ")) {
			return string(t)
		}
	}
	return ""
}

// sameContent reports whether the file at path exists and holds data.
func sameContent(path string, data []byte) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("check %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("check %s: not a regular file", path)
	case fi.Size() != int64(len(data)):
		return false, nil
	}
	have, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("check %s: %w", path, err)
	}
	return bytes.Equal(have, data), nil
}
