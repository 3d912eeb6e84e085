package mlm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// Model families (the Hugging Face model_type values) this package runs.
const (
	ModelTypeBERT       = "bert"
	ModelTypeDistilBERT = "distilbert"
	ModelTypeRoBERTa    = "roberta"
	ModelTypeModernBERT = "modernbert"
	// ModelTypeXLMRoBERTa is XLM-RoBERTa: RoBERTa's architecture and
	// tensor names (XLMRobertaForMaskedLM subclasses RobertaForMaskedLM)
	// with a SentencePiece Unigram tokenizer. It runs as the RoBERTa family
	// and keeps its own model_type and architectures when saved.
	ModelTypeXLMRoBERTa = "xlm-roberta"
)

// ErrConfig is wrapped by every error that reports an invalid or unsupported
// model configuration.
var ErrConfig = errors.New("invalid model config")

// Config is a fill-mask model configuration, read from and written to a
// Hugging Face config.json. Fields use the BERT names; DistilBERT's own
// keys (dim, n_layers, n_heads, hidden_dim, activation, dropout,
// attention_dropout) and ModernBERT's (hidden_activation, norm_eps,
// attention_dropout) are mapped onto them when reading and back when
// writing. The fields after PositionEmbeddingType are ModernBERT's alone
// and are zero for the other families.
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

	// NormBias, AttentionBias, MLPBias and ClassifierBias say whether the
	// LayerNorms, the attention projections (Wqkv, Wo), the MLP (Wi, Wo)
	// and the head's dense layer have biases; DecoderBias must be true.
	NormBias       bool `json:"norm_bias"`
	AttentionBias  bool `json:"attention_bias"`
	MLPBias        bool `json:"mlp_bias"`
	ClassifierBias bool `json:"classifier_bias"`
	DecoderBias    bool `json:"decoder_bias"`
	// ClassifierActivation is the MLM head's activation (hidden_act
	// applies to the gated MLP).
	ClassifierActivation string `json:"classifier_activation"`
	// EmbeddingDropout follows the embedding LayerNorm, MLPDropout the
	// gated activation; attention_dropout (AttentionProbsDropoutProb)
	// applies to the attention probabilities and the attention output.
	EmbeddingDropout float64 `json:"embedding_dropout"`
	MLPDropout       float64 `json:"mlp_dropout"`
	// GlobalRopeTheta and LocalRopeTheta are the rotary embedding bases of
	// the global and the sliding-window layers. Layer i is global when
	// i % GlobalAttnEveryNLayers == 0; the others let a token attend to
	// the keys at most LocalAttention/2 positions away.
	GlobalRopeTheta        float64 `json:"global_rope_theta"`
	LocalRopeTheta         float64 `json:"local_rope_theta"`
	LocalAttention         int     `json:"local_attention"`
	GlobalAttnEveryNLayers int     `json:"global_attn_every_n_layers"`
	// InitializerCutoffFactor truncates new weights' normal distribution
	// at ± factor × std.
	InitializerCutoffFactor float64 `json:"initializer_cutoff_factor"`

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

