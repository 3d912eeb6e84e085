package mlm

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ModernBERT's forward pass reproduces ModernBertForMaskedLM in eval mode
// with the eager (and sdpa) attention of Hugging Face, which work on the
// padded batch: token embeddings and LayerNorm; pre-norm layers (layer 0
// without the attention LayerNorm) of fused-QKV attention with rotary
// position embeddings (positions 0 … T-1, padding included, as that path
// counts them) and a gated GELU MLP, each added to the residual stream;
// a final LayerNorm. Layer i attends globally when i %
// global_attn_every_n_layers == 0, with rotary base global_rope_theta;
// the others attend to keys at most local_attention/2 positions away,
// with local_rope_theta. Padded keys and keys outside the window get the
// most negative float32 added to their scores, as Hugging Face's masks do.

// rotary holds the rotary embedding tables of one base for a length T:
// cos [T, head] and sin with the sign of rotate_half folded in
// ([-sin | sin] over the two halves), so that rotating x is
// x·cos + roll(x, head/2)·sin.
type rotary struct{ cos, sin *ts.Tensor }

func (r rotary) drop() {
	r.cos.MustDrop()
	r.sin.MustDrop()
}

// newRotary builds the tables of base theta for T positions, computing
// the inverse frequencies and angles in float32 as Hugging Face does.
func (m *Model) newRotary(theta float64, T int64) rotary {
	hd := int64(m.cfg.HiddenSize / m.cfg.NumAttentionHeads)
	half := hd / 2
	inv := make([]float32, half)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(theta, float64(float32(2*i)/float32(hd))))
	}
	cos := make([]float32, T*hd)
	sin := make([]float32, T*hd)
	for p := int64(0); p < T; p++ {
		for i := int64(0); i < half; i++ {
			a := float64(float32(p) * inv[i])
			c, s := float32(math.Cos(a)), float32(math.Sin(a))
			cos[p*hd+i], cos[p*hd+half+i] = c, c
			sin[p*hd+i], sin[p*hd+half+i] = -s, s
		}
	}
	ct := must(m.newTensor(cos, []int64{T, hd}))
	st, err := m.newTensor(sin, []int64{T, hd})
	if err != nil {
		ct.MustDrop()
		check(err)
	}
	return rotary{ct, st}
}

// rotate applies the rotary embedding r to x [B, heads, T, head],
// consuming x.
func (r rotary) rotate(x *ts.Tensor, hd int64) *ts.Tensor {
	y := must(opMul(x, r.cos, false))
	rolled := must(opRoll(x, hd/2, -1, true))
	rolled = must(opMul(rolled, r.sin, true))
	check(opAdd_(y, rolled))
	rolled.MustDrop()
	return y
}

// windowMask returns the additive sliding-window mask [1, 1, T, T]: 0
// where |i-j| <= local_attention/2, the most negative float32 elsewhere.
func (m *Model) windowMask(T int64) *ts.Tensor {
	w := int64(m.cfg.LocalAttention / 2)
	vals := make([]float32, T*T)
	for i := int64(0); i < T; i++ {
		for j := int64(0); j < T; j++ {
			if d := i - j; d > w || -d > w {
				vals[i*T+j] = -math.MaxFloat32
			}
		}
	}
	return must(m.newTensor(vals, []int64{1, 1, T, T}))
}

// isGlobalLayer reports whether ModernBERT layer i attends globally.
func (c Config) isGlobalLayer(i int) bool { return i%c.GlobalAttnEveryNLayers == 0 }

