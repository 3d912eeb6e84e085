package mlm

import (
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/torchrt"
)

// Scoped tensor handles for every per-batch path: the forward pass, the
// MLM head, the loss, and what scoring, prediction and evaluation compute
// from the logits before copying it to Go.
//
// gotch's ts.New, which wraps every tensor its operations return, allocates
// a zeroed 100 KB Go array per handle, takes a global lock, records a name
// in a global map and sets a finalizer: for a single-sentence prediction
// that bookkeeping and the garbage collection it causes took about a
// quarter of the CPU time. gotch v0.9.1's generated operations also take
// the C slot for their result from malloc(0) and never free it (32 bytes
// per operation). The per-batch paths instead work on plain libtch handles
// (lib.Ctensor) owned by a scope, which records each result of the
// operations below and frees every handle it still holds in free, once and
// deterministically. drop frees a handle early (as soon as the pass no
// longer needs it, so that the memory high-water mark stays low), release
// hands one over to the caller as a *ts.Tensor (the only ts.New calls: for
// what a function returns). Inputs come from Go slices (int64s, float32s)
// and results go back with float32sOf and int64sOf, without a gotch
// handle. Weights stay *ts.Tensor in the VarStore and are passed with ct.
//
// The operations call the same libtch entry points as gotch's methods, so
// the numerics are unchanged. On a libtorch error they panic with a
// torchError naming the operation (see must and catch in model.go); the
// handles recorded so far stay in the scope, and the caller's deferred free
// releases them. Freeing the handles of intermediate tensors after a
// forward pass in training is safe: libtorch's autograd graph holds its own
// references to the tensors it saved for backward.

// ct returns the libtch handle of t.
func ct(t *ts.Tensor) lib.Ctensor { return lib.Ctensor(t.Ctensor()) }

// ctOpt returns the libtch handle of t, or nil for an absent optional
// operand (a bias).
func ctOpt(t *ts.Tensor) lib.Ctensor {
	if t == nil {
		return nil
	}
	return ct(t)
}

// scalar is a libtorch scalar owned by the model (freed by free).
type scalar struct{ c lib.Cscalar }

func floatScalar(v float64) scalar { return scalar{lib.AtsFloat(v)} }

func (s *scalar) free() {
	if s.c != nil {
		lib.AtsFree(s.c)
		s.c = nil
	}
}

// scope owns libtch tensor handles until free (or drop, or release). The
// zero value is ready to use. A scope is not safe for concurrent use.
type scope struct {
	owned []lib.Ctensor
	// freeFn frees one handle; nil means lib.AtFree (tests count the frees
	// with it).
	freeFn func(lib.Ctensor)
}

// freeHandle frees t.
func (s *scope) freeHandle(t lib.Ctensor) {
	if s.freeFn != nil {
		s.freeFn(t)
		return
	}
	lib.AtFree(t)
}

// keep records out, the result of the libtch operation what, or panics
// with libtorch's error.
func (s *scope) keep(what string, out lib.Ctensor) lib.Ctensor {
	if err := ts.TorchErr(); err != nil {
		panic(torchError{fmt.Errorf("%s: %w", what, err)})
	}
	if out == nil {
		panic(torchError{fmt.Errorf("%s: libtorch returned no tensor", what)})
	}
	s.owned = append(s.owned, out)
	return out
}

// take removes t from the scope without freeing it and reports whether the
// scope held it. The search runs from the most recent handle, where the
// handles a forward pass drops usually are.
func (s *scope) take(t lib.Ctensor) bool {
	for i := len(s.owned) - 1; i >= 0; i-- {
		if s.owned[i] == t {
			copy(s.owned[i:], s.owned[i+1:])
			s.owned[len(s.owned)-1] = nil
			s.owned = s.owned[:len(s.owned)-1]
			return true
		}
	}
	return false
}

// drop frees t, a handle the scope holds, now.
func (s *scope) drop(t lib.Ctensor) {
	if !s.take(t) {
		panic(torchError{fmt.Errorf("internal error: dropping a tensor handle the scope does not hold")})
	}
	s.freeHandle(t)
}

// release hands t, a handle the scope holds, to the caller as a gotch
// tensor that the caller drops.
func (s *scope) release(t lib.Ctensor) *ts.Tensor {
	if !s.take(t) {
		panic(torchError{fmt.Errorf("internal error: releasing a tensor handle the scope does not hold")})
	}
	return ts.New(t)
}

