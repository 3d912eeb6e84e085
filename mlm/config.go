package mlm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"os"
	"path/filepath"
	"sort"
)

// Model families (the Hugging Face model_type values) this package runs.
const (
	ModelTypeBERT       = "bert"
	ModelTypeDistilBERT = "distilbert"
	ModelTypeRoBERTa    = "roberta"
)

// ErrConfig is wrapped by every error that reports an invalid or unsupported
// model configuration.
var ErrConfig = errors.New("invalid model config")

// Config is a fill-mask model configuration, read from and written to a
// Hugging Face config.json. Fields use the BERT names; DistilBERT's own
// keys (dim, n_layers, n_heads, hidden_dim, activation, dropout,
// attention_dropout) are mapped onto them when reading and back when
// writing.
type Config struct {
	ModelType                 string   `json:"model_type"`
	Architectures             []string `json:"architectures,omitempty"`
	VocabSize                 int      `json:"vocab_size"`
	HiddenSize                int      `json:"hidden_size"`
	NumHiddenLayers           int      `json:"num_hidden_layers"`
	NumAttentionHeads         int      `json:"num_attention_heads"`
	IntermediateSize          int      `json:"intermediate_size"`
	HiddenAct                 string   `json:"hidden_act"`
	HiddenDropoutProb         float64  `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64  `json:"attention_probs_dropout_prob"`
	MaxPositionEmbeddings     int      `json:"max_position_embeddings"`
	TypeVocabSize             int      `json:"type_vocab_size"`
	InitializerRange          float64  `json:"initializer_range"`
	LayerNormEps              float64  `json:"layer_norm_eps"`
	PadTokenID                int      `json:"pad_token_id"`
	PositionEmbeddingType     string   `json:"position_embedding_type,omitempty"`

	// Extra holds the config.json keys this package does not interpret
	// (e.g. transformers_version), written back unchanged by Save.
	Extra map[string]json.RawMessage `json:"-"`
}

// BERTBaseConfig returns the published bert-base-uncased configuration.
func BERTBaseConfig() Config {
	return Config{
		ModelType: ModelTypeBERT, Architectures: []string{"BertForMaskedLM"},
		VocabSize: 30522, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
		IntermediateSize: 3072, HiddenAct: "gelu", HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1,
		MaxPositionEmbeddings: 512, TypeVocabSize: 2, InitializerRange: 0.02, LayerNormEps: 1e-12,
		PadTokenID: 0, PositionEmbeddingType: "absolute",
	}
}

// TinyConfig returns a small BERT configuration (2 layers, hidden size 128,
// 2 heads) for a vocabulary of vocabSize tokens: the default model for new
// runs and tests.
func TinyConfig(vocabSize int) Config {
	c := BERTBaseConfig()
	c.VocabSize = vocabSize
	c.HiddenSize = 128
	c.NumHiddenLayers = 2
	c.NumAttentionHeads = 2
	c.IntermediateSize = 512
	c.MaxPositionEmbeddings = 128
	return c
}

// Validate checks that c describes a model this package can run.
func (c Config) Validate() error {
	switch c.ModelType {
	case ModelTypeBERT, ModelTypeRoBERTa, ModelTypeDistilBERT:
	default:
		return fmt.Errorf("%w: unsupported model_type %q (supported: bert, distilbert, roberta)", ErrConfig, c.ModelType)
	}
	if _, err := parseActivation(c.HiddenAct); err != nil {
		return err
	}
	if c.PositionEmbeddingType != "" && c.PositionEmbeddingType != "absolute" {
		return fmt.Errorf("%w: unsupported position_embedding_type %q (only \"absolute\")", ErrConfig, c.PositionEmbeddingType)
	}
	checks := []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"intermediate_size", c.IntermediateSize},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, ch := range checks {
		if ch.v <= 0 {
			return fmt.Errorf("%w: %s must be positive, got %d", ErrConfig, ch.name, ch.v)
		}
	}
	if c.ModelType != ModelTypeDistilBERT && c.TypeVocabSize <= 0 {
		return fmt.Errorf("%w: type_vocab_size must be positive, got %d", ErrConfig, c.TypeVocabSize)
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("%w: hidden_size %d is not a multiple of num_attention_heads %d", ErrConfig, c.HiddenSize, c.NumAttentionHeads)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"hidden_dropout_prob", c.HiddenDropoutProb}, {"attention_probs_dropout_prob", c.AttentionProbsDropoutProb}} {
		if p.v < 0 || p.v >= 1 {
			return fmt.Errorf("%w: %s must be in [0, 1), got %g", ErrConfig, p.name, p.v)
		}
	}
	if c.LayerNormEps <= 0 {
		return fmt.Errorf("%w: layer_norm_eps must be positive, got %g", ErrConfig, c.LayerNormEps)
	}
	if c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize {
		return fmt.Errorf("%w: pad_token_id %d outside the vocabulary of %d", ErrConfig, c.PadTokenID, c.VocabSize)
	}
	if c.ModelType == ModelTypeRoBERTa && c.MaxPositionEmbeddings <= c.PadTokenID+1 {
		return fmt.Errorf("%w: max_position_embeddings %d leaves no positions after padding_idx %d", ErrConfig, c.MaxPositionEmbeddings, c.PadTokenID)
	}
	return nil
}

// MaxSequenceLength returns the longest input (special tokens included) the
// position embeddings allow.
func (c Config) MaxSequenceLength() int {
	if c.ModelType == ModelTypeRoBERTa {
		return c.MaxPositionEmbeddings - c.PadTokenID - 1
	}
	return c.MaxPositionEmbeddings
}

// activation is an element-wise non-linearity named by hidden_act.
type activation int

const (
	actGELU activation = iota
	actGELUTanh
	actReLU
)

func parseActivation(name string) (activation, error) {
	switch name {
	case "gelu":
		return actGELU, nil
	case "gelu_new", "gelu_pytorch_tanh":
		return actGELUTanh, nil
	case "relu":
		return actReLU, nil
	}
	return 0, fmt.Errorf("%w: unsupported hidden_act %q (supported: gelu (erf), gelu_new, gelu_pytorch_tanh, relu)", ErrConfig, name)
}

// distilKeys returns the DistilBERT config keys with the BERT keys of
// Config they map to.
func distilKeys() [][2]string {
	return [][2]string{
		{"dim", "hidden_size"}, {"n_layers", "num_hidden_layers"}, {"n_heads", "num_attention_heads"},
		{"hidden_dim", "intermediate_size"}, {"activation", "hidden_act"}, {"dropout", "hidden_dropout_prob"},
		{"attention_dropout", "attention_probs_dropout_prob"},
	}
}

// isKnownKey reports whether Config interprets the config.json key k.
func isKnownKey(k string) bool {
	switch k {
	case "model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
		"num_attention_heads", "intermediate_size", "hidden_act", "hidden_dropout_prob",
		"attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
		"initializer_range", "layer_norm_eps", "pad_token_id", "position_embedding_type":
		return true
	}
	return false
}

// ParseConfig parses a Hugging Face config.json and validates it.
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var mt string
	if err := json.Unmarshal(raw["model_type"], &mt); err != nil || mt == "" {
		return Config{}, fmt.Errorf("%w: missing or invalid model_type", ErrConfig)
	}
	// Defaults are those of the transformers config classes.
	c := BERTBaseConfig()
	c.Architectures = nil
	c.PositionEmbeddingType = ""
	switch mt {
	case ModelTypeDistilBERT:
		c.MaxPositionEmbeddings, c.TypeVocabSize, c.NumHiddenLayers, c.NumAttentionHeads = 512, 0, 6, 12
		for _, k := range distilKeys() {
			if v, ok := raw[k[0]]; ok {
				raw[k[1]] = v
				delete(raw, k[0])
			}
		}
		for _, k := range []string{"sinusoidal_pos_embds"} {
			var b bool
			if json.Unmarshal(raw[k], &b) == nil && b {
				return Config{}, fmt.Errorf("%w: sinusoidal_pos_embds is not supported", ErrConfig)
			}
		}
	case ModelTypeRoBERTa:
		c.VocabSize, c.MaxPositionEmbeddings, c.TypeVocabSize, c.LayerNormEps, c.PadTokenID = 50265, 514, 1, 1e-5, 1
	}
	known, _ := json.Marshal(filterKeys(raw, true))
	if err := json.Unmarshal(known, &c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if mt == ModelTypeDistilBERT {
		c.TypeVocabSize = 0
		c.LayerNormEps = 1e-12
	}
	c.Extra = filterKeys(raw, false)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func filterKeys(raw map[string]json.RawMessage, known bool) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range raw {
		if isKnownKey(k) == known {
			out[k] = v
		}
	}
	return out
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// MarshalConfig returns c as a Hugging Face config.json document with
// sorted keys, in the key spelling of c.ModelType, including c.Extra.
func MarshalConfig(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(c.Architectures) == 0 {
		c.Architectures = []string{architecture(c.ModelType)}
	}
	base, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(base, &m); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	for k, v := range c.Extra {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	if c.ModelType == ModelTypeDistilBERT {
		for _, k := range distilKeys() {
			m[k[0]] = m[k[1]]
			delete(m, k[1])
		}
		delete(m, "type_vocab_size")
		delete(m, "layer_norm_eps")
		delete(m, "position_embedding_type")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range keys {
		kj, _ := json.Marshal(k)
		var v bytes.Buffer
		if err := json.Compact(&v, m[k]); err != nil {
			return nil, fmt.Errorf("marshal config key %s: %w", k, err)
		}
		fmt.Fprintf(&b, "  %s: %s", kj, v.Bytes())
		if i < len(keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

func architecture(modelType string) string {
	switch modelType {
	case ModelTypeDistilBERT:
		return "DistilBertForMaskedLM"
	case ModelTypeRoBERTa:
		return "RobertaForMaskedLM"
	}
	return "BertForMaskedLM"
}

// SaveConfig writes c to dir/config.json.
func SaveConfig(dir string, c Config) error {
	data, err := MarshalConfig(c)
	if err != nil {
		return fmt.Errorf("save config in %s: %w", dir, err)
	}
	path := filepath.Join(dir, "config.json")
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	return nil
}
