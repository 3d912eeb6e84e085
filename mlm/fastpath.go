package mlm

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"

	"github.com/clozeloop/clozeloop/torchrt"
)

// The inference fast path of the encoder (issue #16).
//
// At batch 1 a forward pass pays a fixed overhead per libtorch operation
// (cgo call, dispatch, allocation), about 24 calls per encoder layer
// (views and transposes included). libtorch's at::_transformer_encoder_layer_fwd (PyTorch's
// "BetterTransformer" kernel, used by nn.TransformerEncoderLayer in eval
// mode) runs a whole post-LayerNorm layer as one operation: fused q, k, v
// projection, bias and 1/sqrt(head size) scaling of the queries, masked
// softmax, output projection, residual and LayerNorm, feed-forward with the
// erf GELU (use_gelu) or ReLU, residual and LayerNorm. That is exactly a
// BERT, RoBERTa, XLM-RoBERTa or DistilBERT encoder layer in eval mode, and
// libtorch 1.13's CPU kernel computes it with the same operations, rounded
// differently: the q, k, v biases are added after one stacked product
// instead of inside each linear layer, and the queries are scaled before
// their product with the keys instead of the scores after it. The two
// paths agree to float32 rounding (fastpath_test.go: within 6e-6 on small
// random models; the PyTorch parity tests bound the fast path relative to
// the largest logit, fastLogitTolerance).
//
// forward uses it when all of these hold, and the reference path
// (layer) otherwise:
//   - no dropout (train false) and autograd off on the calling thread
//     (scoring, prediction, evaluation; never training: the kernel has no
//     backward);
//   - a BERT-family model (not ModernBERT, whose layers are pre-norm with
//     a gated MLP) whose hidden_act is "gelu" (erf) or "relu": the kernel
//     computes no tanh GELU;
//   - the model on the CPU: libtorch has a CUDA kernel too, but this build
//     could not check its parity, and its attention may take a different
//     (flash) route;
//   - no item of the batch is all padding. The kernel takes the padding as
//     a boolean key padding mask (mask_type 1, true at padding), which
//     gives padded keys probability exactly 0, as the reference's additive
//     float32-minimum mask does; but a row with no token at all gets NaN
//     from the kernel where the reference averages over the padding.
//
// The kernel wants q, k and v stacked as one [3·hidden, hidden] weight and
// one [3·hidden] bias. They are built on the first fast forward pass and
// kept, which costs 3·hidden²+3·hidden floats per layer, a quarter of the
// encoder's weights (bert-base: 81 MiB beside the model's 418 MiB; the
// small model: 3 MiB). A model that only trains never builds them; one that
// evaluates between optimizer steps keeps them while it trains. The copies are rebuilt when any of the q, k, v
// parameters changed since (an optimizer step or a copy into them bumps
// libtorch's version counter of the tensor), and freed by Close.

// fastEncoder holds the stacked q, k, v parameters of every layer for the
// fused encoder layer.
type fastEncoder struct {
	mu sync.Mutex
	// ok says whether the model's architecture and device allow the fast
	// path at all (set at load).
	ok      bool
	qkvW    []lib.Ctensor // per layer, [3·hidden, hidden]; nil until built
	qkvB    []lib.Ctensor // per layer, [3·hidden]
	version uint64        // sum of the version counters of m.sources() at build
}

// fastEligible reports whether m's architecture and device allow the fused
// encoder layer.
func (m *Model) fastEligible() bool {
	if m.cfg.family() == ModelTypeModernBERT || m.device != gotch.CPU {
		return false
	}
	if m.act != actGELU && m.act != actReLU {
		return false
	}
	for _, l := range m.p.layers {
		for _, t := range []linear{l.query, l.key, l.value, l.attnOut, l.inter, l.out} {
			if t.w == nil || t.b == nil {
				return false
			}
		}
		for _, n := range []layerNorm{l.attnLN, l.outLN} {
			if n.w == nil || n.b == nil {
				return false
			}
		}
	}
	return true
}

// initFast records whether m may use the fast path.
func (m *Model) initFast() { m.fast.ok = m.fastEligible() }

// sources returns the handles of the q, k, v weights and biases of every
// layer, whose version counters tell when the stacked copies are stale.
// They are read on every use: gotch's in-place methods give a tensor a new
// handle.
func (m *Model) sources() []uintptr {
	out := make([]uintptr, 0, 6*len(m.p.layers))
	for _, l := range m.p.layers {
		for _, p := range []linear{l.query, l.key, l.value} {
			out = append(out, uintptr(unsafe.Pointer(ct(p.w))), uintptr(unsafe.Pointer(ct(p.b))))
		}
	}
	return out
}

// free frees the stacked copies.
func (f *fastEncoder) free() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.freeStacked()
	f.ok = false
}

func (f *fastEncoder) freeStacked() {
	for _, t := range append(f.qkvW, f.qkvB...) {
		if t != nil {
			lib.AtFree(t)
		}
	}
	f.qkvW, f.qkvB = nil, nil
}

