package mlm

import (
	"fmt"
	"math"

	lib "github.com/sugarme/gotch/libtch"
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
// x·cos + roll(x, head/2)·sin. The handles belong to the forward pass's
// scope.
type rotary struct{ cos, sin lib.Ctensor }

func (r rotary) drop(s *scope) {
	s.drop(r.cos)
	s.drop(r.sin)
}

// newRotary builds the tables of base theta for T positions, computing
// the inverse frequencies and angles in float32 as Hugging Face does.
func (m *Model) newRotary(s *scope, theta float64, T int64) rotary {
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
			c, sn := float32(math.Cos(a)), float32(math.Sin(a))
			cos[p*hd+i], cos[p*hd+half+i] = c, c
			sin[p*hd+i], sin[p*hd+half+i] = -sn, sn
		}
	}
	return rotary{
		cos: s.float32s(cos, []int64{T, hd}, m.device),
		sin: s.float32s(sin, []int64{T, hd}, m.device),
	}
}

// rotate applies the rotary embedding r to x [B, heads, T, head],
// consuming x.
func (r rotary) rotate(s *scope, x lib.Ctensor, hd int64) lib.Ctensor {
	y := s.mul(x, r.cos)
	rolled := s.consume(x, s.roll(x, hd/2, -1))
	rolled = s.consume(rolled, s.mul(rolled, r.sin))
	s.add_(y, rolled)
	s.drop(rolled)
	return y
}

// windowMask returns the additive sliding-window mask [1, 1, T, T]: 0
// where |i-j| <= local_attention/2, the most negative float32 elsewhere.
func (m *Model) windowMask(s *scope, T int64) lib.Ctensor {
	w := int64(m.cfg.LocalAttention / 2)
	vals := make([]float32, T*T)
	for i := int64(0); i < T; i++ {
		for j := int64(0); j < T; j++ {
			if d := i - j; d > w || -d > w {
				vals[i*T+j] = -math.MaxFloat32
			}
		}
	}
	return s.float32s(vals, []int64{1, 1, T, T}, m.device)
}

// isGlobalLayer reports whether ModernBERT layer i attends globally.
func (c Config) isGlobalLayer(i int) bool { return i%c.GlobalAttnEveryNLayers == 0 }

func (m *Model) modernForward(s *scope, ids, mask, types lib.Ctensor, train bool) lib.Ctensor {
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
	if types != nil {
		check(fmt.Errorf("%s has no token type embeddings, got token_type_ids", c.ModelType))
	}
	H := int64(c.HiddenSize)
	p := &m.p

	x := s.embedding(p.wordEmb, ids)
	h := s.consume(x, s.layerNorm(x, []int64{H}, p.embLN, c.LayerNormEps))
	h = m.dropout(s, h, c.EmbeddingDropout, train)

	// The global mask is the padding mask [B, 1, 1, T] (nil without
	// padding); the local one also masks the keys outside the window.
	var global, local lib.Ctensor
	if mask != nil {
		global = m.paddingMask(s, mask, B, T)
	}
	var localRot rotary
	hasLocal := false
	for i := range p.layers {
		if !c.isGlobalLayer(i) {
			hasLocal = true
		}
	}
	globalRot := m.newRotary(s, c.GlobalRopeTheta, T)
	if hasLocal {
		local = m.windowMask(s, T)
		if global != nil {
			local = s.consume(local, s.minimum(local, global))
		}
		localRot = m.newRotary(s, c.LocalRopeTheta, T)
	}
	for i := range p.layers {
		if c.isGlobalLayer(i) {
			h = m.modernLayer(s, h, global, globalRot, &p.layers[i], B, T, train)
		} else {
			h = m.modernLayer(s, h, local, localRot, &p.layers[i], B, T, train)
		}
	}
	out := s.consume(h, s.layerNorm(h, []int64{H}, p.finalLN, c.LayerNormEps))
	if hasLocal {
		localRot.drop(s)
		s.drop(local)
	}
	globalRot.drop(s)
	if global != nil {
		s.drop(global)
	}
	return out
}

// modernLayer runs one ModernBERT encoder layer on x [B, T, H], consuming
// x. ext is the additive attention mask (nil for none) and rot the rotary
// tables of the layer's kind.
func (m *Model) modernLayer(s *scope, x, ext lib.Ctensor, rot rotary, l *bertLayer, B, T int64, train bool) lib.Ctensor {
	c := m.cfg
	H, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	nh := int64(c.NumAttentionHeads)
	hd := H / nh

	xn := x
	if l.attnLN.w != nil {
		xn = s.layerNorm(x, []int64{H}, l.attnLN, c.LayerNormEps)
	}
	qkv := s.linear(xn, l.qkv.w, l.qkv.b)
	if xn != x {
		s.drop(xn)
	}
	qkv = s.consume(qkv, s.view(qkv, []int64{B, T, 3, nh, hd}))
	part := func(i int64) lib.Ctensor {
		t := s.selectIndex(qkv, 2, i)
		return s.consume(t, s.transpose(t, 1, 2))
	}
	q := rot.rotate(s, part(0), hd)
	k := rot.rotate(s, part(1), hd)
	v := part(2)
	s.drop(qkv)

	ctx := m.attend(s, q, k, v, ext, true, B, T, train)
	a := s.consume(ctx, s.linear(ctx, l.attnOut.w, l.attnOut.b))
	a = m.dropout(s, a, c.AttentionProbsDropoutProb, train)
	s.add_(a, x)
	s.drop(x)

	n := s.layerNorm(a, []int64{H}, l.outLN, c.LayerNormEps)
	wi := s.consume(n, s.linear(n, l.inter.w, l.inter.b))
	in := s.narrow(wi, -1, 0, I)
	gate := s.consume(wi, s.narrow(wi, -1, I, I))
	act := m.activate(s, in)
	g := s.consume(act, s.mul(act, gate))
	s.drop(gate)
	g = m.dropout(s, g, c.MLPDropout, train)
	o := s.consume(g, s.linear(g, l.out.w, l.out.b))
	s.add_(o, a)
	s.drop(a)
	return o
}