// free frees every handle the scope still holds, most recent first, and
// empties it. Calling it again does nothing.
func (s *scope) free() {
	for i := len(s.owned) - 1; i >= 0; i-- {
		s.freeHandle(s.owned[i])
		s.owned[i] = nil
	}
	s.owned = s.owned[:0]
}

// inPlaceResult checks the in-place operation what on self, which wrote a second
// handle to self's tensor into out, and frees that handle.
func (s *scope) inPlaceResult(what string, self, out lib.Ctensor) {
	if err := ts.TorchErr(); err != nil {
		panic(torchError{fmt.Errorf("%s: %w", what, err)})
	}
	if out != nil && out != self {
		s.freeHandle(out)
	}
}

// unary records the result of op, a libtch operation with one tensor
// operand and no other argument, on t (what names it in errors).
func (s *scope) unary(what string, t lib.Ctensor, op func(out *lib.Ctensor, self lib.Ctensor)) lib.Ctensor {
	var out lib.Ctensor
	op(&out, t)
	return s.keep(what, out)
}

func (s *scope) linear(x lib.Ctensor, w, b *ts.Tensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgLinear(&out, x, ct(w), ctOpt(b))
	return s.keep("linear", out)
}

func (s *scope) embedding(w *ts.Tensor, ids lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgEmbedding(&out, ct(w), ids, -1, 0, 0)
	return s.keep("embedding", out)
}

func (s *scope) layerNorm(x lib.Ctensor, shape []int64, ln layerNorm, eps float64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgLayerNorm(&out, x, shape, len(shape), ct(ln.w), ctOpt(ln.b), eps, 0)
	return s.keep("layer norm", out)
}

func (s *scope) view(t lib.Ctensor, shape []int64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgView(&out, t, shape, len(shape))
	return s.keep("view", out)
}

func (s *scope) reshape(t lib.Ctensor, shape []int64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgReshape(&out, t, shape, len(shape))
	return s.keep("reshape", out)
}

func (s *scope) transpose(t lib.Ctensor, d0, d1 int64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgTranspose(&out, t, d0, d1)
	return s.keep("transpose", out)
}

func (s *scope) matmul(a, b lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgMatmul(&out, a, b)
	return s.keep("matmul", out)
}

func (s *scope) mul(a, b lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgMul(&out, a, b)
	return s.keep("mul", out)
}

func (s *scope) minimum(a, b lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgMinimum(&out, a, b)
	return s.keep("minimum", out)
}

func (s *scope) softmax(t lib.Ctensor, dim int64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgSoftmax(&out, t, dim, gotch.Float.CInt())
	return s.keep("softmax", out)
}

// gelu applies GELU, the tanh approximation when tanh is true. It goes
// through torchrt because lib.AtgGelu copies its approximate argument with
// C.CString and never frees it (a leaked chunk per call: five per training
// step of the shipped model).
func (s *scope) gelu(t lib.Ctensor, tanh bool) lib.Ctensor {
	out, err := torchrt.Gelu(uintptr(unsafe.Pointer(t)), tanh)
	if err != nil {
		panic(torchError{fmt.Errorf("gelu: %w", err)})
	}
	return s.keep("gelu", lib.Ctensor(out))
}

func (s *scope) relu(t lib.Ctensor) lib.Ctensor { return s.unary("relu", t, lib.AtgRelu) }

// dropout applies training-mode dropout with probability p, as
// ts.Dropout(t, p, true).
func (s *scope) dropout(t lib.Ctensor, p float64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgDropout(&out, t, p, 1)
	return s.keep("dropout", out)
}

func (s *scope) totype(t lib.Ctensor, k gotch.DType) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgTotype(&out, t, k.CInt())
	return s.keep("to type", out)
}

func (s *scope) to(t lib.Ctensor, d gotch.Device) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgTo(&out, t, d.CInt())
	return s.keep("to device", out)
}

func (s *scope) selectIndex(t lib.Ctensor, dim, index int64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgSelect(&out, t, dim, index)
	return s.keep("select", out)
}

func (s *scope) indexSelect(t lib.Ctensor, dim int64, index lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgIndexSelect(&out, t, dim, index)
	return s.keep("index select", out)
}

func (s *scope) narrow(t lib.Ctensor, dim, start, length int64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgNarrow(&out, t, dim, start, length)
	return s.keep("narrow", out)
}

