// Package mlm runs Hugging Face fill-mask (masked language) models on
// libtorch through gotch: it loads and saves Hugging Face checkpoint
// directories (config.json, model.safetensors, tokenizer files), predicts
// masked tokens as the Hugging Face fill-mask pipeline does, scores pools of
// masked items for active learning and exposes the forward pass and
// parameters for fine-tuning.
//
// The BERT forward pass reproduces BertForMaskedLM's eval-mode numerics:
// word + position + token-type embeddings, LayerNorm, encoder layers
// (self-attention with the additive padding mask, residual LayerNorms, erf
// GELU) and the MLM head with the decoder tied to the word embeddings.
// DistilBertForMaskedLM (no token types; q_lin … out_lin, sa_layer_norm,
// ffn, output_layer_norm; vocab_transform, vocab_layer_norm and the tied
// vocab_projector) and RobertaForMaskedLM (BERT layers; positions counted
// from padding_idx+1 over non-padding tokens; lm_head with the tied
// decoder) share the same code with their own names.
// ModernBertForMaskedLM has its own forward pass (modernbert.go):
// pre-norm layers with fused QKV attention, rotary position embeddings,
// global and sliding-window local layers and a gated GELU MLP; a final
// LayerNorm; head dense, activation, LayerNorm and the tied decoder.
// Parameters live in a gotch nn.VarStore under their Hugging Face names.
// WordPiece (BERT, DistilBERT) and byte-level BPE (RoBERTa, ModernBERT)
// tokenizers are supported; any model also runs on token ids without one.
//
// libtorch's grad mode is per OS thread, so every entry point that runs
// tensor work locks its goroutine to one OS thread for the duration.
package mlm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/tokenize"
	"github.com/clozeloop/clozeloop/torchrt"
)

// ErrClosed is returned by methods of a Model after Close.
var ErrClosed = errors.New("mlm: model is closed")

// Options configure where and how a model runs.
type Options struct {
	// Device is "auto" (CUDA when libtorch sees a device, else CPU), "cpu",
	// "cuda" or "cuda:N". Empty means "auto".
	Device string
	// Threads is libtorch's intra-op thread count; 0 means the number of
	// CPUs. It is process-wide in libtorch.
	Threads int
	// Seed seeds weight initialisation of new models and libtorch's random
	// generators (dropout).
	Seed uint64
}

// Model is a masked language model with its tokenizer. Its methods are safe
// for concurrent use; tensor work is serialised.
type Model struct {
	cfg    Config
	tok    *tokenize.Tokenizer
	vs     *nn.VarStore
	device gotch.Device
	act    activation // hidden_act, in the encoder
	// headAct is the MLM head's activation: hidden_act, except for
	// RoBERTa whose head always uses the erf GELU.
	headAct activation
	p       bertParams
	seed    uint64

	scale scalar // 1/sqrt(head size)
	// sqrtHead is sqrt(head size), which DistilBERT divides the queries by.
	sqrtHead scalar
	negMin   scalar // the most negative float32, for the padding mask
	one      scalar

	// fast holds the fused encoder layer's stacked parameters (see
	// fastpath.go); fastOff makes forward always take the reference path
	// (tests compare the two).
	fast    fastEncoder
	fastOff bool

	mu     sync.Mutex
	closed bool
}

type linear struct{ w, b *ts.Tensor }
type layerNorm struct{ w, b *ts.Tensor }

// bertLayer is an encoder layer. ModernBERT's pre-norm layers use qkv
// (the fused Wqkv) instead of query, key and value, attnOut for attn.Wo,
// attnLN for attn_norm (nil in layer 0), outLN for mlp_norm, inter for the
// gated mlp.Wi (input and gate stacked) and out for mlp.Wo. ModernBERT's
// biases and LayerNorm biases may be nil.
type bertLayer struct {
	query, key, value, attnOut linear
	qkv                        linear
	attnLN                     layerNorm
	inter, out                 linear
	outLN                      layerNorm
}