// ModernBERTBaseConfig returns the published answerdotai/ModernBERT-base
// configuration (the defaults of transformers' ModernBertConfig).
func ModernBERTBaseConfig() Config {
	return Config{
		ModelType: ModelTypeModernBERT, Architectures: []string{"ModernBertForMaskedLM"},
		VocabSize: 50368, HiddenSize: 768, NumHiddenLayers: 22, NumAttentionHeads: 12,
		IntermediateSize: 1152, HiddenAct: "gelu", MaxPositionEmbeddings: 8192, InitializerRange: 0.02,
		LayerNormEps: 1e-5, PadTokenID: 50283, DecoderBias: true, ClassifierActivation: "gelu",
		GlobalRopeTheta: 160000, LocalRopeTheta: 10000, LocalAttention: 128, GlobalAttnEveryNLayers: 3,
		InitializerCutoffFactor: 2,
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
	case ModelTypeBERT, ModelTypeRoBERTa, ModelTypeXLMRoBERTa, ModelTypeDistilBERT, ModelTypeModernBERT:
	default:
		return fmt.Errorf("%w: unsupported model_type %q (supported: bert, distilbert, modernbert, roberta, xlm-roberta)", ErrConfig, c.ModelType)
	}
	if _, err := parseActivation(c.activationKey(), c.HiddenAct); err != nil {
		return err
	}
	if c.ModelType == ModelTypeModernBERT {
		if err := c.validateModernBERT(); err != nil {
			return err
		}
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
	if c.hasTokenTypes() && c.TypeVocabSize <= 0 {
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
		key := "layer_norm_eps"
		if c.ModelType == ModelTypeModernBERT {
			key = "norm_eps"
		}
		return fmt.Errorf("%w: %s must be positive, got %g", ErrConfig, key, c.LayerNormEps)
	}
	if c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize {
		return fmt.Errorf("%w: pad_token_id %d outside the vocabulary of %d", ErrConfig, c.PadTokenID, c.VocabSize)
	}
	if c.family() == ModelTypeRoBERTa && c.MaxPositionEmbeddings <= c.PadTokenID+1 {
		return fmt.Errorf("%w: max_position_embeddings %d leaves no positions after padding_idx %d", ErrConfig, c.MaxPositionEmbeddings, c.PadTokenID)
	}
	return nil
}

// family returns the model type whose architecture c runs: ModelTypeRoBERTa
// for XLM-RoBERTa, c.ModelType for the others.
func (c Config) family() string {
	if c.ModelType == ModelTypeXLMRoBERTa {
		return ModelTypeRoBERTa
	}
	return c.ModelType
}

// hasTokenTypes reports whether the family has token type embeddings.
func (c Config) hasTokenTypes() bool {
	return c.ModelType != ModelTypeDistilBERT && c.ModelType != ModelTypeModernBERT
}

// activationKey is the config.json key of HiddenAct in c's family.
func (c Config) activationKey() string {
	switch c.ModelType {
	case ModelTypeDistilBERT:
		return "activation"
	case ModelTypeModernBERT:
		return "hidden_activation"
	}
	return "hidden_act"
}

// validateModernBERT checks ModernBERT's own settings.
func (c Config) validateModernBERT() error {
	if _, err := parseActivation("classifier_activation", c.ClassifierActivation); err != nil {
		return err
	}
	if !c.DecoderBias {
		return fmt.Errorf("%w: decoder_bias false is not supported (the decoder must have its bias)", ErrConfig)
	}
	if c.HiddenSize%c.NumAttentionHeads == 0 && (c.HiddenSize/c.NumAttentionHeads)%2 != 0 {
		return fmt.Errorf("%w: head size %d is odd; rotary position embeddings need an even head size", ErrConfig, c.HiddenSize/c.NumAttentionHeads)
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"local_attention", c.LocalAttention}, {"global_attn_every_n_layers", c.GlobalAttnEveryNLayers}} {
		if p.v <= 0 {
			return fmt.Errorf("%w: %s must be positive, got %d", ErrConfig, p.name, p.v)
		}
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"global_rope_theta", c.GlobalRopeTheta}, {"local_rope_theta", c.LocalRopeTheta}} {
		if !(p.v > 0) || math.IsInf(p.v, 0) {
			return fmt.Errorf("%w: %s must be positive, got %g", ErrConfig, p.name, p.v)
		}
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"embedding_dropout", c.EmbeddingDropout}, {"mlp_dropout", c.MLPDropout}} {
		if p.v < 0 || p.v >= 1 {
			return fmt.Errorf("%w: %s must be in [0, 1), got %g", ErrConfig, p.name, p.v)
		}
	}
	if c.InitializerCutoffFactor < 0 {
		return fmt.Errorf("%w: initializer_cutoff_factor must not be negative, got %g", ErrConfig, c.InitializerCutoffFactor)
	}
	return nil
}

