package mlm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/pickle"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/tokenize"
)

// File names of a Hugging Face checkpoint directory.
const (
	ConfigFile      = "config.json"
	SafetensorsFile = "model.safetensors"
	PickleFile      = "pytorch_model.bin"
	// SafetensorsIndexFile and PickleIndexFile index sharded checkpoints
	// (read when the single file is absent).
	SafetensorsIndexFile = "model.safetensors.index.json"
	PickleIndexFile      = "pytorch_model.bin.index.json"
)

// ErrCheckpoint is wrapped by errors about checkpoint tensors that are
// missing, unexpected or of the wrong shape or dtype.
var ErrCheckpoint = errors.New("checkpoint does not match the model")

// ErrUnsupportedTokenizer is wrapped by the error of Load for a model
// whose tokenizer this package cannot run (one that package tokenize
// refuses: neither WordPiece, byte-level BPE nor SentencePiece Unigram, or
// one of those with components it does not implement); it also wraps
// tokenize.ErrUnsupported.
var ErrUnsupportedTokenizer = errors.New("unsupported tokenizer")

// Load loads the model in dir: config.json, the weights (model.safetensors,
// or the legacy pytorch_model.bin when there is no safetensors file) and
// the tokenizer files: WordPiece (BERT, DistilBERT), byte-level BPE
// (RoBERTa, ModernBERT) or SentencePiece Unigram (XLM-RoBERTa), from
// tokenizer.json or the older vocabulary files. A tokenizer
// of another kind fails Load with an error wrapping
// ErrUnsupportedTokenizer; LoadWeights with a nil tokenizer still gives a
// model for id-level use (Forward, MLMHead).
func Load(ctx context.Context, dir string, opts Options) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenize.Load(dir)
	if errors.Is(err, tokenize.ErrUnsupported) {
		return nil, fmt.Errorf("load model %s: %w (WordPiece, byte-level BPE and Unigram tokenizers are supported; "+
			"run the model on token ids with LoadWeights and a nil tokenizer): %w", dir, ErrUnsupportedTokenizer, err)
	}
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	return LoadWeights(ctx, dir, cfg, tok, opts)
}

// LoadWeights builds a model from cfg, tok and the weights file in dir
// (model.safetensors, else pytorch_model.bin). A missing, unexpected or
// wrongly shaped tensor gives an error that wraps ErrCheckpoint and names
// the tensor and both shapes.
func LoadWeights(ctx context.Context, dir string, cfg Config, tok *tokenize.Tokenizer, opts Options) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		state map[string]safetensors.Tensor
		err   error
		path  = filepath.Join(dir, SafetensorsFile)
	)
	switch {
	case fileExists(path):
		state, err = readSafetensorsState(path)
	case fileExists(filepath.Join(dir, SafetensorsIndexFile)):
		path = filepath.Join(dir, SafetensorsIndexFile)
		state, err = readShardedState(dir, SafetensorsIndexFile, readSafetensorsState)
	case fileExists(filepath.Join(dir, PickleFile)):
		path = filepath.Join(dir, PickleFile)
		state, err = readPickleState(path)
	case fileExists(filepath.Join(dir, PickleIndexFile)):
		path = filepath.Join(dir, PickleIndexFile)
		state, err = readShardedState(dir, PickleIndexFile, readPickleState)
	default:
		err = fmt.Errorf("no %s or %s (nor their sharded index)", SafetensorsFile, PickleFile)
	}
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	m, err := newModel(cfg, tok, opts, state)
	if err != nil {
		return nil, fmt.Errorf("load model weights %s: %w", path, err)
	}
	return m, nil
}

// WeightFiles returns the paths of the weight files of the checkpoint in
// dir, in the order LoadWeights looks for them: model.safetensors, else
// the shards of model.safetensors.index.json, else pytorch_model.bin,
// else the shards of pytorch_model.bin.index.json. None is not an error.
func WeightFiles(dir string) ([]string, error) {
	for _, name := range []string{SafetensorsFile, SafetensorsIndexFile, PickleFile, PickleIndexFile} {
		path := filepath.Join(dir, name)
		if !fileExists(path) {
			continue
		}
		if name == SafetensorsFile || name == PickleFile {
			return []string{path}, nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, name, err)
		}
		var files []string
		for _, shard := range idx.WeightMap {
			if p := filepath.Join(dir, filepath.Base(shard)); !slices.Contains(files, p) {
				files = append(files, p)
			}
		}
		sort.Strings(files)
		return files, nil
	}
	return nil, nil
}

// maxShards bounds the shard files a sharded checkpoint's index may name.
const maxShards = 1024