// bertParams are the parameters of every family: DistilBERT and ModernBERT
// have no token type embeddings (typeEmb nil), ModernBERT no position
// embeddings (posEmb nil, rotary instead) but a final LayerNorm (finalLN);
// the names differ (see specs).
type bertParams struct {
	wordEmb, posEmb, typeEmb *ts.Tensor
	embLN                    layerNorm
	layers                   []bertLayer
	finalLN                  layerNorm
	headDense                linear
	headLN                   layerNorm
	decoderBias              *ts.Tensor
}

// initKind says how a parameter is initialised in a new model.
type initKind int

const (
	initNormal initKind = iota // normal(0, initializer_range)
	initZeros
	initOnes
	initEmbedding // normal(0, initializer_range), padding row zeroed
	// initTruncNormal is normal(0, std) truncated at ±
	// initializer_cutoff_factor × std (ModernBERT).
	initTruncNormal
)

// paramSpec describes one parameter under its Hugging Face name.
type paramSpec struct {
	name  string
	shape []int64
	init  initKind
	std   float64 // of initTruncNormal
	dst   **ts.Tensor
}

// ParseDevice turns "auto", "cpu", "cuda" or "cuda:N" into a gotch device.
func ParseDevice(s string) (gotch.Device, error) {
	switch s {
	case "", "auto":
		if torchrt.CUDAAvailable() {
			return gotch.CudaBuilder(0), nil
		}
		return gotch.CPU, nil
	case "cpu":
		return gotch.CPU, nil
	}
	n := 0
	if s != "cuda" {
		rest, ok := strings.CutPrefix(s, "cuda:")
		v, err := strconv.Atoi(rest)
		if !ok || err != nil || v < 0 {
			return gotch.Device{}, fmt.Errorf("invalid device %q (want auto, cpu, cuda or cuda:N)", s)
		}
		n = v
	}
	if count := torchrt.CUDADeviceCount(); n >= count {
		return gotch.Device{}, fmt.Errorf("device %q: libtorch sees %d CUDA devices", s, count)
	}
	return gotch.CudaBuilder(uint(n)), nil
}

// New returns a model with cfg and randomly initialised weights, as Hugging
// Face initialises them: normal(0, initializer_range) weights and
// embeddings (the padding token's row zeroed), zero biases, LayerNorm
// weights one. The same cfg and opts.Seed give the same weights. tok may be
// nil for tensor-level use; the text methods then fail.
func New(cfg Config, tok *tokenize.Tokenizer, opts Options) (*Model, error) {
	return newModel(cfg, tok, opts, nil)
}

// newModel builds a model whose parameters come from state (Hugging Face
// names, checked by resolveState) or, when state is nil, from the Hugging
// Face initialisation seeded by opts.Seed.
func newModel(cfg Config, tok *tokenize.Tokenizer, opts Options, state map[string]safetensors.Tensor) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	act, err := parseActivation(cfg.activationKey(), cfg.HiddenAct)
	if err != nil {
		return nil, err
	}
	headAct := act
	switch cfg.family() {
	case ModelTypeRoBERTa:
		// RobertaLMHead applies the erf GELU whatever hidden_act says.
		headAct = actGELU
	case ModelTypeModernBERT:
		if headAct, err = parseActivation("classifier_activation", cfg.ClassifierActivation); err != nil {
			return nil, err
		}
	}
	if tok != nil && tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("%w: tokenizer has %d tokens, more than vocab_size %d", ErrConfig, tok.VocabSize(), cfg.VocabSize)
	}
	device, err := ParseDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := torchrt.SetNumThreads(threads); err != nil {
		return nil, err
	}
	// CPU tensors above 32 MiB on transparent huge pages (process-wide,
	// once): glibc maps them afresh each time, a page fault per 4 KiB.
	if _, err := torchrt.UseHugePages(); err != nil {
		return nil, err
	}
	if err := torchrt.ManualSeed(opts.Seed); err != nil {
		return nil, err
	}
	m := &Model{
		cfg: cfg, tok: tok, device: device, act: act, headAct: headAct, seed: opts.Seed,
		vs:       nn.NewVarStore(device),
		scale:    floatScalar(1 / math.Sqrt(float64(cfg.HiddenSize/cfg.NumAttentionHeads))),
		sqrtHead: floatScalar(math.Sqrt(float64(cfg.HiddenSize / cfg.NumAttentionHeads))),
		negMin:   floatScalar(-math.MaxFloat32),
		one:      floatScalar(1),
	}
	m.p.layers = make([]bertLayer, cfg.NumHiddenLayers)
	specs := m.specs()
	if state != nil {
		resolved, err := resolveState(specs, state)
		if err != nil {
			m.Close()
			return nil, err
		}
		state = resolved
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x636c6f7a656c6f6f))
	for _, s := range specs {
		var vals []float32
		if state != nil {
			vals, err = state[s.name].Float32s()
			if err != nil {
				m.Close()
				return nil, err
			}
		} else {
			vals = make([]float32, numel(s.shape))
			fillInit(vals, s, cfg, rng)
		}
		t, err := m.newParam(s.name, s.shape, vals)
		if err != nil {
			m.Close()
			return nil, err
		}
		*s.dst = t
	}
	m.initFast()
	return m, nil
}

