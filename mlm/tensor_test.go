package mlm

import (
	"math"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// countFrees makes s count the frees of each handle from now on. With
// real, libtorch handles are freed (the first time only); with fake
// handles nothing is freed. libtorch reuses the memory of a freed handle,
// so the counts are taken over spans that allocate no new handle after
// freeing one.
func countFrees(s *scope, real bool) map[lib.Ctensor]int {
	counts := map[lib.Ctensor]int{}
	s.freeFn = func(c lib.Ctensor) {
		counts[c]++
		if real && counts[c] == 1 {
			lib.AtFree(c)
		}
	}
	return counts
}

// TestScopeFreesEachHandleOnce runs the scope's bookkeeping on fake
// handles: whatever is dropped early, consumed or left to free, every
// handle kept is freed exactly once, and a second free does nothing.
func TestScopeFreesEachHandleOnce(t *testing.T) {
	var store [8]byte
	fake := func(i int) lib.Ctensor { return lib.Ctensor(unsafe.Pointer(&store[i])) }
	tests := []struct {
		name string
		// run keeps handles 0 … n-1 and works on them; it returns the
		// number of handles it kept.
		run func(s *scope) int
		// left is how many handles the scope holds before free.
		left int
	}{
		{"none", func(s *scope) int { return 0 }, 0},
		{"all left to free", func(s *scope) int {
			for i := range 5 {
				s.keep("op", fake(i))
			}
			return 5
		}, 5},
		{"dropped early", func(s *scope) int {
			for i := range 4 {
				s.keep("op", fake(i))
			}
			s.drop(fake(1))
			s.drop(fake(3))
			return 4
		}, 2},
		{"all dropped", func(s *scope) int {
			for i := range 3 {
				s.keep("op", fake(i))
			}
			for i := range 3 {
				s.drop(fake(i))
			}
			return 3
		}, 0},
		{"consumed chain", func(s *scope) int {
			x := s.keep("op", fake(0))
			for i := 1; i < 6; i++ {
				x = s.consume(x, s.keep("op", fake(i)))
			}
			if x != fake(5) {
				t.Errorf("consume returned %p, want the last result %p", x, fake(5))
			}
			return 6
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s scope
			counts := countFrees(&s, false)
			n := tc.run(&s)
			if len(s.owned) != tc.left {
				t.Fatalf("scope holds %d handles before free, want %d", len(s.owned), tc.left)
			}
			s.free()
			if len(s.owned) != 0 {
				t.Fatalf("scope holds %d handles after free", len(s.owned))
			}
			s.free()
			for i := range n {
				if got := counts[fake(i)]; got != 1 {
					t.Errorf("handle %d freed %d times, want 1", i, got)
				}
			}
			if len(counts) != n {
				t.Errorf("%d distinct handles freed, want %d", len(counts), n)
			}
		})
	}
}

// TestScopeForeignHandle: dropping or releasing a handle the scope does
// not hold is an error (a torchError, which catch turns into an error),
// and frees nothing.
func TestScopeForeignHandle(t *testing.T) {
	var store [2]byte
	held, foreign := lib.Ctensor(unsafe.Pointer(&store[0])), lib.Ctensor(unsafe.Pointer(&store[1]))
	for _, op := range []struct {
		name string
		call func(s *scope)
	}{
		{"drop", func(s *scope) { s.drop(foreign) }},
		{"release", func(s *scope) { s.release(foreign) }},
	} {
		t.Run(op.name, func(t *testing.T) {
			var s scope
			counts := countFrees(&s, false)
			s.keep("op", held)
			err := func() (err error) {
				defer catch(&err, "test")
				op.call(&s)
				return nil
			}()
			if err == nil || !strings.Contains(err.Error(), "does not hold") {
				t.Fatalf("err = %v, want one saying the scope does not hold the handle", err)
			}
			if len(counts) != 0 {
				t.Fatalf("freed %d handles, want none", len(counts))
			}
			s.free()
			if counts[held] != 1 || counts[foreign] != 0 {
				t.Fatalf("frees: held %d, foreign %d; want 1 and 0", counts[held], counts[foreign])
			}
		})
	}
}

// TestScopeOpError runs real libtorch operations: a failing one is
// reported with its name and libtorch's message, records no handle, and
// the handles recorded before it are freed once by free. A released
// handle is the caller's and is not freed by the scope.
func TestScopeOpError(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x, err := ts.OfSlice([]float32{1, 2, 3, 4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	defer x.MustDrop()
	tests := []struct {
		name string
		// run ends in a failing operation or none.
		run        func(s *scope) lib.Ctensor
		wantErr    string // in the error; "" for none
		held       int    // handles the scope holds after run
		wantResult bool
	}{
		{"view to a wrong size", func(s *scope) lib.Ctensor {
			v := s.view(ct(x), []int64{2, 3})
			s.transpose(v, 0, 1)
			return s.view(ct(x), []int64{4, 4})
		}, "view: ", 2, false},
		{"select out of range", func(s *scope) lib.Ctensor {
			return s.selectIndex(ct(x), 0, 9)
		}, "select: ", 0, false},
		{"matmul of mismatched shapes", func(s *scope) lib.Ctensor {
			a := s.view(ct(x), []int64{2, 3})
			return s.matmul(a, a)
		}, "matmul: ", 1, false},
		{"create tensor of a wrong size", func(s *scope) lib.Ctensor {
			return s.float32s([]float32{1, 2}, []int64{3}, gotch.CPU)
		}, "create tensor of shape [3] from 2 values", 0, false},
		{"no error", func(s *scope) lib.Ctensor {
			v := s.view(ct(x), []int64{2, 3})
			return s.consume(v, s.transpose(v, 0, 1))
		}, "", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s scope
			var res lib.Ctensor
			err := func() (err error) {
				defer catch(&err, "test")
				res = tc.run(&s)
				return nil
			}()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if len(s.owned) != tc.held {
				t.Fatalf("scope holds %d handles, want %d", len(s.owned), tc.held)
			}
			if (res != nil) != tc.wantResult {
				t.Fatalf("result %p, want one: %v", res, tc.wantResult)
			}
			if tc.wantResult {
				r := s.release(res)
				defer r.MustDrop()
				if got := r.MustSize(); len(got) != 2 || got[0] != 3 || got[1] != 2 {
					t.Fatalf("result shape %v, want [3 2]", got)
				}
			}
			held := append([]lib.Ctensor(nil), s.owned...)
			counts := countFrees(&s, true)
			s.free()
			s.free()
			for _, h := range held {
				if counts[h] != 1 {
					t.Errorf("handle %p freed %d times, want 1", h, counts[h])
				}
			}
			if len(counts) != len(held) {
				t.Errorf("%d handles freed, want the %d held", len(counts), len(held))
			}
		})
	}
}

// TestForwardScope: for every family, with and without padding, in eval
// and training mode, the forward pass frees its intermediate tensors as it
// goes (the scope holds only the result, so the memory high-water mark is
// that of dropping each tensor once used), and the MLM head likewise; an
// error inside the forward pass is returned by Forward with what failed.
func TestForwardScope(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cases := []struct {
		name string
		cfg  Config
	}{{"bert", testConfig()}}
	for _, fc := range familyCases() {
		cases = append(cases, struct {
			name string
			cfg  Config
		}{fc.name, fc.cfg})
	}
	ids, mask, _ := testBatch()
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) {
			// A subtest is a goroutine of its own: pin it too, since
			// libtch's last error is per OS thread.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			m, err := New(fc.cfg, nil, Options{Device: "cpu", Threads: 1, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			flat := func(x [][]int64) *ts.Tensor { return int64Batch(t, m, x) }
			it, mt := flat(ids), flat(mask)
			defer it.MustDrop()
			defer mt.MustDrop()
			for _, train := range []bool{false, true} {
				for _, am := range []*ts.Tensor{nil, mt} {
					var s scope
					var h, logits lib.Ctensor
					err := func() (err error) {
						defer catch(&err, "forward")
						h = m.forward(&s, ct(it), ctOpt(am), nil, train)
						if len(s.owned) != 1 || s.owned[0] != h {
							t.Errorf("train %v, mask %v: after forward the scope holds %d handles, want only the result", train, am != nil, len(s.owned))
						}
						logits = m.head(&s, h)
						return nil
					}()
					if err != nil {
						t.Fatal(err)
					}
					if len(s.owned) != 2 || s.owned[1] != logits {
						t.Errorf("train %v, mask %v: after the head the scope holds %d handles, want the hidden states and logits", train, am != nil, len(s.owned))
					}
					counts := countFrees(&s, true)
					s.free()
					if len(counts) != 2 {
						t.Errorf("train %v, mask %v: free freed %d handles, want 2", train, am != nil, len(counts))
					}
					if counts[h] != 1 || counts[logits] != 1 {
						t.Errorf("train %v, mask %v: hidden states freed %d times, logits %d, want once each", train, am != nil, counts[h], counts[logits])
					}
				}
			}

			// A token id outside the vocabulary fails in the embedding.
			bad := flat([][]int64{{2, int64(fc.cfg.VocabSize) + 5, 3}})
			defer bad.MustDrop()
			if h, err := m.Forward(bad, nil, nil, false); err == nil {
				h.MustDrop()
				t.Fatal("Forward accepted a token id outside the vocabulary")
			} else if !strings.Contains(err.Error(), "forward: embedding: ") {
				t.Fatalf("err = %v, want a forward embedding error", err)
			}
		})
	}
}