// readShardedState reads a sharded checkpoint: the index file in dir
// (Hugging Face's {"weight_map": {tensor: shard file}}) and every shard it
// names, with read. Each tensor of the weight map must be in its shard;
// shard names must be plain file names in dir. Tensors a shard holds
// beyond the weight map are ignored, as transformers ignores them.
func readShardedState(dir, index string, read func(string) (map[string]safetensors.Tensor, error)) (map[string]safetensors.Tensor, error) {
	data, err := os.ReadFile(filepath.Join(dir, index))
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, index, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%w: %s has no weight_map", ErrCheckpoint, index)
	}
	byShard := map[string][]string{}
	for name, shard := range idx.WeightMap {
		if shard == "" || shard != filepath.Base(shard) || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
			return nil, fmt.Errorf("%w: %s maps %s to %q, not a file name in the checkpoint folder", ErrCheckpoint, index, name, shard)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	if len(byShard) > maxShards {
		return nil, fmt.Errorf("%w: %s names %d shards (at most %d)", ErrCheckpoint, index, len(byShard), maxShards)
	}
	shards := make([]string, 0, len(byShard))
	for shard := range byShard {
		shards = append(shards, shard)
	}
	sort.Strings(shards)
	state := make(map[string]safetensors.Tensor, len(idx.WeightMap))
	for _, shard := range shards {
		part, err := read(filepath.Join(dir, shard))
		if err != nil {
			return nil, fmt.Errorf("shard %s of %s: %w", shard, index, err)
		}
		for _, name := range byShard[shard] {
			t, ok := part[name]
			if !ok {
				return nil, fmt.Errorf("%w: %s puts %s in %s, which does not hold it", ErrCheckpoint, index, name, shard)
			}
			state[name] = t
		}
	}
	return state, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readSafetensorsState(path string) (map[string]safetensors.Tensor, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	state := make(map[string]safetensors.Tensor, f.Len())
	for _, name := range f.Names() {
		state[name], _ = f.Tensor(name)
	}
	return state, nil
}

// readPickleState reads a legacy PyTorch pytorch_model.bin through gotch's
// pickle package.
func readPickleState(path string) (state map[string]safetensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: corrupt PyTorch pickle: %v", path, r)
		}
	}()
	tensors, err := pickle.Decode(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	state = make(map[string]safetensors.Tensor, len(tensors))
	for name, t := range tensors {
		shape, err := t.Size()
		if err != nil {
			return nil, fmt.Errorf("read %s tensor %s: %w", path, name, err)
		}
		if !gotch.IsFloatDType(t.DType()) {
			state[name] = safetensors.Tensor{Name: name, DType: safetensors.I64, Shape: shape}
			t.MustDrop()
			continue
		}
		vals, err := tensorFloat32s(t)
		t.MustDrop()
		if err != nil {
			return nil, fmt.Errorf("read %s tensor %s: %w", path, name, err)
		}
		st, err := safetensors.FromFloat32s(name, safetensors.F32, shape, vals)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		state[name] = st
	}
	return state, nil
}

// SaveOptions configure SaveWith.
type SaveOptions struct {
	// DType is the element type of the weights in model.safetensors: F32
	// (the default when empty), F16 or BF16. The parameters are rounded to
	// the nearest value of that type (round to nearest even); Load reads
	// all three back into the model's float32 parameters.
	DType safetensors.DType
}

// Save writes the model to dir (created if needed) as a Hugging Face
// checkpoint: config.json, model.safetensors (float32, the tied decoder
// weight stored once, as the word embeddings) and the tokenizer files. It
// is SaveWith with the default options.
func (m *Model) Save(ctx context.Context, dir string) error {
	return m.SaveWith(ctx, dir, SaveOptions{})
}