func fillInit(vals []float32, s paramSpec, cfg Config, rng *rand.Rand) {
	switch s.init {
	case initOnes:
		for i := range vals {
			vals[i] = 1
		}
	case initNormal, initEmbedding:
		std := cfg.InitializerRange
		if std <= 0 {
			std = 0.02
		}
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * std)
		}
		if s.init == initEmbedding {
			h := int(s.shape[1])
			clear(vals[cfg.PadTokenID*h : (cfg.PadTokenID+1)*h])
		}
	case initTruncNormal:
		cut := cfg.InitializerCutoffFactor
		if cut <= 0 {
			cut = 2
		}
		for i := range vals {
			z := rng.NormFloat64()
			for math.Abs(z) > cut {
				z = rng.NormFloat64()
			}
			vals[i] = float32(z * s.std)
		}
	}
}

func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// float32Bytes views v as its little-endian bytes (amd64 and arm64 are
// little-endian).
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// newTensor copies vals (float32, shape) into a tensor on the model's
// device.
func (m *Model) newTensor(vals []float32, shape []int64) (*ts.Tensor, error) {
	t, err := ts.OfDataSize(float32Bytes(vals), shape, gotch.Float)
	if err != nil {
		return nil, fmt.Errorf("create tensor of shape %v: %w", shape, err)
	}
	if m.device != gotch.CPU {
		t, err = t.To(m.device, true)
		if err != nil {
			return nil, fmt.Errorf("move tensor to %v: %w", m.device, err)
		}
	}
	return t, nil
}

// newParam creates the trainable VarStore variable called name (dotted
// Hugging Face name) holding vals.
func (m *Model) newParam(name string, shape []int64, vals []float32) (*ts.Tensor, error) {
	t, err := m.newTensor(vals, shape)
	if err != nil {
		return nil, fmt.Errorf("parameter %s: %w", name, err)
	}
	parts := strings.Split(name, ".")
	path := m.vs.Root()
	for _, part := range parts[:len(parts)-1] {
		path = path.Sub(part)
	}
	v, err := path.Add(parts[len(parts)-1], t, true)
	t.MustDrop()
	if err != nil {
		return nil, fmt.Errorf("parameter %s: %w", name, err)
	}
	return v, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Tokenizer returns the model's tokenizer (nil if it has none).
func (m *Model) Tokenizer() *tokenize.Tokenizer { return m.tok }

// Device returns the device the parameters live on.
func (m *Model) Device() gotch.Device { return m.device }

// VarStore returns the variable store holding the parameters, named as in
// Hugging Face checkpoints (e.g. "bert.encoder.layer.0.attention.self.query.weight"),
// all trainable; build optimizers on it. The decoder weight is the word
// embedding matrix (tied) and has no variable of its own.
func (m *Model) VarStore() *nn.VarStore { return m.vs }

// NamedParameters returns the parameters by Hugging Face name, in the order
// of a Hugging Face state dict (tied decoder weight excluded).
func (m *Model) NamedParameters() []NamedTensor {
	specs := m.specs()
	out := make([]NamedTensor, len(specs))
	for i, s := range specs {
		out[i] = NamedTensor{Name: s.name, Tensor: *s.dst}
	}
	return out
}

// NamedTensor is a parameter and its Hugging Face name.
type NamedTensor struct {
	Name   string
	Tensor *ts.Tensor
}

// Close frees the model's tensors. The model cannot be used afterwards.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.fast.free()
	m.vs.Destroy()
	m.p = bertParams{}
	m.scale.free()
	m.sqrtHead.free()
	m.negMin.free()
	m.one.free()
	return nil
}

