// Package compat_test checks deploy/libtorch/compat.h through gotch: ops that
// the header rebuilds from libtorch 1.13 ops give libtorch 2.1's numbers, ops
// it cannot rebuild come back as Go errors that name the op instead of
// crashing, and a CPU-only build links no CUDA library.
//
// Run it with the cgo environment of scripts/env.sh:
//
//	source scripts/env.sh && go test ./deploy/libtorch/
package compat_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// libtorchBefore21 reports whether the libtorch that scripts/env.sh detected
// is older than 2.1, i.e. whether compat.h is compiled into gotch.
func libtorchBefore21(t *testing.T) bool {
	t.Helper()
	v := os.Getenv("CLOZELOOP_LIBTORCH_VERSION")
	if v == "" {
		t.Fatal("CLOZELOOP_LIBTORCH_VERSION is not set: run the tests after 'source scripts/env.sh' (or through make)")
	}
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("CLOZELOOP_LIBTORCH_VERSION=%q: want MAJOR.MINOR[.PATCH]", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("CLOZELOOP_LIBTORCH_VERSION=%q: %v", v, err)
	}
	return major < 2 || (major == 2 && minor < 1)
}

// tensorOf makes a float32 CPU tensor with the given values and shape.
func tensorOf(t *testing.T, data []float32, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.OfSlice(data)
	if err != nil {
		t.Fatalf("make tensor of %v: %v", data, err)
	}
	y, err := x.Reshape(shape, true)
	if err != nil {
		t.Fatalf("reshape tensor to %v: %v", shape, err)
	}
	return y
}

// result is what one op case produced: values in row-major order and shape.
type result struct {
	values []float64
	shape  []int64
	stride []int64
}

func valuesOf(x *ts.Tensor) result {
	return result{values: x.Float64Values(), shape: x.MustSize(), stride: x.MustStride()}
}

func closeTo(got, want []float64, tol float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol {
			return false
		}
	}
	return true
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sdpaReference is scaled dot product attention of 2D q [L,E], k [S,E] and
// v [S,Ev] in plain Go; causal masks keys after the query position.
func sdpaReference(q, k, v [][]float64, scale float64, causal bool) []float64 {
	var out []float64
	for i := range q {
		scores := make([]float64, len(k))
		maxScore := math.Inf(-1)
		for j := range k {
			if causal && j > i {
				scores[j] = math.Inf(-1)
				continue
			}
			var dot float64
			for e := range q[i] {
				dot += q[i][e] * k[j][e]
			}
			scores[j] = dot * scale
			maxScore = math.Max(maxScore, scores[j])
		}
		var sum float64
		for j := range scores {
			scores[j] = math.Exp(scores[j] - maxScore)
			sum += scores[j]
		}
		for c := range v[0] {
			var acc float64
			for j := range v {
				acc += scores[j] / sum * v[j][c]
			}
			out = append(out, acc)
		}
	}
	return out
}

func flatten32(rows [][]float64) []float32 {
	var out []float32
	for _, r := range rows {
		for _, x := range r {
			out = append(out, float32(x))
		}
	}
	return out
}