// roll rolls t by shift along dim.
func (s *scope) roll(t lib.Ctensor, shift, dim int64) lib.Ctensor {
	shifts, dims := []int64{shift}, []int64{dim}
	var out lib.Ctensor
	lib.AtgRoll(&out, t, shifts, len(shifts), dims, len(dims))
	return s.keep("roll", out)
}

func (s *scope) rsubScalar(t lib.Ctensor, v scalar) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgRsubScalar(&out, t, v.c)
	return s.keep("rsub", out)
}

func (s *scope) mulScalar(t lib.Ctensor, v scalar) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgMulScalar(&out, t, v.c)
	return s.keep("mul scalar", out)
}

func (s *scope) divScalar(t lib.Ctensor, v scalar) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgDivScalar(&out, t, v.c)
	return s.keep("div scalar", out)
}

func (s *scope) addScalar(t lib.Ctensor, v lib.Cscalar) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgAddScalar(&out, t, v)
	return s.keep("add scalar", out)
}

func (s *scope) neScalar(t lib.Ctensor, v lib.Cscalar) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgNe(&out, t, v)
	return s.keep("ne", out)
}

func (s *scope) cumsum(t lib.Ctensor, dim int64, k gotch.DType) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgCumsum(&out, t, dim, k.CInt())
	return s.keep("cumsum", out)
}

// arange returns 0 … n-1 as int64 on device d.
func (s *scope) arange(n int64, d gotch.Device) lib.Ctensor {
	end := lib.AtsInt(n)
	defer lib.AtsFree(end)
	var out lib.Ctensor
	lib.AtgArange(&out, end, gotch.Int64.CInt(), d.CInt())
	return s.keep("arange", out)
}

// add_ adds other to t in place.
func (s *scope) add_(t, other lib.Ctensor) {
	var out lib.Ctensor
	lib.AtgAdd_(&out, t, other)
	s.inPlaceResult("add in place", t, out)
}

// mulScalar_ multiplies t by v in place.
func (s *scope) mulScalar_(t lib.Ctensor, v scalar) {
	var out lib.Ctensor
	lib.AtgMulScalar_(&out, t, v.c)
	s.inPlaceResult("mul scalar in place", t, out)
}

// float64Value returns the value of t, a tensor with one element, or
// panics with libtorch's error.
func float64Value(t lib.Ctensor) float64 {
	var noIndex int64 // no indexes are read
	v := lib.AtDoubleValueAtIndexes(t, unsafe.Pointer(&noIndex), 0)
	if err := ts.TorchErr(); err != nil {
		panic(torchError{fmt.Errorf("read value: %w", err)})
	}
	return v
}

// float32s copies vals (float32, shape) into a tensor on device d, as
// Model.newTensor does (ts.OfDataSize, then To when d is not the CPU).
func (s *scope) float32s(vals []float32, shape []int64, d gotch.Device) lib.Ctensor {
	var data unsafe.Pointer
	if len(vals) > 0 {
		data = unsafe.Pointer(&vals[0])
	}
	return s.fromGo(data, len(vals), gotch.Float, shape, d)
}

// int64s copies vals (int64, shape) into a tensor on device d, as
// ts.OfSlice does.
func (s *scope) int64s(vals []int64, shape []int64, d gotch.Device) lib.Ctensor {
	var data unsafe.Pointer
	if len(vals) > 0 {
		data = unsafe.Pointer(&vals[0])
	}
	return s.fromGo(data, len(vals), gotch.Int64, shape, d)
}

// fromGo copies n values of kind k at data (Go memory, nil when n is 0)
// into a tensor of the given shape on device d. libtorch copies the values
// during the call and keeps no pointer to data.
func (s *scope) fromGo(data unsafe.Pointer, n int, k gotch.DType, shape []int64, d gotch.Device) lib.Ctensor {
	if numel(shape) != n || len(shape) == 0 {
		panic(torchError{fmt.Errorf("create tensor of shape %v from %d values", shape, n)})
	}
	var zero int64
	if n == 0 {
		data = unsafe.Pointer(&zero) // an empty tensor copies nothing
	}
	t := s.keep("create tensor", lib.AtTensorOfData(data, shape, uint(len(shape)), k.Size(), int(k.CKind())))
	if d == gotch.CPU {
		return t
	}
	u := s.to(t, d)
	s.drop(t)
	return u
}

// float32sOf copies t, a float32 tensor on any device, to Go memory.
func float32sOf(t lib.Ctensor) []float32 {
	out := make([]float32, numelOf(t))
	if len(out) > 0 {
		copyOut(t, unsafe.Pointer(&out[0]), len(out), gotch.Float)
	}
	return out
}