// lock serialises tensor work and pins the goroutine to its OS thread, so
// that libtorch's thread-local grad mode applies; unlock undoes both.
func (m *Model) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	runtime.LockOSThread()
	return nil
}

func (m *Model) unlock() {
	runtime.UnlockOSThread()
	m.mu.Unlock()
}

// torchError carries a libtorch error out of the forward code, which
// panics with it so that every op need not be checked by hand; catch turns
// it back into an error at the function boundary.
type torchError struct{ err error }

func must(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(torchError{err})
	}
	return t
}

func must2(a, b *ts.Tensor, err error) (*ts.Tensor, *ts.Tensor) {
	if err != nil {
		panic(torchError{err})
	}
	return a, b
}

func check(err error) {
	if err != nil {
		panic(torchError{err})
	}
}

// inPlace runs op, an in-place gotch method on t (Add_, MulScalar_, …),
// and frees the tensor handle it replaced. gotch v0.9.1's in-place methods
// point t at a new libtorch handle to the same tensor and never free the
// old handle, so the tensor's reference count never returns to zero: every
// tensor modified in place would leak its storage (and, when training, its
// autograd graph). Use it for every in-place op on a tensor that is later
// dropped.
func inPlace(t *ts.Tensor, op func() error) error {
	old := lib.Ctensor(t.Ctensor())
	if err := op(); err != nil {
		return err
	}
	if cur := lib.Ctensor(t.Ctensor()); cur != old && old != nil {
		lib.AtFree(old)
		if err := ts.TorchErr(); err != nil {
			return fmt.Errorf("free replaced tensor handle: %w", err)
		}
	}
	return nil
}

// catch recovers a torchError panic into *errp, prefixed with what.
func catch(errp *error, what string) {
	if r := recover(); r != nil {
		te, ok := r.(torchError)
		if !ok {
			panic(r)
		}
		*errp = fmt.Errorf("%s: %w", what, te.err)
	}
}

// Forward runs the embeddings and encoder on a batch and returns the last
// hidden states [B, T, hidden]. inputIDs and attentionMask are int64 [B, T]
// (mask 1 for tokens, 0 for padding; nil means no padding); tokenTypeIDs
// may be nil (all zeros). train enables dropout. The caller owns the result
// and must drop it, and is responsible for grad mode (ts.NoGrad or a
// ts.NoGradGuard, on a goroutine locked to its OS thread) and for not
// calling Forward concurrently with Close.
func (m *Model) Forward(inputIDs, attentionMask, tokenTypeIDs *ts.Tensor, train bool) (hidden *ts.Tensor, err error) {
	// libtch keeps its last error per OS thread: an op and the check of its
	// error must run on the same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s scope
	defer s.free()
	defer catch(&err, m.cfg.ModelType+" forward")
	return s.release(m.forward(&s, ct(inputIDs), ctOpt(attentionMask), ctOpt(tokenTypeIDs), train)), nil
}

// dropout applies dropout with probability p to x in training, consuming
// x.
func (m *Model) dropout(s *scope, x lib.Ctensor, p float64, train bool) lib.Ctensor {
	if !train || p == 0 {
		return x
	}
	return s.consume(x, s.dropout(x, p))
}

