package mlm

import (
	"math"
	"runtime"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// fastCases are the models the fused encoder layer serves (every
// BERT-family case of familyCases, BERT itself and BERT with ReLU), with
// weights large enough (initializer_range 0.3) that the attention is far
// from uniform and a wrong mask would show.
func fastCases() []familyCase {
	b := testConfig()
	relu := testConfig()
	relu.HiddenAct = "relu"
	cases := []familyCase{{name: "bert", cfg: b}, {name: "bert-relu", cfg: relu}}
	for _, fc := range familyCases() {
		if fc.cfg.ModelType != ModelTypeModernBERT {
			cases = append(cases, fc)
		}
	}
	for i := range cases {
		cases[i].cfg.InitializerRange = 0.3
		cases[i].tok = false
	}
	return cases
}

// fastBatch is a batch of token ids with its attention mask (nil for
// none), padding with pad.
type fastBatch struct {
	name string
	ids  [][]int64
	mask [][]int64
	// fallback: the batch has a row without tokens, which the fused
	// layer does not compute as the reference does
	fallback bool
}

func fastBatches(pad int64) []fastBatch {
	p := pad
	return []fastBatch{
		{name: "batch 1 no mask", ids: [][]int64{{2, 9, 10, 11, 4, 7, 13, 5, 3}}},
		{name: "batch 1 mask of ones", ids: [][]int64{{2, 9, 10, 11, 4, 7, 13, 5, 3}}, mask: [][]int64{{1, 1, 1, 1, 1, 1, 1, 1, 1}}},
		{name: "batch 3 no padding", ids: [][]int64{{2, 9, 10, 11, 4, 3}, {2, 14, 4, 15, 16, 3}, {2, 20, 21, 4, 8, 3}},
			mask: [][]int64{{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}}},
		{name: "batch 3 padding", ids: [][]int64{{2, 9, 10, 11, 4, 7, 13, 5, 3}, {2, 14, 4, 3, p, p, p, p, p}, {2, 4, 3, p, p, p, p, p, p}},
			mask: [][]int64{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0, 0, 0}, {1, 1, 1, 0, 0, 0, 0, 0, 0}}},
		{name: "row of padding", ids: [][]int64{{2, 9, 4, 3}, {p, p, p, p}}, mask: [][]int64{{1, 1, 1, 1}, {0, 0, 0, 0}}, fallback: true},
	}
}

// forwardOutputs returns the last hidden states and the logits at every
// position of the batch, without autograd, on the fast path or (ref) the
// reference path.
func forwardOutputs(t *testing.T, m *Model, b fastBatch, ref bool) (hidden, logits []float32) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g := ts.NewNoGradGuard()
	defer g.Drop()
	m.fastOff = ref
	defer func() { m.fastOff = false }()
	ids := int64Batch(t, m, b.ids)
	defer ids.MustDrop()
	var mask *ts.Tensor
	if b.mask != nil {
		mask = int64Batch(t, m, b.mask)
		defer mask.MustDrop()
	}
	h, err := m.Forward(ids, mask, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.MustDrop()
	h2 := h.MustView([]int64{-1, int64(m.cfg.HiddenSize)}, false)
	defer h2.MustDrop()
	lg, err := m.MLMHead(h2)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.MustDrop()
	func() {
		defer catch(&err, "copy")
		hidden, logits = copyFloat32s(h2), copyFloat32s(lg)
	}()
	if err != nil {
		t.Fatal(err)
	}
	return hidden, logits
}

// hasNaN reports whether v holds a NaN.
func hasNaN(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) {
			return true
		}
	}
	return false
}

func TestFastPathParity(t *testing.T) {
	const tol = 1e-4
	for _, fc := range fastCases() {
		m := fc.newModel(t, 11)
		if !m.fast.ok {
			t.Fatalf("%s: fast path not enabled", fc.name)
		}
		for _, b := range fastBatches(int64(fc.cfg.PadTokenID)) {
			t.Run(fc.name+"/"+b.name, func(t *testing.T) {
				rh, rl := forwardOutputs(t, m, b, true)
				fh, fl := forwardOutputs(t, m, b, false)
				if m.fast.qkvW == nil {
					t.Fatal("the fast path did not run (no stacked q, k, v)")
				}
				if hasNaN(fh) || hasNaN(fl) {
					t.Fatal("NaN in the fast path's output")
				}
				dh, dl := maxAbsDiff(rh, fh), maxAbsDiff(rl, fl)
				t.Logf("max |fast − reference|: hidden %.2g, logits %.2g", dh, dl)
				if b.fallback && (dh != 0 || dl != 0) {
					t.Errorf("a batch with a row of padding must take the reference path: hidden differ by %g, logits by %g", dh, dl)
				}
				if dh > tol || dl > tol {
					t.Errorf("fast path differs from the reference: hidden by %g, logits by %g (want ≤ %g)", dh, dl, tol)
				}
			})
		}
	}
}

// TestFastPathEligibility checks which models and modes take the fused
// layer.
func TestFastPathEligibility(t *testing.T) {
	tanh := testConfig()
	tanh.HiddenAct = "gelu_new"
	cases := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"bert", testConfig(), true},
		{"bert gelu_new", tanh, false},
		{"modernbert", modernTestConfig(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := New(c.cfg, nil, Options{Device: "cpu", Threads: 1, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.fast.ok != c.want {
				t.Errorf("fast path enabled = %v, want %v", m.fast.ok, c.want)
			}
		})
	}
	t.Run("grad mode and dropout", func(t *testing.T) {
		m := newTestModel(t, 3)
		gradMode(t)
		if m.useFast(false) {
			t.Error("fast path with autograd on")
		}
		ts.GradSetEnabled(false)
		if m.useFast(true) {
			t.Error("fast path with dropout")
		}
		if !m.useFast(false) {
			t.Error("no fast path without autograd and dropout")
		}
	})
}

// TestFastPathStale checks that the stacked q, k, v follow a change of the
// parameters (as an optimizer step makes) and are freed by Close.
func TestFastPathStale(t *testing.T) {
	m := fastCases()[0].newModel(t, 5)
	b := fastBatches(0)[3]
	forwardOutputs(t, m, b, false)
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		g := ts.NewNoGradGuard()
		defer g.Drop()
		for _, w := range []*ts.Tensor{m.p.layers[0].key.w, m.p.layers[1].value.b} {
			if err := inPlace(w, func() error { return w.AddScalar_(ts.FloatScalar(0.25)) }); err != nil {
				t.Fatal(err)
			}
		}
	}()
	rh, rl := forwardOutputs(t, m, b, true)
	fh, fl := forwardOutputs(t, m, b, false)
	if dh, dl := maxAbsDiff(rh, fh), maxAbsDiff(rl, fl); dh > 1e-4 || dl > 1e-4 {
		t.Errorf("after changing the parameters the fast path differs from the reference: hidden by %g, logits by %g", dh, dl)
	}
	m.Close()
	if m.fast.qkvW != nil || m.fast.qkvB != nil {
		t.Error("Close left the stacked q, k, v")
	}
}
