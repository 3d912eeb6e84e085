package torchrt

/*
#include "torchrt.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"runtime/debug"
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