// useFast reports whether forward may run the encoder layers fused: see
// the conditions above (except padding, which forward checks).
func (m *Model) useFast(train bool) bool {
	if train || !m.fast.ok || m.fastOff {
		return false
	}
	on, err := torchrt.GradEnabled()
	check(err)
	return !on
}

// stacked returns the stacked q, k, v weight and bias of every layer,
// building them when missing or stale. Call it with autograd off.
func (m *Model) stacked() (w, b []lib.Ctensor) {
	f := &m.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	v, err := torchrt.VersionSum(m.sources())
	check(err)
	if f.qkvW != nil && v == f.version {
		return f.qkvW, f.qkvB
	}
	f.freeStacked()
	var s scope
	defer s.free()
	w = make([]lib.Ctensor, len(m.p.layers))
	b = make([]lib.Ctensor, len(m.p.layers))
	for i, l := range m.p.layers {
		w[i] = s.cat([]lib.Ctensor{ct(l.query.w), ct(l.key.w), ct(l.value.w)}, 0)
		b[i] = s.cat([]lib.Ctensor{ct(l.query.b), ct(l.key.b), ct(l.value.b)}, 0)
	}
	for i := range w {
		s.take(w[i])
		s.take(b[i])
	}
	f.qkvW, f.qkvB, f.version = w, b, v
	return w, b
}

// keyPadding returns the key padding mask of the fused layer for mask
// [B, T] (1 for tokens, 0 for padding; kept): bool, true at padding, or nil
// when nothing is padded. ok is false when a row is all padding, which the
// fused layer does not compute as the reference path does.
func (m *Model) keyPadding(s *scope, mask lib.Ctensor, T int64) (pad lib.Ctensor, ok bool) {
	zero := lib.AtsInt(0)
	defer lib.AtsFree(zero)
	pad = s.eqScalar(mask, zero)
	n := s.sumDim(pad, 1, gotch.Int64)
	most := s.consume(n, s.max(n))
	v := float64Value(most)
	s.drop(most)
	switch {
	case v == 0:
		s.drop(pad)
		return nil, true
	case v >= float64(T):
		s.drop(pad)
		return nil, false
	}
	return pad, true
}

// fastLayers runs every encoder layer on h [B, T, H] (consumed) with the
// fused kernel, pad being the key padding mask (nil for none).
func (m *Model) fastLayers(s *scope, h, pad lib.Ctensor) lib.Ctensor {
	w, b := m.stacked()
	c := m.cfg
	for i := range m.p.layers {
		h = s.consume(h, s.encoderLayer(h, int64(c.HiddenSize), int64(c.NumAttentionHeads), w[i], b[i], &m.p.layers[i], m.act == actGELU, c.LayerNormEps, pad))
	}
	return h
}

// encoderLayer runs at::_transformer_encoder_layer_fwd, a post-LayerNorm
// encoder layer, on x [B, T, E] with the stacked q, k, v weight and bias and
// l's other parameters; pad (nil for none) is a bool key padding mask [B,
// T], true at padding. It goes through torchrt because gotch's generated
// wrapper cannot pass an absent mask: it passes an undefined tensor, which
// libtorch 1.13 tries to convert to bool and fails.
func (s *scope) encoderLayer(x lib.Ctensor, E, heads int64, qkvW, qkvB lib.Ctensor, l *bertLayer, gelu bool, eps float64, pad lib.Ctensor) lib.Ctensor {
	h := func(t lib.Ctensor) uintptr { return uintptr(unsafe.Pointer(t)) }
	params := [12]uintptr{h(qkvW), h(qkvB), h(ct(l.attnOut.w)), h(ct(l.attnOut.b)),
		h(ct(l.attnLN.w)), h(ct(l.attnLN.b)), h(ct(l.outLN.w)), h(ct(l.outLN.b)),
		h(ct(l.inter.w)), h(ct(l.inter.b)), h(ct(l.out.w)), h(ct(l.out.b))}
	out, err := torchrt.EncoderLayer(h(x), E, heads, &params, gelu, eps, h(pad))
	if err != nil {
		panic(torchError{fmt.Errorf("transformer encoder layer: %w", err)})
	}
	return s.keep("transformer encoder layer", lib.Ctensor(out))
}

// cat concatenates ts along dim.
func (s *scope) cat(ts []lib.Ctensor, dim int64) lib.Ctensor {
	if len(ts) == 0 {
		panic(torchError{fmt.Errorf("cat of no tensors")})
	}
	var out lib.Ctensor
	lib.AtgCat(&out, ts, len(ts), dim)
	return s.keep("cat", out)
}

func (s *scope) eqScalar(t lib.Ctensor, v lib.Cscalar) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgEq(&out, t, v)
	return s.keep("eq", out)
}

// sumDim sums t over dim into dtype k.
func (s *scope) sumDim(t lib.Ctensor, dim int64, k gotch.DType) lib.Ctensor {
	dims := []int64{dim}
	var out lib.Ctensor
	lib.AtgSumDimIntlist(&out, t, dims, len(dims), 0, k.CInt())
	return s.keep("sum", out)
}

// max returns the largest element of t as a 0-dimensional tensor.
func (s *scope) max(t lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgMax(&out, t)
	return s.keep("max", out)
}