// SaveWith writes the model to dir (created if needed) as a Hugging Face
// checkpoint: config.json, model.safetensors with the weights in
// opts.DType (Hugging Face names, the tied decoder weight stored once, as
// the word embeddings) and the tokenizer files. Half precision (F16 or
// BF16) halves the file size.
func (m *Model) SaveWith(ctx context.Context, dir string, opts SaveOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dtype, err := saveDType(opts.DType)
	if err != nil {
		return fmt.Errorf("save model to %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := SaveConfig(dir, m.cfg); err != nil {
		return err
	}
	path := filepath.Join(dir, SafetensorsFile)
	sd, err := m.StateDictAs(dtype)
	if err != nil {
		return fmt.Errorf("save weights %s: %w", path, err)
	}
	if err := safetensors.WriteFile(path, sd, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save weights %s: %w", path, err)
	}
	if m.tok != nil {
		if err := m.tok.Save(dir); err != nil {
			return fmt.Errorf("save model tokenizer in %s: %w", dir, err)
		}
	}
	return nil
}

// saveDType checks a SaveOptions.DType, mapping empty to F32.
func saveDType(d safetensors.DType) (safetensors.DType, error) {
	switch d {
	case "":
		return safetensors.F32, nil
	case safetensors.F32, safetensors.F16, safetensors.BF16:
		return d, nil
	}
	return "", fmt.Errorf("weights dtype %q: want F32, F16 or BF16", d)
}

// StateDict returns copies of the parameters as float32 safetensors
// tensors under their Hugging Face names.
func (m *Model) StateDict() ([]safetensors.Tensor, error) {
	return m.StateDictAs(safetensors.F32)
}

// StateDictAs returns copies of the parameters as safetensors tensors of
// dtype (F32, F16 or BF16, rounded to nearest even) under their Hugging
// Face names.
func (m *Model) StateDictAs(dtype safetensors.DType) ([]safetensors.Tensor, error) {
	dtype, err := saveDType(dtype)
	if err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.unlock()
	var out []safetensors.Tensor
	for _, s := range m.specs() {
		vals, err := tensorFloat32s(*s.dst)
		if err != nil {
			return nil, fmt.Errorf("read parameter %s: %w", s.name, err)
		}
		t, err := safetensors.FromFloat32s(s.name, dtype, s.shape, vals)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// tensorFloat32s copies a tensor (any device, any float dtype) into Go
// memory as float32.
func tensorFloat32s(t *ts.Tensor) ([]float32, error) {
	c, err := t.ToDevice(gotch.CPU, gotch.Float, false, true, false)
	if err != nil {
		return nil, err
	}
	defer c.MustDrop()
	c2, err := c.Contiguous(false)
	if err != nil {
		return nil, err
	}
	defer c2.MustDrop()
	n := c2.Numel()
	out := make([]float32, n)
	if n > 0 {
		if err := c2.CopyData(out, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SaveSafetensors writes the parameters to path in the safetensors format
// with Hugging Face names and {"format":"pt"} metadata.
func (m *Model) SaveSafetensors(path string) error {
	sd, err := m.StateDict()
	if err != nil {
		return fmt.Errorf("save weights %s: %w", path, err)
	}
	return safetensors.WriteFile(path, sd, nil)
}

// canonicalName maps legacy names (LayerNorm gamma/beta) to current ones.
func canonicalName(name string) string {
	if base, ok := strings.CutSuffix(name, ".gamma"); ok {
		return base + ".weight"
	}
	if base, ok := strings.CutSuffix(name, ".beta"); ok {
		return base + ".bias"
	}
	return name
}

// resolveState maps a checkpoint's tensors onto specs (of any family):
// legacy names are renamed, unused tensors dropped, the tied decoder weight
// checked and ignored, the decoder bias alias (e.g.
// cls.predictions.decoder.bias) accepted for the output bias.
// Every spec must be present with its shape and a float dtype, and nothing
// else may remain.
func resolveState(specs []paramSpec, raw map[string]safetensors.Tensor) (map[string]safetensors.Tensor, error) {
	arch := namesOfSpecs(specs)
	src := make(map[string]safetensors.Tensor, len(raw))
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	var problems []string
	for _, name := range names {
		if arch.ignored(name) {
			continue
		}
		c := canonicalName(name)
		if _, dup := src[c]; dup {
			problems = append(problems, fmt.Sprintf("tensor %s appears twice (as %s)", c, name))
		}
		src[c] = raw[name]
	}
	if b, ok := src[arch.biasAlias]; ok && arch.biasAlias != "" {
		if _, has := src[arch.bias]; !has {
			src[arch.bias] = b
		}
		delete(src, arch.biasAlias)
	}
	if d, ok := src[arch.decoderWeight]; ok {
		if want := specs[0].shape; !slices.Equal(d.Shape, want) {
			problems = append(problems, fmt.Sprintf("tensor %s has shape %v, want %v", arch.decoderWeight, d.Shape, want))
		}
		delete(src, arch.decoderWeight)
	}
	out := make(map[string]safetensors.Tensor, len(specs))
	for _, s := range specs {
		t, ok := src[s.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing tensor %s (want shape %v)", s.name, s.shape))
			continue
		}
		delete(src, s.name)
		if !slices.Equal(t.Shape, s.shape) {
			problems = append(problems, fmt.Sprintf("tensor %s has shape %v, want %v", s.name, t.Shape, s.shape))
			continue
		}
		switch t.DType {
		case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		default:
			problems = append(problems, fmt.Sprintf("tensor %s has dtype %s, want F32, F16, BF16 or F64", s.name, t.DType))
			continue
		}
		out[s.name] = t
	}
	var extra []string
	for name, t := range src {
		extra = append(extra, fmt.Sprintf("unexpected tensor %s (shape %v)", name, t.Shape))
	}
	sort.Strings(extra)
	problems = append(problems, extra...)
	if len(problems) > 0 {
		if len(problems) > 6 {
			problems = append(problems[:6], fmt.Sprintf("and %d more problems", len(problems)-6))
		}
		return nil, fmt.Errorf("%w: %s", ErrCheckpoint, strings.Join(problems, "; "))
	}
	return out, nil
}
