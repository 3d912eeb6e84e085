package mlm

import (
	"fmt"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// The tensor operations of scoring and of moving tensors between Go and
// libtorch, on gotch tensors. (The forward pass and the MLM head work on
// scoped libtch handles instead: see tensor.go.)
//
// gotch v0.9.1's generated operations (ts.Linear, (*ts.Tensor).View, …)
// take the C slot for their result from malloc(0) and never free it: each
// call leaks one minimal glibc chunk (32 bytes). The functions below, like
// the scope's operations in tensor.go, call the same libtch entry points
// (gotch/libtch, so the numerics are unchanged) with the result slot on the
// Go side, wrap the result with ts.New (a tensor gotch tracks and Drop
// frees, as its own operations return), and report libtorch's error.
// Operations with a del parameter drop their first operand when it is
// true, as gotch's methods do.
//
// Remaining known leak on the forward path: lib.AtgGelu copies its
// approximate argument with C.CString and never frees it (one chunk per
// encoder layer per batch), which no caller can avoid.

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

// scalar is a libtorch scalar owned by the model (freed by free).
type scalar struct{ c lib.Cscalar }

func floatScalar(v float64) scalar { return scalar{lib.AtsFloat(v)} }

func (s *scalar) free() {
	if s.c != nil {
		lib.AtsFree(s.c)
		s.c = nil
	}
}

func opView(t *ts.Tensor, shape []int64, del bool) (*ts.Tensor, error) {
	return unary("view", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgView(out, self, shape, len(shape)) })
}

func opMul(a, b *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("mul", a, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgMul(out, self, ct(b)) })
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

func opContiguous(t *ts.Tensor, del bool) (*ts.Tensor, error) {
	return unary("contiguous", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgContiguous(out, self) })
}

func opTo(t *ts.Tensor, d gotch.Device, del bool) (*ts.Tensor, error) {
	return unary("to device", t, del, func(out *lib.Ctensor, self lib.Ctensor) { lib.AtgTo(out, self, d.CInt()) })
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
