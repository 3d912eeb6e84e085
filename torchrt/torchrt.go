// Package torchrt holds all of clozeloop's own cgo: it reports which libtorch
// the program runs on (version, build configuration, intra-op threads, CUDA
// devices, the BLAS library in use) and sets the libtorch thread count and
// random seed, which gotch does not expose.
//
// Building this package needs the cgo flags that scripts/env.sh exports
// (include paths of libtorch and the define CLOZELOOP_CGO_ENV). Without them
// the build stops with a message that says so instead of a wall of C++ errors;
// use "make build" or "source scripts/env.sh" first.
//
// Every C++ exception is caught in the C shim and returned as a Go error.
package torchrt

/*
#cgo CXXFLAGS: -std=c++17
#ifndef CLOZELOOP_CGO_ENV
#error "clozeloop: the cgo flags for libtorch are not set. Build with 'make build' (or run 'source scripts/env.sh' first). See README."
#endif
#include <stdlib.h>
#include "torchrt.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// cError turns an error message returned by the C shim into a Go error and
// frees it; it returns nil for a NULL message.
func cError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

// cString copies a malloc'd C string into Go memory and frees it.
func cString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(s))
	return C.GoString(s)
}

// Version returns the libtorch version this package was compiled against
// (TORCH_VERSION from torch/version.h), e.g. "1.13.0".
func Version() string {
	return C.GoString(C.torchrt_compiled_version())
}

// RuntimeVersion returns the version of the libtorch library loaded at run
// time, read from TORCH_VERSION in its build configuration. It can differ from
// Version when the shared library was replaced after the build.
func RuntimeVersion() (string, error) {
	cfg, err := BuildConfig()
	if err != nil {
		return "", err
	}
	v := buildSetting(cfg, "TORCH_VERSION")
	if v == "" {
		return "", fmt.Errorf("runtime libtorch version: no TORCH_VERSION in at::show_config()")
	}
	return v, nil
}

// CompatHeader returns the hash of the compatibility header
// (deploy/libtorch/compat.h) this package was compiled with, or "" when the
// build used none (libtorch 2.1 or later).
func CompatHeader() string {
	return C.GoString(C.torchrt_compat())
}

// BuildConfig returns libtorch's description of its own build
// (at::show_config()): compiler, BLAS, OpenMP, CUDA and build settings.
func BuildConfig() (string, error) {
	var out *C.char
	if err := cError(C.torchrt_show_config(&out)); err != nil {
		return "", fmt.Errorf("libtorch build configuration: %w", err)
	}
	return cString(out), nil
}

// ParallelInfo returns libtorch's report on its thread pools
// (at::get_parallel_info()).
func ParallelInfo() (string, error) {
	var out *C.char
	if err := cError(C.torchrt_parallel_info(&out)); err != nil {
		return "", fmt.Errorf("libtorch parallel info: %w", err)
	}
	return cString(out), nil
}

// SetNumThreads sets libtorch's intra-op thread count (at::set_num_threads).
//
// With OpenMP (Debian's build) the setting reaches the calling OS thread and
// every OS thread that runs its first parallel libtorch work afterwards;
// threads that already ran parallel work keep their count. Call it once at
// start-up, before any other libtorch work.
func SetNumThreads(n int) error {
	if n < 1 {
		return fmt.Errorf("set libtorch threads to %d: need at least 1", n)
	}
	if err := cError(C.torchrt_set_num_threads(C.int(n))); err != nil {
		return fmt.Errorf("set libtorch threads to %d: %w", n, err)
	}
	return nil
}

// NumThreads returns the intra-op thread count libtorch uses
// (at::get_num_threads() as seen by a new thread).
func NumThreads() (int, error) {
	var n C.int
	if err := cError(C.torchrt_num_threads(&n)); err != nil {
		return 0, fmt.Errorf("libtorch threads: %w", err)
	}
	return int(n), nil
}

// ManualSeed seeds libtorch's default random generators (at::manual_seed), so
// that weight initialisation, dropout and sampling repeat from run to run.
func ManualSeed(seed uint64) error {
	if err := cError(C.torchrt_manual_seed(C.uint64_t(seed))); err != nil {
		return fmt.Errorf("seed libtorch with %d: %w", seed, err)
	}
	return nil
}

// CUDA describes the CUDA devices libtorch can use.
type CUDA struct {
	// Available reports torch::cuda::is_available().
	Available bool `json:"available"`
	// Devices is torch::cuda::device_count().
	Devices int `json:"devices"`
}

// CUDAInfo asks libtorch whether CUDA is available and how many devices it
// sees. With the CPU-only Debian libtorch (or CUDA stub libraries) it reports
// no CUDA and zero devices.
func CUDAInfo() (CUDA, error) {
	var avail C.int
	var count C.int64_t
	if err := cError(C.torchrt_cuda(&avail, &count)); err != nil {
		return CUDA{}, fmt.Errorf("query CUDA devices: %w", err)
	}
	return CUDA{Available: avail != 0, Devices: int(count)}, nil
}

// CUDAAvailable reports whether libtorch can use a CUDA device; errors from
// libtorch count as "not available".
func CUDAAvailable() bool {
	c, err := CUDAInfo()
	return err == nil && c.Available
}

// CUDADeviceCount returns the number of CUDA devices libtorch sees, 0 when
// there are none or libtorch cannot tell.
func CUDADeviceCount() int {
	c, err := CUDAInfo()
	if err != nil {
		return 0
	}
	return c.Devices
}

// buildSetting returns the value of key in the "Build settings:" line of
// at::show_config() output ("KEY=value, KEY2=value2, ..."), or "".
func buildSetting(config, key string) string {
	for _, line := range strings.Split(config, "\n") {
		_, settings, ok := strings.Cut(line, "Build settings:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(settings, ", ") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if ok && k == key {
				return strings.TrimSpace(strings.TrimSuffix(v, ","))
			}
		}
	}
	return ""
}
