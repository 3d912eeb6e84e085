package mlm

import (
	"fmt"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// The tensor operations of the forward pass, the MLM head and scoring.
//
// gotch v0.9.1's generated operations (ts.Linear, (*ts.Tensor).View, …)
// take the C slot for their result from malloc(0) and never free it: each
// call leaks one minimal glibc chunk (32 bytes). A forward pass runs about
// 25 operations per encoder layer, so scoring a 100,000-item pool leaked
// about 13 MiB of C heap that no Drop returns. The functions below call
// the same libtch entry points (gotch/libtch, so the numerics are
// unchanged) with the result slot on the Go side, wrap the result with
// ts.New (a tensor gotch tracks and Drop frees, as its own operations
// return), and report libtorch's error. Operations with a del parameter
// drop their first operand when it is true, as gotch's methods do.
//
// Remaining known leak on this path: lib.AtgGelu copies its approximate
// argument with C.CString and never frees it (one chunk per encoder layer
// per batch), which no caller can avoid.

// result wraps the tensor libtch wrote into out, or returns libtorch's
// error for what.
func result(what string, out lib.Ctensor) (*ts.Tensor, error) {
	if err := ts.TorchErr(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ts.New(out), nil
}

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

// dropIf drops t when del is true (after the operation that read it).
func dropIf(t *ts.Tensor, del bool) {
	if del {
		t.MustDrop()
	}
}

// unary runs an operation with one tensor operand.
func unary(what string, t *ts.Tensor, del bool, call func(out *lib.Ctensor, self lib.Ctensor)) (*ts.Tensor, error) {
	var out lib.Ctensor
	call(&out, ct(t))
	r, err := result(what, out)
	dropIf(t, del)
	return r, err
}

// inPlaceOp runs an in-place operation on t (the op writes a second handle
// to t's tensor, which is freed at once).
func inPlaceOp(what string, t *ts.Tensor, call func(out *lib.Ctensor, self lib.Ctensor)) error {
	var out lib.Ctensor
	call(&out, ct(t))
	if err := ts.TorchErr(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if out != nil && out != ct(t) {
		lib.AtFree(out)
		if err := ts.TorchErr(); err != nil {
			return fmt.Errorf("%s: free result handle: %w", what, err)
		}
	}
	return nil
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

func opLinear(x, w, b *ts.Tensor) (*ts.Tensor, error) {
	var out lib.Ctensor
	lib.AtgLinear(&out, ct(x), ct(w), ctOpt(b))
	return result("linear", out)
}

func opEmbedding(w, ids *ts.Tensor) (*ts.Tensor, error) {
	var out lib.Ctensor
	lib.AtgEmbedding(&out, ct(w), ct(ids), -1, 0, 0)
	return result("embedding", out)
}

func opLayerNorm(x *ts.Tensor, shape []int64, w, b *ts.Tensor, eps float64) (*ts.Tensor, error) {
	var out lib.Ctensor
	lib.AtgLayerNorm(&out, ct(x), shape, len(shape), ct(w), ctOpt(b), eps, 0)
	return result("layer norm", out)
}

func opView(t *ts.Tensor, shape []int64, del bool) (*ts.Tensor, error) {
	return unary("view", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgView(out, self, shape, len(shape)) })
}

func opReshape(t *ts.Tensor, shape []int64, del bool) (*ts.Tensor, error) {
	return unary("reshape", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgReshape(out, self, shape, len(shape)) })
}

func opTranspose(t *ts.Tensor, d0, d1 int64, del bool) (*ts.Tensor, error) {
	return unary("transpose", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgTranspose(out, self, d0, d1) })
}

func opMatmul(a, b *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("matmul", a, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgMatmul(out, self, ct(b)) })
}

func opMul(a, b *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("mul", a, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgMul(out, self, ct(b)) })
}

func opSoftmax(t *ts.Tensor, dim int64, del bool) (*ts.Tensor, error) {
	return unary("softmax", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgSoftmax(out, self, dim, gotch.Float.CInt()) })
}

func opLogSoftmax(t *ts.Tensor, dim int64, del bool) (*ts.Tensor, error) {
	return unary("log softmax", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgLogSoftmax(out, self, dim, gotch.Float.CInt()) })
}