func (m *Model) modernForward(ids, mask, types *ts.Tensor, train bool) *ts.Tensor {
	c := m.cfg
	size, err := ids.Size()
	check(err)
	if len(size) != 2 {
		check(fmt.Errorf("input_ids must be [batch, length], got shape %v", size))
	}
	B, T := size[0], size[1]
	if T > int64(c.MaxSequenceLength()) {
		check(fmt.Errorf("sequence length %d exceeds the model's maximum %d (max_position_embeddings %d)", T, c.MaxSequenceLength(), c.MaxPositionEmbeddings))
	}
	if types != nil {
		check(fmt.Errorf("%s has no token type embeddings, got token_type_ids", c.ModelType))
	}
	H := int64(c.HiddenSize)
	p := &m.p

	x := must(opEmbedding(p.wordEmb, ids))
	h := must(opLayerNorm(x, []int64{H}, p.embLN.w, p.embLN.b, c.LayerNormEps))
	x.MustDrop()
	h = m.dropout(h, c.EmbeddingDropout, train)

	// The global mask is the padding mask [B, 1, 1, T] (nil without
	// padding); the local one also masks the keys outside the window.
	var global, local *ts.Tensor
	if mask != nil {
		f := must(opTotype(mask, gotch.Float, false))
		f = must(opRsubScalar(f, m.one, true))
		f = must(opMulScalar(f, m.negMin, true))
		global = must(opView(f, []int64{B, 1, 1, T}, true))
		defer global.MustDrop()
	}
	var globalRot, localRot rotary
	hasLocal := false
	for i := range p.layers {
		if !c.isGlobalLayer(i) {
			hasLocal = true
		}
	}
	globalRot = m.newRotary(c.GlobalRopeTheta, T)
	defer globalRot.drop()
	if hasLocal {
		local = m.windowMask(T)
		if global != nil {
			local = must(opMinimum(local, global, true))
		}
		defer local.MustDrop()
		localRot = m.newRotary(c.LocalRopeTheta, T)
		defer localRot.drop()
	}
	for i := range p.layers {
		if c.isGlobalLayer(i) {
			h = m.modernLayer(h, global, globalRot, &p.layers[i], B, T, train)
		} else {
			h = m.modernLayer(h, local, localRot, &p.layers[i], B, T, train)
		}
	}
	out := must(opLayerNorm(h, []int64{H}, p.finalLN.w, p.finalLN.b, c.LayerNormEps))
	h.MustDrop()
	return out
}

// modernLayer runs one ModernBERT encoder layer on x [B, T, H], consuming
// x. ext is the additive attention mask (nil for none) and rot the rotary
// tables of the layer's kind.
func (m *Model) modernLayer(x, ext *ts.Tensor, rot rotary, l *bertLayer, B, T int64, train bool) *ts.Tensor {
	c := m.cfg
	H, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	nh := int64(c.NumAttentionHeads)
	hd := H / nh

	xn := x
	if l.attnLN.w != nil {
		xn = must(opLayerNorm(x, []int64{H}, l.attnLN.w, l.attnLN.b, c.LayerNormEps))
	}
	qkv := must(opLinear(xn, l.qkv.w, l.qkv.b))
	if xn != x {
		xn.MustDrop()
	}
	qkv = must(opView(qkv, []int64{B, T, 3, nh, hd}, true))
	part := func(i int64) *ts.Tensor {
		t := must(opSelect(qkv, 2, i, false))
		return must(opTranspose(t, 1, 2, true))
	}
	q := rot.rotate(part(0), hd)
	k := rot.rotate(part(1), hd)
	v := part(2)
	qkv.MustDrop()

	ctx := m.attend(q, k, v, ext, true, B, T, train)
	a := must(opLinear(ctx, l.attnOut.w, l.attnOut.b))
	ctx.MustDrop()
	a = m.dropout(a, c.AttentionProbsDropoutProb, train)
	check(opAdd_(a, x))
	x.MustDrop()

	n := must(opLayerNorm(a, []int64{H}, l.outLN.w, l.outLN.b, c.LayerNormEps))
	wi := must(opLinear(n, l.inter.w, l.inter.b))
	n.MustDrop()
	in := must(opNarrow(wi, -1, 0, I, false))
	gate := must(opNarrow(wi, -1, I, I, true))
	g := must(opMul(m.activate(in), gate, true))
	gate.MustDrop()
	g = m.dropout(g, c.MLPDropout, train)
	o := must(opLinear(g, l.out.w, l.out.b))
	g.MustDrop()
	check(opAdd_(o, a))
	a.MustDrop()
	return o
}