// TestScopeGoSlices checks the scope's way in from Go slices and back:
// shapes, values, empty tensors, a non-contiguous result (copied in memory
// order of its indices) and a wrong value count.
func TestScopeGoSlices(t *testing.T) {
	tests := []struct {
		name      string
		ints      []int64
		shape     []int64
		transpose bool
		want      []int64
		wantErr   string
	}{
		{name: "vector", ints: []int64{3, -1, 7}, shape: []int64{3}, want: []int64{3, -1, 7}},
		{name: "matrix", ints: []int64{1, 2, 3, 4, 5, 6}, shape: []int64{2, 3}, want: []int64{1, 2, 3, 4, 5, 6}},
		{name: "transposed", ints: []int64{1, 2, 3, 4, 5, 6}, shape: []int64{2, 3}, transpose: true, want: []int64{1, 4, 2, 5, 3, 6}},
		{name: "empty", ints: nil, shape: []int64{0}, want: []int64{}},
		{name: "count mismatch", ints: []int64{1, 2}, shape: []int64{3}, wantErr: "shape [3] from 2 values"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ints []int64
			var floats []float32
			err := onScope("go slices", func(s *scope) {
				it := s.int64s(tc.ints, tc.shape, gotch.CPU)
				fv := make([]float32, len(tc.ints))
				for i, v := range tc.ints {
					fv[i] = float32(v) / 2
				}
				ft := s.float32s(fv, tc.shape, gotch.CPU)
				if tc.transpose {
					it = s.transpose(it, 0, 1)
					ft = s.transpose(ft, 0, 1)
				}
				ints, floats = int64sOf(it), float32sOf(ft)
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ints) != len(tc.want) || len(floats) != len(tc.want) {
				t.Fatalf("got %v and %v, want %v", ints, floats, tc.want)
			}
			for i, w := range tc.want {
				if ints[i] != w || floats[i] != float32(w)/2 {
					t.Errorf("element %d: %d and %g, want %d and %g", i, ints[i], floats[i], w, float32(w)/2)
				}
			}
		})
	}
}

// TestScopeGelu checks the scope's GELU (through torchrt) against the
// exact and the tanh-approximated formula.
func TestScopeGelu(t *testing.T) {
	xs := []float32{-3, -1, -0.5, 0, 0.5, 1, 3}
	tests := []struct {
		name string
		tanh bool
		want func(x float64) float64
	}{
		{"erf", false, func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }},
		{"tanh", true, func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []float32
			err := onScope("gelu", func(s *scope) {
				got = float32sOf(s.gelu(s.float32s(xs, []int64{int64(len(xs))}, gotch.CPU), tc.tanh))
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, x := range xs {
				if w := tc.want(float64(x)); math.Abs(float64(got[i])-w) > 1e-6 {
					t.Errorf("gelu(%g) = %g, want %g", x, got[i], w)
				}
			}
		})
	}
}

// onScope runs fn with a fresh scope on a locked OS thread, frees the scope
// afterwards and returns the libtorch error fn panicked with (what names
// it).
func onScope(what string, fn func(s *scope)) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s scope
	defer s.free()
	defer catch(&err, what)
	fn(&s)
	return nil
}
