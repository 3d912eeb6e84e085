package torchrt

/*
#include "torchrt.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"unsafe"
)

// Run calls fn with the calling goroutine locked to its OS thread, and
// returns fn's error or, when fn panics (gotch's Must* functions and nn
// constructors do), an error carrying the panic value and stack.
//
// Do all gotch work inside Run. libtorch keeps some state per OS thread —
// autograd's grad mode, the OpenMP thread count — and gotch changes it in
// separate cgo calls: ts.NoGrad switches grad mode off, runs a closure and
// switches it on again. A goroutine that moves to another OS thread in between
// leaves one thread with gradients off for good, and later training on it
// fails with "element 0 of tensors does not require grad". Run therefore also
// switches grad mode on and applies the thread count set by SetNumThreads
// when it starts, and switches grad mode on again when fn returns.
//
// Run may be nested; the inner call keeps the thread locked.
func Run(fn func() error) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cError(C.torchrt_prepare_thread()); err != nil {
		return fmt.Errorf("prepare OS thread for libtorch: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("libtorch work panicked: %v\n%s", p, debug.Stack())
		}
		if rerr := cError(C.torchrt_set_grad_enabled(1)); rerr != nil && err == nil {
			err = fmt.Errorf("restore grad mode: %w", rerr)
		}
	}()
	return fn()
}

// GradEnabled reports whether autograd records operations on the calling OS
// thread (c10::GradMode::is_enabled()). Call it inside Run, or the answer may
// belong to another thread than the next libtorch call.
func GradEnabled() (bool, error) {
	var on C.int
	if err := cError(C.torchrt_grad_enabled(&on)); err != nil {
		return false, fmt.Errorf("read grad mode: %w", err)
	}
	return on != 0, nil
}

// setGradEnabled sets the calling OS thread's grad mode (tests only).
func setGradEnabled(on bool) error {
	v := C.int(0)
	if on {
		v = 1
	}
	if err := cError(C.torchrt_set_grad_enabled(v)); err != nil {
		return fmt.Errorf("set grad mode: %w", err)
	}
	return nil
}

// VersionSum returns the sum of the autograd version counters of the tensors
// whose libtorch handles (torch::Tensor*, as gotch's libtch.Ctensor) are
// given. libtorch increments a tensor's counter on every in-place operation
// (an optimizer step, a copy into it), in grad mode or not, so a cache
// derived from the tensors is stale when the sum differs from the one
// recorded when it was built. The handles must stay valid during the call.
func VersionSum(handles []uintptr) (uint64, error) {
	if len(handles) == 0 {
		return 0, nil
	}
	var sum C.uint64_t
	if err := cError(C.torchrt_version_sum((*C.uintptr_t)(unsafe.Pointer(&handles[0])), C.int64_t(len(handles)), &sum)); err != nil {
		return 0, fmt.Errorf("read tensor versions: %w", err)
	}
	return uint64(sum), nil
}

// Gelu returns a new libtorch handle (torch::Tensor*, to be freed as
// gotch's libtch.AtFree frees) with at::gelu of src, a torch::Tensor*: the
// tanh approximation when tanh is true, else the exact erf form. Autograd
// records it as it records gotch's operations. gotch's own wrapper leaks a
// copy of its approximate argument on every call.
func Gelu(src uintptr, tanh bool) (unsafe.Pointer, error) {
	t := C.int(0)
	if tanh {
		t = 1
	}
	var out unsafe.Pointer
	if err := cError(C.torchrt_gelu(C.uintptr_t(src), t, &out)); err != nil {
		return nil, err
	}
	return out, nil
}

// EncoderLayer runs at::_transformer_encoder_layer_fwd, libtorch's fused
// post-LayerNorm transformer encoder layer, on src [batch, length,
// embedDim] and returns a new libtorch handle (torch::Tensor*, to be freed
// as gotch's libtch.AtFree frees). Every argument handle is a
// torch::Tensor*, as gotch's libtch.Ctensor. params are the stacked q, k, v
// weight [3·embedDim, embedDim] and bias, the attention output projection's
// weight and bias, the LayerNorm after attention (weight, bias), the
// LayerNorm after the feed-forward (weight, bias) and the feed-forward's
// two linear layers (weight, bias each). gelu selects the erf GELU in the
// feed-forward, else ReLU. mask is 0 for no mask or a bool key padding mask
// [batch, length], true at padding.
func EncoderLayer(src uintptr, embedDim, numHeads int64, params *[12]uintptr, gelu bool, eps float64, mask uintptr) (unsafe.Pointer, error) {
	g := C.int(0)
	if gelu {
		g = 1
	}
	var out unsafe.Pointer
	if err := cError(C.torchrt_encoder_layer(C.uintptr_t(src), C.int64_t(embedDim), C.int64_t(numHeads),
		(*C.uintptr_t)(unsafe.Pointer(&params[0])), g, C.double(eps), C.uintptr_t(mask), &out)); err != nil {
		return nil, err
	}
	return out, nil
}