// forward runs the embeddings and encoder on ids (and the optional mask
// and types) and returns the last hidden states, a handle owned by s.
// Without dropout and autograd it runs each encoder layer as one fused
// libtorch operation where that is exact (see fastpath.go), else layer by
// layer.
func (m *Model) forward(s *scope, ids, mask, types lib.Ctensor, train bool) lib.Ctensor {
	if m.cfg.ModelType == ModelTypeModernBERT {
		return m.modernForward(s, ids, mask, types, train)
	}
	c := m.cfg
	size, err := dims(ids)
	check(err)
	if len(size) != 2 {
		check(fmt.Errorf("input_ids must be [batch, length], got shape %v", size))
	}
	B, T := size[0], size[1]
	if T > int64(c.MaxSequenceLength()) {
		check(fmt.Errorf("sequence length %d exceeds the model's maximum %d (max_position_embeddings %d)", T, c.MaxSequenceLength(), c.MaxPositionEmbeddings))
	}
	H := int64(c.HiddenSize)
	p := &m.p

	pos := m.positionIDs(s, ids, T)
	x := s.embedding(p.wordEmb, ids)
	pe := s.consume(pos, s.embedding(p.posEmb, pos))
	s.add_(x, pe)
	s.drop(pe)
	switch {
	case p.typeEmb == nil:
		if types != nil {
			check(fmt.Errorf("%s has no token type embeddings, got token_type_ids", c.ModelType))
		}
	case types != nil:
		te := s.embedding(p.typeEmb, types)
		s.add_(x, te)
		s.drop(te)
	default:
		row := s.selectIndex(ct(p.typeEmb), 0, 0)
		s.add_(x, row)
		s.drop(row)
	}
	h := s.consume(x, s.layerNorm(x, []int64{H}, p.embLN, c.LayerNormEps))
	h = m.dropout(s, h, c.HiddenDropoutProb, train)

	if m.useFast(train) {
		var pad lib.Ctensor
		ok := true
		if mask != nil {
			pad, ok = m.keyPadding(s, mask, T)
		}
		if ok {
			h = m.fastLayers(s, h, pad)
			if pad != nil {
				s.drop(pad)
			}
			return h
		}
	}
	var ext lib.Ctensor
	if mask != nil {
		ext = m.paddingMask(s, mask, B, T)
	}
	for i := range p.layers {
		h = m.layer(s, h, ext, &p.layers[i], B, T, train)
	}
	if ext != nil {
		s.drop(ext)
	}
	return h
}

// paddingMask returns the additive attention mask [B, 1, 1, T] of mask
// [B, T]: 0 for tokens, the most negative float32 for padding.
func (m *Model) paddingMask(s *scope, mask lib.Ctensor, B, T int64) lib.Ctensor {
	f := s.totype(mask, gotch.Float)
	f = s.consume(f, s.rsubScalar(f, m.one))
	f = s.consume(f, s.mulScalar(f, m.negMin))
	return s.consume(f, s.view(f, []int64{B, 1, 1, T}))
}

// positionIDs returns the position ids of ids [B, T]: 0 … T-1 (as [T],
// broadcast over the batch) for BERT and DistilBERT; for RoBERTa, as
// Hugging Face's create_position_ids_from_input_ids, padding_idx+1 onwards
// counting only non-padding tokens, with padding tokens at padding_idx
// ([B, T]).
func (m *Model) positionIDs(s *scope, ids lib.Ctensor, T int64) lib.Ctensor {
	if m.cfg.family() != ModelTypeRoBERTa {
		return s.arange(T, m.device)
	}
	pad := lib.AtsInt(int64(m.cfg.PadTokenID))
	defer lib.AtsFree(pad)
	notPad := s.neScalar(ids, pad)
	notPad = s.consume(notPad, s.totype(notPad, gotch.Int64))
	cum := s.cumsum(notPad, 1, gotch.Int64)
	pos := s.consume(cum, s.mul(cum, notPad))
	s.drop(notPad)
	return s.consume(pos, s.addScalar(pos, pad))
}

// attend is scaled dot-product attention over heads: q, k, v [B, nh, T,
// hd] (consumed), the additive mask ext (kept; nil for none), scores
// multiplied by 1/sqrt(hd) when scale, attention dropout in training. It
// returns the heads' outputs joined, [B, T, H].
func (m *Model) attend(s *scope, q, k, v, ext lib.Ctensor, scale bool, B, T int64, train bool) lib.Ctensor {
	kt := s.consume(k, s.transpose(k, -1, -2))
	scores := s.consume(q, s.matmul(q, kt))
	s.drop(kt)
	if scale {
		s.mulScalar_(scores, m.scale)
	}
	if ext != nil {
		s.add_(scores, ext)
	}
	probs := s.consume(scores, s.softmax(scores, -1))
	probs = m.dropout(s, probs, m.cfg.AttentionProbsDropoutProb, train)
	ctx := s.consume(probs, s.matmul(probs, v))
	s.drop(v)
	ctx = s.consume(ctx, s.transpose(ctx, 1, 2))
	return s.consume(ctx, s.reshape(ctx, []int64{B, T, int64(m.cfg.HiddenSize)}))
}