// MaxSequenceLength returns the longest input (special tokens included) the
// position embeddings allow.
func (c Config) MaxSequenceLength() int {
	if c.family() == ModelTypeRoBERTa {
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

// parseActivation parses the activation name given under config key key.
func parseActivation(key, name string) (activation, error) {
	switch name {
	case "gelu":
		return actGELU, nil
	case "gelu_new", "gelu_pytorch_tanh":
		return actGELUTanh, nil
	case "relu":
		return actReLU, nil
	}
	return 0, fmt.Errorf("%w: unsupported %s %q (supported: gelu (erf), gelu_new, gelu_pytorch_tanh, relu)", ErrConfig, key, name)
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

// modernKeys returns the ModernBERT config keys with the Config keys they
// map to.
func modernKeys() [][2]string {
	return [][2]string{{"hidden_activation", "hidden_act"}, {"norm_eps", "layer_norm_eps"}, {"attention_dropout", "attention_probs_dropout_prob"}}
}

// bertOnlyKeys are the Config keys that ModernBERT does not have (in their
// BERT spelling); a ModernBERT config.json that carries them (published
// ones have layer_norm_eps and position_embedding_type) keeps them as
// uninterpreted extras.
func bertOnlyKeys() []string {
	return []string{"hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "type_vocab_size",
		"layer_norm_eps", "position_embedding_type"}
}

// modernOnlyKeys are the Config keys of ModernBERT alone.
func modernOnlyKeys() []string {
	return []string{"norm_bias", "attention_bias", "mlp_bias", "classifier_bias", "decoder_bias",
		"classifier_activation", "embedding_dropout", "mlp_dropout", "global_rope_theta", "local_rope_theta",
		"local_attention", "global_attn_every_n_layers", "initializer_cutoff_factor"}
}

// isKnownKey reports whether Config interprets the config.json key k (in
// its Config spelling) for model type mt.
func isKnownKey(mt, k string) bool {
	switch k {
	case "model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
		"num_attention_heads", "intermediate_size", "hidden_act", "attention_probs_dropout_prob",
		"max_position_embeddings", "initializer_range", "layer_norm_eps", "pad_token_id":
		return true
	}
	if mt == ModelTypeModernBERT {
		return slices.Contains(modernOnlyKeys(), k)
	}
	switch k {
	case "hidden_dropout_prob", "type_vocab_size", "position_embedding_type":
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
	case ModelTypeXLMRoBERTa:
		// XLMRobertaConfig keeps BertConfig's defaults but for pad_token_id.
		c.PadTokenID = 1
	case ModelTypeModernBERT:
		c = ModernBERTBaseConfig()
		c.Architectures = nil
	}
	var (
		leftover map[string]json.RawMessage
		modern   modernRaw
	)
	if mt == ModelTypeModernBERT {
		var err error
		if leftover, modern, err = takeModernKeys(raw); err != nil {
			return Config{}, err
		}
	}
	known, _ := json.Marshal(filterKeys(mt, raw, true))
	if err := json.Unmarshal(known, &c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if mt == ModelTypeModernBERT {
		modern.apply(&c)
	}
	if mt == ModelTypeDistilBERT {
		c.TypeVocabSize = 0
		c.LayerNormEps = 1e-12
	}
	c.Extra = filterKeys(mt, raw, false)
	for k, v := range leftover {
		c.Extra[k] = v
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func filterKeys(mt string, raw map[string]json.RawMessage, known bool) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range raw {
		if isKnownKey(mt, k) == known {
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
	switch c.ModelType {
	case ModelTypeDistilBERT:
		for _, k := range distilKeys() {
			m[k[0]] = m[k[1]]
			delete(m, k[1])
		}
		delete(m, "type_vocab_size")
		delete(m, "layer_norm_eps")
		delete(m, "position_embedding_type")
	case ModelTypeModernBERT:
		for _, k := range modernKeys() {
			m[k[0]] = m[k[1]]
		}
		for _, k := range bertOnlyKeys() {
			delete(m, k)
		}
	}
	if c.ModelType != ModelTypeModernBERT {
		for _, k := range modernOnlyKeys() {
			delete(m, k)
		}
	}
	for k, v := range c.Extra {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
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
	case ModelTypeXLMRoBERTa:
		return "XLMRobertaForMaskedLM"
	case ModelTypeModernBERT:
		return "ModernBertForMaskedLM"
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

// modernRaw holds the ModernBERT settings that ParseConfig reads after the
// plain keys: a null local_rope_theta (meaning the global theta) and the
// per-layer-type rotary thetas of transformers 5's rope_parameters.
type modernRaw struct {
	localThetaNull          bool
	globalTheta, localTheta *float64
}

// takeModernKeys moves the BERT-only keys of a ModernBERT config.json out
// of raw (they are returned, to be kept as extras), renames ModernBERT's
// keys to Config's, and checks and removes the settings that the newer
// transformers versions write (layer_types, rope_parameters) or that
// this package does not implement.
func takeModernKeys(raw map[string]json.RawMessage) (leftover map[string]json.RawMessage, mr modernRaw, err error) {
	leftover = map[string]json.RawMessage{}
	for _, k := range bertOnlyKeys() {
		if v, ok := raw[k]; ok {
			leftover[k] = v
			delete(raw, k)
		}
	}
	for _, k := range modernKeys() {
		if v, ok := raw[k[0]]; ok {
			raw[k[1]] = v
			delete(raw, k[0])
		}
	}
	isNull := func(k string) bool { v, ok := raw[k]; return ok && string(bytes.TrimSpace(v)) == "null" }
	if isNull("local_rope_theta") {
		mr.localThetaNull = true
		delete(raw, "local_rope_theta")
	}
	var tie bool
	if v, ok := raw["tie_word_embeddings"]; ok && json.Unmarshal(v, &tie) == nil && !tie {
		return nil, mr, fmt.Errorf("%w: tie_word_embeddings false is not supported (the decoder shares the token embeddings)", ErrConfig)
	}
	if v, ok := raw["rope_scaling"]; ok && !isNull("rope_scaling") {
		return nil, mr, fmt.Errorf("%w: rope_scaling %s is not supported (only plain rotary embeddings)", ErrConfig, v)
	}
	if v, ok := raw["rope_parameters"]; ok {
		if !isNull("rope_parameters") {
			var rp map[string]map[string]json.RawMessage
			if err := json.Unmarshal(v, &rp); err != nil {
				return nil, mr, fmt.Errorf("%w: rope_parameters: %v", ErrConfig, err)
			}
			for typ, params := range rp {
				var dst **float64
				switch typ {
				case "full_attention":
					dst = &mr.globalTheta
				case "sliding_attention":
					dst = &mr.localTheta
				default:
					return nil, mr, fmt.Errorf("%w: rope_parameters for layer type %q is not supported (full_attention, sliding_attention)", ErrConfig, typ)
				}
				for k, pv := range params {
					switch k {
					case "rope_type":
						var rt string
						if json.Unmarshal(pv, &rt) != nil || rt != "default" {
							return nil, mr, fmt.Errorf("%w: rope_parameters.%s.rope_type %s is not supported (only \"default\")", ErrConfig, typ, pv)
						}
					case "rope_theta":
						var th float64
						if err := json.Unmarshal(pv, &th); err != nil {
							return nil, mr, fmt.Errorf("%w: rope_parameters.%s.rope_theta: %v", ErrConfig, typ, err)
						}
						*dst = &th
					default:
						return nil, mr, fmt.Errorf("%w: rope_parameters.%s.%s is not supported (only rope_type \"default\" and rope_theta)", ErrConfig, typ, k)
					}
				}
			}
		}
		delete(raw, "rope_parameters")
	}
	if v, ok := raw["layer_types"]; ok {
		if !isNull("layer_types") {
			n, layers := 3, 22
			if nv, ok := raw["global_attn_every_n_layers"]; ok {
				if err := json.Unmarshal(nv, &n); err != nil {
					return nil, mr, fmt.Errorf("%w: global_attn_every_n_layers: %v", ErrConfig, err)
				}
			}
			if lv, ok := raw["num_hidden_layers"]; ok {
				if err := json.Unmarshal(lv, &layers); err != nil {
					return nil, mr, fmt.Errorf("%w: num_hidden_layers: %v", ErrConfig, err)
				}
			}
			var types []string
			if err := json.Unmarshal(v, &types); err != nil {
				return nil, mr, fmt.Errorf("%w: layer_types: %v", ErrConfig, err)
			}
			if n <= 0 || len(types) != layers {
				return nil, mr, fmt.Errorf("%w: layer_types has %d entries for %d layers", ErrConfig, len(types), layers)
			}
			for i, typ := range types {
				want := "full_attention"
				if i%n != 0 {
					want = "sliding_attention"
				}
				if typ != want {
					return nil, mr, fmt.Errorf("%w: layer_types[%d] is %q, but global_attn_every_n_layers %d makes it %q (only that pattern is supported)", ErrConfig, i, typ, n, want)
				}
			}
		}
		delete(raw, "layer_types")
	}
	return leftover, mr, nil
}

// apply sets the settings of mr on c (after the plain keys were read).
func (mr modernRaw) apply(c *Config) {
	if mr.localThetaNull {
		c.LocalRopeTheta = c.GlobalRopeTheta
	}
	if mr.globalTheta != nil {
		c.GlobalRopeTheta = *mr.globalTheta
	}
	if mr.localTheta != nil {
		c.LocalRopeTheta = *mr.localTheta
	}
}
