package mlm

import (
	"math"
	"strconv"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// archNames are the Hugging Face tensor names that differ between the
// model families: the tied decoder weight (accepted in a checkpoint,
// checked against the word embeddings and never written), the output bias
// and its alias (an older name of the same tensor).
type archNames struct {
	prefix        string // "bert.", "roberta.", "distilbert.", "model."
	decoderWeight string
	bias          string
	biasAlias     string
}

// namesFor returns the tensor names of a model_type (XLM-RoBERTa's are
// RoBERTa's).
func namesFor(modelType string) archNames {
	switch modelType {
	case ModelTypeDistilBERT:
		return archNames{prefix: "distilbert.", decoderWeight: "vocab_projector.weight", bias: "vocab_projector.bias"}
	case ModelTypeRoBERTa, ModelTypeXLMRoBERTa:
		return archNames{prefix: "roberta.", decoderWeight: "lm_head.decoder.weight", bias: "lm_head.bias", biasAlias: "lm_head.decoder.bias"}
	case ModelTypeModernBERT:
		return archNames{prefix: "model.", decoderWeight: "decoder.weight", bias: "decoder.bias"}
	}
	return archNames{prefix: "bert.", decoderWeight: "cls.predictions.decoder.weight", bias: "cls.predictions.bias", biasAlias: "cls.predictions.decoder.bias"}
}

// namesOfSpecs returns the tensor names of the family whose parameters
// specs lists (its first spec is the word embeddings).
func namesOfSpecs(specs []paramSpec) archNames {
	for _, mt := range []string{ModelTypeDistilBERT, ModelTypeRoBERTa, ModelTypeModernBERT} {
		if len(specs) > 0 && strings.HasPrefix(specs[0].name, namesFor(mt).prefix) {
			return namesFor(mt)
		}
	}
	return namesFor(ModelTypeBERT)
}

// ignored reports tensors that Hugging Face checkpoints of the family may
// carry but the masked LM does not use (pooler, next-sentence head, index
// buffers).
func (a archNames) ignored(name string) bool {
	switch name {
	case a.prefix + "embeddings.position_ids", a.prefix + "embeddings.token_type_ids":
		return true
	}
	return strings.HasPrefix(name, a.prefix+"pooler.") || strings.HasPrefix(name, "cls.seq_relationship.")
}

// specs lists the model's parameters in Hugging Face naming, in the order
// of a Hugging Face state dict, bound to the fields of m.p that hold them.
// The word embeddings come first.
func (m *Model) specs() []paramSpec {
	c := m.cfg
	V, H, I := int64(c.VocabSize), int64(c.HiddenSize), int64(c.IntermediateSize)
	P := int64(c.MaxPositionEmbeddings)
	p := &m.p
	var s []paramSpec
	add := func(name string, shape []int64, init initKind, dst **ts.Tensor) {
		s = append(s, paramSpec{name: name, shape: shape, init: init, dst: dst})
	}
	if c.ModelType == ModelTypeModernBERT {
		return m.modernSpecs()
	}
	lin := func(name string, out, in int64, l *linear) {
		add(name+".weight", []int64{out, in}, initNormal, &l.w)
		add(name+".bias", []int64{out}, initZeros, &l.b)
	}
	ln := func(name string, l *layerNorm) {
		add(name+".weight", []int64{H}, initOnes, &l.w)
		add(name+".bias", []int64{H}, initZeros, &l.b)
	}
	if c.ModelType == ModelTypeDistilBERT {
		add("distilbert.embeddings.word_embeddings.weight", []int64{V, H}, initEmbedding, &p.wordEmb)
		add("distilbert.embeddings.position_embeddings.weight", []int64{P, H}, initNormal, &p.posEmb)
		ln("distilbert.embeddings.LayerNorm", &p.embLN)
		for i := range p.layers {
			l := &p.layers[i]
			pre := "distilbert.transformer.layer." + strconv.Itoa(i) + "."
			lin(pre+"attention.q_lin", H, H, &l.query)
			lin(pre+"attention.k_lin", H, H, &l.key)
			lin(pre+"attention.v_lin", H, H, &l.value)
			lin(pre+"attention.out_lin", H, H, &l.attnOut)
			ln(pre+"sa_layer_norm", &l.attnLN)
			lin(pre+"ffn.lin1", I, H, &l.inter)
			lin(pre+"ffn.lin2", H, I, &l.out)
			ln(pre+"output_layer_norm", &l.outLN)
		}
		lin("vocab_transform", H, H, &p.headDense)
		ln("vocab_layer_norm", &p.headLN)
		add("vocab_projector.bias", []int64{V}, initZeros, &p.decoderBias)
		return s
	}
	// BERT and RoBERTa (XLM-RoBERTa too) share the embedding and encoder
	// names under their own prefix. RoBERTa's position embeddings have a
	// padding row.
	pre := namesFor(c.ModelType).prefix
	posInit := initNormal
	roberta := c.family() == ModelTypeRoBERTa
	if roberta {
		posInit = initEmbedding
	}
	add(pre+"embeddings.word_embeddings.weight", []int64{V, H}, initEmbedding, &p.wordEmb)
	add(pre+"embeddings.position_embeddings.weight", []int64{P, H}, posInit, &p.posEmb)
	add(pre+"embeddings.token_type_embeddings.weight", []int64{int64(c.TypeVocabSize), H}, initNormal, &p.typeEmb)
	ln(pre+"embeddings.LayerNorm", &p.embLN)
	for i := range p.layers {
		l := &p.layers[i]
		lp := pre + "encoder.layer." + strconv.Itoa(i) + "."
		lin(lp+"attention.self.query", H, H, &l.query)
		lin(lp+"attention.self.key", H, H, &l.key)
		lin(lp+"attention.self.value", H, H, &l.value)
		lin(lp+"attention.output.dense", H, H, &l.attnOut)
		ln(lp+"attention.output.LayerNorm", &l.attnLN)
		lin(lp+"intermediate.dense", I, H, &l.inter)
		lin(lp+"output.dense", H, I, &l.out)
		ln(lp+"output.LayerNorm", &l.outLN)
	}
	if roberta {
		lin("lm_head.dense", H, H, &p.headDense)
		ln("lm_head.layer_norm", &p.headLN)
		add("lm_head.bias", []int64{V}, initZeros, &p.decoderBias)
		return s
	}
	lin("cls.predictions.transform.dense", H, H, &p.headDense)
	ln("cls.predictions.transform.LayerNorm", &p.headLN)
	add("cls.predictions.bias", []int64{V}, initZeros, &p.decoderBias)
	return s
}

// modernSpecs lists ModernBertForMaskedLM's parameters (see specs). Layer
// 0 has no attention LayerNorm (an identity in Hugging Face's model); the
// biases exist as norm_bias, attention_bias, mlp_bias and classifier_bias
// say. New weights are drawn as Hugging Face's ModernBERT does: truncated
// normal with std initializer_range for the input projections (Wqkv, Wi,
// embeddings) and initializer_range/sqrt(2·layers) for the output ones
// (attention Wo, mlp Wo, head dense).
func (m *Model) modernSpecs() []paramSpec {
	c := m.cfg
	V, H, I := int64(c.VocabSize), int64(c.HiddenSize), int64(c.IntermediateSize)
	p := &m.p
	stdIn := c.InitializerRange
	if stdIn <= 0 {
		stdIn = 0.02
	}
	stdOut := stdIn / math.Sqrt(2*float64(c.NumHiddenLayers))
	var s []paramSpec
	add := func(name string, shape []int64, init initKind, std float64, dst **ts.Tensor) {
		s = append(s, paramSpec{name: name, shape: shape, init: init, std: std, dst: dst})
	}
	lin := func(name string, out, in int64, bias bool, std float64, l *linear) {
		add(name+".weight", []int64{out, in}, initTruncNormal, std, &l.w)
		if bias {
			add(name+".bias", []int64{out}, initZeros, 0, &l.b)
		}
	}
	ln := func(name string, l *layerNorm) {
		add(name+".weight", []int64{H}, initOnes, 0, &l.w)
		if c.NormBias {
			add(name+".bias", []int64{H}, initZeros, 0, &l.b)
		}
	}
	add("model.embeddings.tok_embeddings.weight", []int64{V, H}, initTruncNormal, stdIn, &p.wordEmb)
	ln("model.embeddings.norm", &p.embLN)
	for i := range p.layers {
		l := &p.layers[i]
		pre := "model.layers." + strconv.Itoa(i) + "."
		if i > 0 {
			ln(pre+"attn_norm", &l.attnLN)
		}
		lin(pre+"attn.Wqkv", 3*H, H, c.AttentionBias, stdIn, &l.qkv)
		lin(pre+"attn.Wo", H, H, c.AttentionBias, stdOut, &l.attnOut)
		ln(pre+"mlp_norm", &l.outLN)
		lin(pre+"mlp.Wi", 2*I, H, c.MLPBias, stdIn, &l.inter)
		lin(pre+"mlp.Wo", H, I, c.MLPBias, stdOut, &l.out)
	}
	ln("model.final_norm", &p.finalLN)
	lin("head.dense", H, H, c.ClassifierBias, stdOut, &p.headDense)
	ln("head.norm", &p.headLN)
	add("decoder.bias", []int64{V}, initZeros, 0, &p.decoderBias)
	return s
}
