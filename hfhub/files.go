package hfhub

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// File names of a transformers checkpoint.
const (
	configFile         = "config.json"
	safetensorsFile    = "model.safetensors"
	safetensorsIndex   = "model.safetensors.index.json"
	pickleFile         = "pytorch_model.bin"
	pickleIndex        = "pytorch_model.bin.index.json"
	tokenizerJSON      = "tokenizer.json"
	tokenizerConfig    = "tokenizer_config.json"
	specialTokensMap   = "special_tokens_map.json"
	vocabTxt           = "vocab.txt"
	mergesTxt          = "merges.txt"
	vocabJSON          = "vocab.json"
	sentencePieceModel = "sentencepiece.bpe.model"
)

// tokenizerFiles are fetched when the repository has them.
var tokenizerFiles = []string{tokenizerJSON, tokenizerConfig, specialTokensMap, vocabTxt, mergesTxt, vocabJSON, sentencePieceModel}

// vocabularyFiles: a snapshot needs at least one of them to tokenise.
var vocabularyFiles = []string{tokenizerJSON, vocabTxt, vocabJSON, sentencePieceModel}

// weightChoice is the first weights layout present in have: a single
// safetensors file, its sharded index, pytorch_model.bin, or its index.
// isIndex says whether the shards named in the index are needed too.
func weightChoice(have func(string) bool) (name string, isIndex bool, ok bool) {
	for _, c := range []struct {
		name  string
		index bool
	}{{safetensorsFile, false}, {safetensorsIndex, true}, {pickleFile, false}, {pickleIndex, true}} {
		if have(c.name) {
			return c.name, c.index, true
		}
	}
	return "", false, false
}

// indexShards returns the shard files named in a sharded checkpoint's
// index (its weight_map values), sorted and checked to stay inside the
// repository.
func indexShards(data []byte) ([]string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("parse checkpoint index: %w", err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("checkpoint index has an empty weight_map")
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range idx.WeightMap {
		if err := validFileName(f); err != nil {
			return nil, fmt.Errorf("checkpoint index: %w", err)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out, nil
}

// validFileName refuses names that would leave the snapshot folder.
func validFileName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." {
		return fmt.Errorf("file name %q is not a plain path inside the repository", name)
	}
	return nil
}

// causalTypes are model_type values of decoder-only (causal) language
// models, which cannot fill masks.
var causalTypes = map[string]bool{
	"gpt2": true, "gpt_neo": true, "gpt_neox": true, "gptj": true, "gpt_bigcode": true, "openai-gpt": true,
	"llama": true, "mistral": true, "mixtral": true, "qwen2": true, "qwen3": true, "gemma": true, "gemma2": true,
	"gemma3": true, "phi": true, "phi3": true, "falcon": true, "opt": true, "bloom": true, "mpt": true,
	"codegen": true, "ctrl": true, "xglm": true, "olmo": true, "olmo2": true, "stablelm": true, "starcoder2": true,
}

// CheckFillMask refuses a config.json that describes a model which cannot
// fill masks: a causal language model (GPT-2, Llama, …) or an
// encoder-decoder generator (T5, BART). Other architectures pass; whether
// clozeloop can load them is for the model loader to say.
func CheckFillMask(configJSON []byte) error {
	var c struct {
		Architectures []string `json:"architectures"`
		ModelType     string   `json:"model_type"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return fmt.Errorf("%w: config.json: %w", ErrNotAModel, err)
	}
	for _, a := range c.Architectures {
		if strings.HasSuffix(a, "ForMaskedLM") || strings.HasSuffix(a, "ForPreTraining") {
			return nil
		}
	}
	for _, a := range c.Architectures {
		if strings.HasSuffix(a, "ForCausalLM") || strings.HasSuffix(a, "LMHeadModel") || strings.HasSuffix(a, "ForConditionalGeneration") {
			return fmt.Errorf("%w: config.json says %s (model_type %q), a text generator; clozeloop needs a masked-language model such as BERT (architectures ending in ForMaskedLM)", ErrNotFillMask, a, c.ModelType)
		}
	}
	if causalTypes[c.ModelType] {
		return fmt.Errorf("%w: config.json says model_type %q, a causal language model; clozeloop needs a masked-language model such as BERT (architectures ending in ForMaskedLM)", ErrNotFillMask, c.ModelType)
	}
	return nil
}

// snapshotComplete reports whether the snapshot folder holds everything a
// fill-mask model needs (config, all weights, a vocabulary), following its
// symlinks; missing names what is not there.
func snapshotComplete(dir string) (missing string, ok bool) {
	have := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		return err == nil && st.Mode().IsRegular()
	}
	if !have(configFile) {
		return configFile, false
	}
	w, isIndex, found := weightChoice(have)
	if !found {
		return "weights (" + safetensorsFile + " or " + pickleFile + ")", false
	}
	if isIndex {
		data, err := os.ReadFile(filepath.Join(dir, w))
		if err != nil {
			return w, false
		}
		shards, err := indexShards(data)
		if err != nil {
			return w, false
		}
		for _, s := range shards {
			if !have(s) {
				return s, false
			}
		}
	}
	for _, v := range vocabularyFiles {
		if have(v) {
			return "", true
		}
	}
	return "a tokenizer (" + strings.Join(vocabularyFiles, ", ") + ")", false
}
