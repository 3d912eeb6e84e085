package models

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
)

// maxModelBytes is the size limit of a shipped model folder.
const maxModelBytes = 16_000_000

func TestShippedFiles(t *testing.T) {
	if got := Names(); !slices.Equal(got, []string{WordNetSmall}) {
		t.Fatalf("Names() = %q, want [%s]", got, WordNetSmall)
	}
	files, err := Files(WordNetSmall)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"README.md", "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"} {
		if !slices.Contains(files, want) {
			t.Errorf("shipped model lacks %s (has %q)", want, files)
		}
	}
	fsys, err := FS(WordNetSmall)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, f := range files {
		fi, err := fs.Stat(fsys, f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > maxModelBytes {
		t.Errorf("shipped model is %d bytes, over the %d-byte limit", total, maxModelBytes)
	}
	data, err := fs.ReadFile(fsys, "model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range st.Names() {
		if tn, _ := st.Tensor(name); tn.DType != safetensors.F16 {
			t.Errorf("tensor %s is %s, want F16", name, tn.DType)
		}
	}
	var cfg struct {
		ModelType  string `json:"model_type"`
		Layers     int    `json:"num_hidden_layers"`
		Hidden     int    `json:"hidden_size"`
		Heads      int    `json:"num_attention_heads"`
		VocabSize  int    `json:"vocab_size"`
		MaxPosEmbs int    `json:"max_position_embeddings"`
	}
	raw, err := fs.ReadFile(fsys, "config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ModelType != "bert" || cfg.Layers != 4 || cfg.Hidden != 256 || cfg.Heads != 4 || cfg.VocabSize != 8000 {
		t.Errorf("config %+v, want bert with 4 layers, hidden 256, 4 heads, vocabulary 8000", cfg)
	}
	t.Logf("shipped %s: %d files, %d bytes, %d tensors", WordNetSmall, len(files), total, st.Len())
}

func TestWriteTo(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "start")
	files, err := Files(WordNetSmall)
	if err != nil {
		t.Fatal(err)
	}
	res, err := WriteTo(ctx, WordNetSmall, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Written, files) || len(res.Unchanged) != 0 {
		t.Errorf("first WriteTo: %+v, want every file written", res)
	}
	// A second call changes nothing; a changed file is restored and a
	// foreign file kept.
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = WriteTo(ctx, WordNetSmall, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Written, []string{"config.json"}) || len(res.Unchanged) != len(files)-1 {
		t.Errorf("second WriteTo: %+v, want only config.json rewritten", res)
	}
	fsys, _ := FS(WordNetSmall)
	for _, f := range files {
		want, _ := fs.ReadFile(fsys, f)
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s differs from the shipped file after WriteTo (err %v)", f, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Errorf("WriteTo touched a foreign file: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(files)+1 {
		t.Errorf("%d entries in %s, want %d (no temporary files left)", len(entries), dir, len(files)+1)
	}
}

func TestWriteToErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := WriteTo(ctx, "nope", t.TempDir()); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("unknown model: %v", err)
	}
	if _, err := FS("../models"); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("FS(../models): %v", err)
	}
	// A file where the folder should be.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteTo(ctx, WordNetSmall, file); err == nil {
		t.Error("WriteTo into a regular file succeeded")
	}
	// A folder where a model file should be.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "config.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteTo(ctx, WordNetSmall, dir); err == nil {
		t.Error("WriteTo over a folder named config.json succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := WriteTo(cctx, WordNetSmall, t.TempDir()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled WriteTo: %v", err)
	}
}

func TestIsCopy(t *testing.T) {
	shipped := t.TempDir()
	if _, err := WriteTo(context.Background(), WordNetSmall, shipped); err != nil {
		t.Fatal(err)
	}
	older := t.TempDir()
	if _, err := WriteTo(context.Background(), WordNetSmall, older); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(older, "model.safetensors"), []byte("older weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	own := t.TempDir()
	if err := os.WriteFile(filepath.Join(own, "README.md"), []byte("---\nlicense: other\n---\n\n# my model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noCard := t.TempDir()
	if err := os.WriteFile(filepath.Join(noCard, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	cardDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(cardDir, "README.md"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		model   string
		dir     string
		want    bool
		wantErr bool
	}{
		{"this release", WordNetSmall, shipped, true, false},
		{"earlier release, other weights", WordNetSmall, older, true, false},
		{"own card", WordNetSmall, own, false, false},
		{"no card", WordNetSmall, noCard, false, false},
		{"card is a folder", WordNetSmall, cardDir, false, true},
		{"unknown model", "nope", shipped, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IsCopy(tc.model, tc.dir)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("IsCopy = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