// layer runs one encoder layer on x [B, T, H], consuming x.
func (m *Model) layer(s *scope, x, ext lib.Ctensor, l *bertLayer, B, T int64, train bool) lib.Ctensor {
	c := m.cfg
	H := int64(c.HiddenSize)
	nh := int64(c.NumAttentionHeads)
	hd := H / nh
	heads := func(w linear) lib.Ctensor {
		t := s.linear(x, w.w, w.b)
		t = s.consume(t, s.view(t, []int64{B, T, nh, hd}))
		return s.consume(t, s.transpose(t, 1, 2))
	}
	q := heads(l.query)
	k := heads(l.key)
	v := heads(l.value)
	// DistilBERT scales the queries, BERT and RoBERTa the scores: the same
	// math, rounded differently, and parity is kept with each.
	distil := c.ModelType == ModelTypeDistilBERT
	if distil {
		q = s.consume(q, s.divScalar(q, m.sqrtHead))
	}
	ctx := m.attend(s, q, k, v, ext, !distil, B, T, train)
	a := s.consume(ctx, s.linear(ctx, l.attnOut.w, l.attnOut.b))
	a = m.dropout(s, a, c.HiddenDropoutProb, train)
	s.add_(a, x)
	s.drop(x)
	h1 := s.consume(a, s.layerNorm(a, []int64{H}, l.attnLN, c.LayerNormEps))

	i := s.linear(h1, l.inter.w, l.inter.b)
	i = m.activate(s, i)
	o := s.consume(i, s.linear(i, l.out.w, l.out.b))
	o = m.dropout(s, o, c.HiddenDropoutProb, train)
	s.add_(o, h1)
	s.drop(h1)
	return s.consume(o, s.layerNorm(o, []int64{H}, l.outLN, c.LayerNormEps))
}

// activate applies hidden_act to x, consuming x.
func (m *Model) activate(s *scope, x lib.Ctensor) lib.Ctensor { return applyActivation(s, m.act, x) }

// applyActivation applies act to x, consuming x.
func applyActivation(s *scope, act activation, x lib.Ctensor) lib.Ctensor {
	switch act {
	case actGELUTanh:
		return s.consume(x, s.gelu(x, true))
	case actReLU:
		return s.consume(x, s.relu(x))
	}
	return s.consume(x, s.gelu(x, false))
}

// MLMHead returns vocabulary logits [N, vocab] for hidden states [N,
// hidden] (typically gathered at the masked positions with GatherPositions):
// dense, activation, LayerNorm, then the decoder tied to the word
// embeddings plus the output bias. The caller owns the result.
func (m *Model) MLMHead(hidden *ts.Tensor) (logits *ts.Tensor, err error) {
	var s scope
	defer s.free()
	defer catch(&err, "mlm head")
	return s.release(m.head(&s, ct(hidden))), nil
}

// head returns the MLM logits of hidden (kept), a handle owned by s.
func (m *Model) head(s *scope, hidden lib.Ctensor) lib.Ctensor {
	p := &m.p
	t := s.linear(hidden, p.headDense.w, p.headDense.b)
	t = applyActivation(s, m.headAct, t)
	u := s.consume(t, s.layerNorm(t, []int64{int64(m.cfg.HiddenSize)}, p.headLN, m.cfg.LayerNormEps))
	return s.consume(u, s.linear(u, p.wordEmb, p.decoderBias))
}

// GatherPositions returns the rows of hidden [B, T, H] at the flat
// positions b*T+t given in flat (int64 [N]), as [N, H]. The caller owns the
// result.
func GatherPositions(hidden, flat *ts.Tensor) (out *ts.Tensor, err error) {
	var s scope
	defer s.free()
	defer catch(&err, "gather positions")
	return s.release(s.gather(ct(hidden), ct(flat))), nil
}