func TestRebuiltOps(t *testing.T) {
	x1312 := func() *ts.Tensor { return tensorOf(t, []float32{0, 1, 2, 3, 4, 5}, 1, 3, 1, 2) }
	rows := func() *ts.Tensor { return tensorOf(t, []float32{1, 2, 3, 4, 2, 4, 6, 8}, 2, 4) }

	q := [][]float64{{0.1, -0.4, 0.9}, {1.2, 0.3, -0.5}, {-0.7, 0.8, 0.2}}
	k := [][]float64{{0.5, 0.1, -0.3}, {-0.2, 0.9, 0.4}, {0.6, -0.8, 1.1}}
	v := [][]float64{{1, 2}, {3, -1}, {0.5, 4}}
	qt := func() *ts.Tensor { return tensorOf(t, flatten32(q), 3, 3) }
	kt := func() *ts.Tensor { return tensorOf(t, flatten32(k), 3, 3) }
	vt := func() *ts.Tensor { return tensorOf(t, flatten32(v), 3, 2) }

	tests := []struct {
		name       string
		run        func() (result, error)
		wantShape  []int64
		want       []float64 // nil: values are not checked
		wantStride []int64   // nil: strides are not checked
	}{
		{
			name: "squeeze dims",
			run: func() (result, error) {
				y, err := x1312().SqueezeDims([]int64{0, 2}, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{3, 2},
			want:      []float64{0, 1, 2, 3, 4, 5},
		},
		{
			name: "squeeze dims keeps dims larger than 1",
			run: func() (result, error) {
				y, err := x1312().SqueezeDims([]int64{1, -2}, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{1, 3, 2},
			want:      []float64{0, 1, 2, 3, 4, 5},
		},
		{
			name: "squeeze dims in place",
			run: func() (result, error) {
				x := x1312()
				if err := x.SqueezeDims_([]int64{-1, 0, 2}); err != nil {
					return result{}, err
				}
				return valuesOf(x), nil
			},
			wantShape: []int64{3, 2},
			want:      []float64{0, 1, 2, 3, 4, 5},
		},
		{
			name: "std with integer correction 1",
			run: func() (result, error) {
				y, err := rows().StdCorrection([]int64{1}, ts.IntScalar(1), false, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{2},
			want:      []float64{math.Sqrt(5.0 / 3), math.Sqrt(20.0 / 3)},
		},
		{
			name: "std with integral float correction 0",
			run: func() (result, error) {
				y, err := rows().StdCorrection([]int64{1}, ts.FloatScalar(0), true, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{2, 1},
			want:      []float64{math.Sqrt(5.0 / 4), math.Sqrt(20.0 / 4)},
		},
		{
			name: "var with correction 2 over all dims",
			run: func() (result, error) {
				y, err := rows().VarCorrection([]int64{0, 1}, ts.IntScalar(2), false, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			// mean 3.75, sum of squared deviations 37.5, 8-2 degrees of freedom
			wantShape: []int64{},
			want:      []float64{37.5 / 6},
		},
		{
			name: "std_mean with correction 1",
			run: func() (result, error) {
				s, m, err := rows().StdMeanCorrection([]int64{1}, ts.IntScalar(1), false, true)
				if err != nil {
					return result{}, err
				}
				r := valuesOf(s)
				r.values = append(r.values, m.Float64Values()...)
				return r, nil
			},
			wantShape: []int64{2},
			want:      []float64{math.Sqrt(5.0 / 3), math.Sqrt(20.0 / 3), 2.5, 5},
		},
		{
			name: "scaled dot product attention",
			run: func() (result, error) {
				y, err := ts.ScaledDotProductAttention(qt(), kt(), vt(), ts.NewTensor(), 0, false, nil)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{3, 2},
			want:      sdpaReference(q, k, v, 1/math.Sqrt(3), false),
		},
		{
			name: "scaled dot product attention causal with scale",
			run: func() (result, error) {
				y, err := ts.ScaledDotProductAttention(qt(), kt(), vt(), ts.NewTensor(), 0, true, []float64{0.5})
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{3, 2},
			want:      sdpaReference(q, k, v, 0.5, true),
		},
		{
			name: "nonzero_static pads with fill value",
			run: func() (result, error) {
				y, err := tensorOf(t, []float32{0, 3, 0, 5}, 4).NonzeroStatic(4, -1, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{4, 1},
			want:      []float64{1, 3, -1, -1},
		},
		{
			name: "nonzero_static truncates",
			run: func() (result, error) {
				y, err := tensorOf(t, []float32{0, 3, 0, 5}, 2, 2).NonzeroStatic(1, -1, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{1, 2},
			want:      []float64{0, 1},
		},
		{
			name: "empty_permuted lays out memory in physical order",
			run: func() (result, error) {
				y, err := ts.EmptyPermuted([]int64{2, 3, 4}, []int64{2, 0, 1}, gotch.Float, gotch.CPU)
				if err != nil {
					return result{}, err
				}
				return result{shape: y.MustSize(), stride: y.MustStride()}, nil
			},
			wantShape:  []int64{2, 3, 4},
			wantStride: []int64{3, 1, 6},
		},
		{
			name: "max of all elements into out",
			run: func() (result, error) {
				// gotch cannot make a 0-dim tensor (it indexes size[0]); max_out resizes out.
				out, err := ts.Zeros([]int64{1}, gotch.Float, gotch.CPU)
				if err != nil {
					return result{}, err
				}
				y, err := tensorOf(t, []float32{1, 9, 3, -2}, 2, 2).MaxUnaryOut(out, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{},
			want:      []float64{9},
		},
		{
			// gotch always passes a blocksize (its Go wrapper indexes
			// blocksize[0]); the CSR conversion ignores it.
			name: "to_sparse csr and back to dense",
			run: func() (result, error) {
				s, err := tensorOf(t, []float32{0, 1, 2, 0, 0, 3}, 2, 3).ToSparse(ts.SparseCsr, []int64{1, 1}, nil, true)
				if err != nil {
					return result{}, err
				}
				// gotch.Invalid means "no dtype": libtorch (1.13 and 2.1)
				// rejects a dtype for compressed layouts.
				y, err := s.ToDense(gotch.Invalid, true, true)
				if err != nil {
					return result{}, err
				}
				return valuesOf(y), nil
			},
			wantShape: []int64{2, 3},
			want:      []float64{0, 1, 2, 0, 0, 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// gotch keeps the last libtorch error in a thread_local and reads
			// it back in a second cgo call: without a locked OS thread the
			// goroutine can move between the two and the error is lost (or
			// surfaces in an unrelated later call).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			got, err := tc.run()
			if err != nil {
				t.Fatalf("op failed: %v", err)
			}
			if !equalInts(got.shape, tc.wantShape) {
				t.Errorf("shape = %v, want %v", got.shape, tc.wantShape)
			}
			if tc.want != nil && !closeTo(got.values, tc.want, 1e-5) {
				t.Errorf("values = %v, want %v", got.values, tc.want)
			}
			if tc.wantStride != nil && !equalInts(got.stride, tc.wantStride) {
				t.Errorf("stride = %v, want %v", got.stride, tc.wantStride)
			}
		})
	}
}

func TestUnsupportedOpsReturnErrors(t *testing.T) {
	if !libtorchBefore21(t) {
		t.Skipf("libtorch %s >= 2.1 runs these ops itself; compat.h is not compiled in", os.Getenv("CLOZELOOP_LIBTORCH_VERSION"))
	}
	tests := []struct {
		name string
		run  func(x *ts.Tensor) error
		want string
	}{
		{
			name: "op missing in 1.13",
			run: func(x *ts.Tensor) error {
				_, err := x.QuantizedMaxPool3d([]int64{1, 1, 1}, []int64{1, 1, 1}, []int64{0, 0, 0}, []int64{1, 1, 1}, false, false)
				return err
			},
			want: "clozeloop: torch::quantized_max_pool3d needs libtorch >= 2.1 (this is libtorch 1.13)",
		},
		{
			name: "fractional std correction",
			run: func(x *ts.Tensor) error {
				_, err := x.StdCorrection([]int64{1}, ts.FloatScalar(0.5), false, false)
				return err
			},
			want: "clozeloop: torch::std with a fractional correction needs libtorch >= 2.1",
		},
		{
			name: "csr with dense dims",
			run: func(x *ts.Tensor) error {
				_, err := x.ToSparse(ts.SparseCsr, []int64{1, 1}, []int64{1}, false)
				return err
			},
			want: "clozeloop: torch::to_sparse with dense_dim > 0 needs libtorch >= 2.1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// gotch keeps the last libtorch error in a thread_local and reads
			// it back in a second cgo call: without a locked OS thread the
			// goroutine can move between the two and the error is lost (or
			// surfaces in an unrelated later call).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			x := tensorOf(t, []float32{1, 2, 3, 4, 5, 6, 7, 8}, 1, 2, 2, 2)
			err := tc.run(x)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q, want it to contain %q", firstLine(err), tc.want)
			}
			// The process and the tensor are still usable after the error.
			sum, err := x.Sum(gotch.Float, false)
			if err != nil {
				t.Fatalf("sum after the error: %v", err)
			}
			if got := sum.Float64Values(); !closeTo(got, []float64{36}, 1e-6) {
				t.Fatalf("sum after the error = %v, want [36]", got)
			}
		})
	}
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// cudaLib matches the CUDA libraries gotch's lib.go asks the linker for.
var cudaLib = regexp.MustCompile(`(?m)^\s*lib(cuda|cudart|cublas|cudnn|caffe2_nvrtc|nvrtc-builtins|nvrtc|nvToolsExt|c10_cuda|torch_cuda)[.-]`)

func TestNoCUDALibraryLinked(t *testing.T) {
	if os.Getenv("CLOZELOOP_CUDA_STUBS") == "" {
		t.Skip("scripts/env.sh found a CUDA libtorch: real CUDA libraries are linked on purpose")
	}
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skipf("ldd not available: %v", err)
	}
	var out bytes.Buffer
	cmd := exec.Command(ldd, os.Args[0])
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("ldd %s: %v\n%s", os.Args[0], err, out.String())
	}
	if m := cudaLib.FindAllString(out.String(), -1); len(m) > 0 {
		t.Errorf("test binary links CUDA libraries %v:\n%s", m, out.String())
	}
	if !strings.Contains(out.String(), "libtorch_cpu") {
		t.Errorf("test binary does not link libtorch_cpu:\n%s", out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, "libtorch") || strings.HasPrefix(name, "libc10") {
			t.Logf("ldd: %s", strings.TrimSpace(line))
		}
	}
}