func opExp(t *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("exp", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgExp(out, self) })
}

func opNeg(t *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("neg", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgNeg(out, self) })
}

// opSumLast sums over the last dimension (float result).
func opSumLast(t *ts.Tensor, del bool) (*ts.Tensor, error) {
	dims := []int64{-1}
	return unary("sum", t, del, func(out *lib.Ctensor, self lib.Ctensor) {
		lib.AtgSumDimIntlist(out, self, dims, len(dims), 0, gotch.Float.CInt())
	})
}

func opGelu(t *ts.Tensor, approximate string, del bool) (*ts.Tensor, error) {
	return unary("gelu", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgGelu(out, self, approximate) })
}

func opRelu(t *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("relu", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgRelu(out, self) })
}

func opContiguous(t *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("contiguous", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgContiguous(out, self) })
}

func opTo(t *ts.Tensor, d gotch.Device, del bool) (*ts.Tensor, error) {
	return unary("to device", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgTo(out, self, d.CInt()) })
}

func opTotype(t *ts.Tensor, k gotch.DType, del bool) (*ts.Tensor, error) {
	return unary("to type", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgTotype(out, self, k.CInt()) })
}

func opIndexSelect(t *ts.Tensor, dim int64, index *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("index select", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgIndexSelect(out, self, dim, ct(index)) })
}

func opSelect(t *ts.Tensor, dim, index int64, del bool) (*ts.Tensor, error) {
	return unary("select", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgSelect(out, self, dim, index) })
}

func opRsubScalar(t *ts.Tensor, s scalar, del bool) (*ts.Tensor, error) {
	return unary("rsub", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgRsubScalar(out, self, s.c) })
}

func opMulScalar(t *ts.Tensor, s scalar, del bool) (*ts.Tensor, error) {
	return unary("mul scalar", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgMulScalar(out, self, s.c) })
}

func opDivScalar(t *ts.Tensor, s scalar, del bool) (*ts.Tensor, error) {
	return unary("div scalar", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgDivScalar(out, self, s.c) })
}

// opAdd_ adds other to t in place.
func opAdd_(t, other *ts.Tensor) error {
	return inPlaceOp("add in place", t, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgAdd_(out, self, ct(other)) })
}

// opMulScalar_ multiplies t by s in place.
func opMulScalar_(t *ts.Tensor, s scalar) error {
	return inPlaceOp("mul scalar in place", t, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgMulScalar_(out, self, s.c) })
}

// opTopk returns the k largest values of t along dim, sorted, and their
// indices.
func opTopk(t *ts.Tensor, k, dim int64, del bool) (vals, idx *ts.Tensor, err error) {
	var out [2]lib.Ctensor
	lib.AtgTopk(&out[0], ct(t), k, dim, 1, 1)
	if err := ts.TorchErr(); err != nil {
		dropIf(t, del)
		return nil, nil, fmt.Errorf("topk: %w", err)
	}
	dropIf(t, del)
	return ts.New(out[0]), ts.New(out[1]), nil
}

// opArange returns 0 … n-1 as int64 on device d.
func opArange(n int64, d gotch.Device) (*ts.Tensor, error) {
	end := lib.AtsInt(n)
	defer lib.AtsFree(end)
	var out lib.Ctensor
	lib.AtgArange(&out, end, gotch.Int64.CInt(), d.CInt())
	return result("arange", out)
}

func opNarrow(t *ts.Tensor, dim, start, length int64, del bool) (*ts.Tensor, error) {
	return unary("narrow", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgNarrow(out, self, dim, start, length) })
}

// opRoll rolls t by shift along dim.
func opRoll(t *ts.Tensor, shift, dim int64, del bool) (*ts.Tensor, error) {
	shifts, dims := []int64{shift}, []int64{dim}
	return unary("roll", t, del, func(out *lib.Ctensor, self lib.Ctensor) {
		lib.AtgRoll(out, self, shifts, len(shifts), dims, len(dims))
	})
}

func opMinimum(a, b *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("minimum", a, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgMinimum(out, self, ct(b)) })
}