// int64sOf copies t, an int64 tensor on any device, to Go memory.
func int64sOf(t lib.Ctensor) []int64 {
	out := make([]int64, numelOf(t))
	if len(out) > 0 {
		copyOut(t, unsafe.Pointer(&out[0]), len(out), gotch.Int64)
	}
	return out
}

// numelOf returns the number of elements of t.
func numelOf(t lib.Ctensor) int {
	size, err := dims(t)
	check(err)
	return numel(size)
}

// copyOut copies the n elements of t (kind k; made contiguous and brought
// to the CPU by libtch as needed) to dst.
func copyOut(t lib.Ctensor, dst unsafe.Pointer, n int, k gotch.DType) {
	lib.AtCopyData(t, dst, uint(n), k.Size())
	if err := ts.TorchErr(); err != nil {
		panic(torchError{fmt.Errorf("copy tensor to Go: %w", err)})
	}
}

// dims returns the sizes of t.
func dims(t lib.Ctensor) ([]int64, error) {
	n := lib.AtDim(t)
	if err := ts.TorchErr(); err != nil {
		return nil, err
	}
	size := make([]int64, n)
	if n > 0 {
		lib.AtShape(t, unsafe.Pointer(&size[0]))
		if err := ts.TorchErr(); err != nil {
			return nil, err
		}
	}
	return size, nil
}

// consume frees in, an operand the forward pass no longer needs, and
// returns out, the result of the operation that read it (the del argument
// of gotch's methods): x = s.consume(x, s.op(x, …)).
func (s *scope) consume(in, out lib.Ctensor) lib.Ctensor {
	s.drop(in)
	return out
}

// gather returns the rows of hidden [B, T, H] at the flat positions b*T+t
// given in flat (int64 [N]), as [N, H].
func (s *scope) gather(hidden, flat lib.Ctensor) lib.Ctensor {
	size, err := dims(hidden)
	check(err)
	if len(size) != 3 {
		check(fmt.Errorf("hidden must be [B, T, H], got %v", size))
	}
	v := s.view(hidden, []int64{size[0] * size[1], size[2]})
	return s.consume(v, s.indexSelect(v, 0, flat))
}

func (s *scope) logSoftmax(t lib.Ctensor, dim int64) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgLogSoftmax(&out, t, dim, gotch.Float.CInt())
	return s.keep("log softmax", out)
}

// gatherDim picks the entries of t along dim at index (torch.gather).
func (s *scope) gatherDim(t lib.Ctensor, dim int64, index lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgGather(&out, t, dim, index, 0)
	return s.keep("gather", out)
}

// sum returns the sum of t's elements as a 0-dimensional float tensor.
func (s *scope) sum(t lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgSum(&out, t, gotch.Float.CInt())
	return s.keep("sum", out)
}

func (s *scope) neg(t lib.Ctensor) lib.Ctensor { return s.unary("neg", t, lib.AtgNeg) }

func (s *scope) exp(t lib.Ctensor) lib.Ctensor { return s.unary("exp", t, lib.AtgExp) }

func (s *scope) log(t lib.Ctensor) lib.Ctensor { return s.unary("log", t, lib.AtgLog) }

// clampMin returns t with every element below v raised to v.
func (s *scope) clampMin(t lib.Ctensor, v scalar) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgClampMin(&out, t, v.c)
	return s.keep("clamp min", out)
}

// gtTensor compares t with other (broadcast) element by element.
func (s *scope) gtTensor(t, other lib.Ctensor) lib.Ctensor {
	var out lib.Ctensor
	lib.AtgGtTensor(&out, t, other)
	return s.keep("gt", out)
}

// topk returns the k largest values of t along its last dimension, sorted
// in descending order, and their indices.
func (s *scope) topk(t lib.Ctensor, k int64) (vals, idx lib.Ctensor) {
	var out [2]lib.Ctensor
	lib.AtgTopk(&out[0], t, k, -1, 1, 1)
	if err := ts.TorchErr(); err != nil {
		panic(torchError{fmt.Errorf("topk: %w", err)})
	}
	return s.keep("topk", out[0]), s.keep("topk", out[1])
}

// backward backpropagates from t, a tensor with one element, into the
// gradients of the parameters.
func (s *scope) backward(t lib.Ctensor) {
	lib.AtBackward(t, 0, 0)
	if err := ts.TorchErr(); err != nil {
		panic(torchError{fmt.Errorf("backward: %w", err)})
	}
}
