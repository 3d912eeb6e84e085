package mlm

import (
	"math"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/torchrt"
)

func TestNoWeightDecay(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"bert.embeddings.word_embeddings.weight", false},
		{"bert.embeddings.LayerNorm.weight", true},
		{"bert.embeddings.LayerNorm.bias", true},
		{"bert.encoder.layer.0.attention.self.query.weight", false},
		{"bert.encoder.layer.0.attention.self.query.bias", true},
		{"bert.encoder.layer.3.output.LayerNorm.weight", true},
		{"cls.predictions.transform.dense.weight", false},
		{"cls.predictions.bias", true},
		{"distilbert.transformer.layer.0.sa_layer_norm.weight", true},
		{"vocab_layer_norm.weight", true},
		{"model.layers.1.attn_norm.weight", true},
		{"model.final_norm.weight", true},
		{"head.norm.weight", true},
		{"model.layers.0.mlp.Wi.weight", false},
		{"model.embeddings.tok_embeddings.weight", false},
		{"decoder.bias", true},
	}
	for _, tc := range tests {
		if got := NoWeightDecay(tc.name); got != tc.want {
			t.Errorf("NoWeightDecay(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLinearSchedule(t *testing.T) {
	tests := []struct {
		step, warmup, total int
		want                float64
	}{
		{0, 4, 10, 0.25},
		{3, 4, 10, 1},
		{4, 4, 10, 1},
		{7, 4, 10, 0.5},
		{9, 4, 10, 1.0 / 6},
		{0, 0, 10, 1},
		{5, 0, 10, 0.5},
		{0, 0, 1, 1},
		{2, 5, 5, 0.6},
	}
	for _, tc := range tests {
		if got := LinearSchedule(tc.step, tc.warmup, tc.total, 1); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LinearSchedule(%d, %d, %d) = %g, want %g", tc.step, tc.warmup, tc.total, got, tc.want)
		}
	}
}

// TestAdamWGroups checks one AdamW step against the closed form, with
// weight decay on the weight and none on the bias and LayerNorm.
func TestAdamWGroups(t *testing.T) {
	const lr, wd, g = 0.1, 0.5, 0.5
	gradMode(t)
	mk := func(v float32) *ts.Tensor {
		x := ts.MustOfSlice([]float32{v, v})
		y := x.MustSetRequiresGrad(true, true)
		return y
	}
	params := []NamedTensor{
		{Name: "l.dense.weight", Tensor: mk(1)},
		{Name: "l.dense.bias", Tensor: mk(1)},
		{Name: "l.LayerNorm.weight", Tensor: mk(1)},
		{Name: "l.frozen.weight", Tensor: mk(1)}, // gets no gradient
	}
	opt, err := newAdamW(params, AdamWOptions{WeightDecay: wd})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.drop()
	// loss = g * sum(first three) → gradient g everywhere but the last.
	half := ts.FloatScalar(g)
	defer half.MustDrop()
	var sum *ts.Tensor
	for _, p := range params[:3] {
		s := p.Tensor.MustSum(gotch.Float, false)
		if sum == nil {
			sum = s
		} else {
			sum = sum.MustAdd(s, true)
			s.MustDrop()
		}
	}
	loss := sum.MustMulScalar(half, true)
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	loss.MustDrop()
	norm, err := opt.apply(lr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(norm-math.Sqrt(6*g*g)) > 1e-6 {
		t.Errorf("global grad norm = %g, want %g", norm, math.Sqrt(6*g*g))
	}
	// m̂ = g, v̂ = g², update = lr·g/(|g|+eps) ≈ lr.
	wantDecayed := 1*(1-lr*wd) - lr
	wantPlain := 1 - lr
	want := []float64{wantDecayed, wantPlain, wantPlain, 1}
	for i, p := range params {
		vals, err := tensorFloat32s(p.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if math.Abs(float64(v)-want[i]) > 1e-6 {
				t.Errorf("%s = %g after one step, want %g", p.Name, v, want[i])
			}
		}
	}
	if opt.step != 1 {
		t.Errorf("optimizer step = %d, want 1", opt.step)
	}
	for _, p := range params {
		p.Tensor.MustDrop()
	}
}

func TestClipGradNorm(t *testing.T) {
	gradMode(t)
	params := []NamedTensor{
		{Name: "a.bias", Tensor: ts.MustOfSlice([]float32{0, 0}).MustSetRequiresGrad(true, true)},
		{Name: "b.bias", Tensor: ts.MustOfSlice([]float32{0, 0}).MustSetRequiresGrad(true, true)},
		{Name: "c.bias", Tensor: ts.MustOfSlice([]float32{0, 0}).MustSetRequiresGrad(true, true)}, // no gradient
	}
	defer func() {
		for _, p := range params {
			p.Tensor.MustDrop()
		}
	}()
	opt, err := newAdamW(params, AdamWOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.drop()
	setGrads(t, params[:2], [][]float64{{3, 0}, {0, 4}})
	norm, err := opt.apply(1e-3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(norm-5) > 1e-6 {
		t.Errorf("norm = %g, want 5", norm)
	}
	// The first moment is (1 − β1)·g of the clipped gradient.
	want := [][]float64{{0.06, 0}, {0, 0.08}, {0, 0}}
	for i := range params {
		got, err := tensorFloat32s(opt.m[i])
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if math.Abs(float64(got[j])-want[i][j]) > 1e-6 {
				t.Errorf("first moment of %s = %v, want %v (clipped to [0.6 0] [0 0.8])", params[i].Name, got, want[i])
				break
			}
		}
	}
}

// adamRef is an independent float64 AdamW (Loshchilov & Hutter, in
// torch.optim.AdamW's form) with torch.nn.utils.clip_grad_norm_'s global
// clipping in front, written from the papers' formulas and not from
// optim.go. The switches turn single ingredients off, to show that the
// test's settings make each of them matter.
type adamRef struct {
	b1, b2, eps, wd, maxNorm float64
	noBiasCorrection         bool
}

// run takes len(lrs) steps from w0 with grads[step][param][element] and
// returns the parameters; decay says which parameters are decayed.
func (r adamRef) run(w0 [][]float64, decay []bool, grads [][][]float64, lrs []float64) [][]float64 {
	w := make([][]float64, len(w0))
	m := make([][]float64, len(w0))
	v := make([][]float64, len(w0))
	for i := range w0 {
		w[i] = append([]float64(nil), w0[i]...)
		m[i] = make([]float64, len(w0[i]))
		v[i] = make([]float64, len(w0[i]))
	}
	for step, lr := range lrs {
		t := float64(step + 1)
		sq := 0.0
		for _, g := range grads[step] {
			for _, x := range g {
				sq += x * x
			}
		}
		coef := 1.0
		if norm := math.Sqrt(sq); r.maxNorm > 0 && norm > r.maxNorm {
			coef = r.maxNorm / (norm + 1e-6)
		}
		bc1, bc2 := 1-math.Pow(r.b1, t), 1-math.Pow(r.b2, t)
		if r.noBiasCorrection {
			bc1, bc2 = 1, 1
		}
		for i := range w {
			for j := range w[i] {
				g := grads[step][i][j] * coef
				if decay[i] {
					w[i][j] *= 1 - lr*r.wd
				}
				m[i][j] = r.b1*m[i][j] + (1-r.b1)*g
				v[i][j] = r.b2*v[i][j] + (1-r.b2)*g*g
				mHat, vHat := m[i][j]/bc1, v[i][j]/bc2
				w[i][j] -= lr * mHat / (math.Sqrt(vHat) + r.eps)
			}
		}
	}
	return w
}

func maxDiff(a, b [][]float64) float64 {
	d := 0.0
	for i := range a {
		for j := range a[i] {
			d = math.Max(d, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return d
}

// setGrads makes the gradient of every parameter exactly g (float32) by
// backpropagating Σ g·w, as a loss would.
func setGrads(t *testing.T, params []NamedTensor, g [][]float64) {
	t.Helper()
	var loss *ts.Tensor
	for i, p := range params {
		vals := make([]float32, len(g[i]))
		for j, x := range g[i] {
			vals[j] = float32(x)
		}
		shape, err := p.Tensor.Size()
		if err != nil {
			t.Fatal(err)
		}
		c, err := ts.OfDataSize(float32Bytes(vals), shape, gotch.Float)
		if err != nil {
			t.Fatal(err)
		}
		term := p.Tensor.MustMul(c, false).MustSum(gotch.Float, true)
		c.MustDrop()
		if loss == nil {
			loss = term
		} else {
			loss = loss.MustAdd(term, true)
			term.MustDrop()
		}
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	loss.MustDrop()
}

// TestAdamWManyStepsMatchesReference runs ten optimizer steps (global
// clipping, then AdamW) through optimizerStep, the function training
// calls, on a decayed weight matrix and an undecayed bias, with gradients
// that change size and sign from step to step and a learning rate that
// changes too, and compares the parameters after every step with adamRef.
// β1, β2, ε, the bias correction, the weight decay and the clipping are
// chosen so that each changes the result by far more than the tolerance,
// which the test checks on the reference first: a wrong β, ε, bias
// correction, decay or clipping in optim.go cannot pass.
func TestAdamWManyStepsMatchesReference(t *testing.T) {
	const (
		steps = 10
		tol   = 2e-5 // float32 parameters and moments; 3.5e-7 observed
	)
	ref := adamRef{b1: 0.7, b2: 0.9, eps: 0.05, wd: 0.3, maxNorm: 2}
	w0 := [][]float64{{0.5, -1, 1.5, -0.25, 2, 0.75}, {0.1, -0.2, 0.3}}
	names := []string{"l.dense.weight", "l.dense.bias"}
	shapes := [][]int64{{2, 3}, {3}}
	decay := []bool{true, false}
	grads := make([][][]float64, steps)
	lrs := make([]float64, steps)
	clipped := 0
	for s := range grads {
		// Steps 2, 5 and 8 have a large gradient (norm above maxNorm).
		scale := 0.4
		if s%3 == 2 {
			scale = 3
		}
		sq := 0.0
		grads[s] = make([][]float64, len(w0))
		for i := range w0 {
			grads[s][i] = make([]float64, len(w0[i]))
			for j := range w0[i] {
				g := float64(float32(scale * math.Sin(1.3*float64(s)+0.7*float64(3*i+j)+0.2)))
				grads[s][i][j] = g
				sq += g * g
			}
		}
		if math.Sqrt(sq) > ref.maxNorm {
			clipped++
		}
		lrs[s] = 0.02 * float64(s%4+1)
	}
	if clipped == 0 || clipped == steps {
		t.Fatalf("%d of %d steps clipped; the test needs some of each", clipped, steps)
	}
	want := ref.run(w0, decay, grads, lrs)

	// Each ingredient must matter: the reference without it (or with it
	// changed a little) ends more than 10× the tolerance away.
	for _, v := range []struct {
		name string
		r    adamRef
	}{
		{"beta1 0.7 → 0.75", func() adamRef { r := ref; r.b1 = 0.75; return r }()},
		{"beta2 0.9 → 0.95", func() adamRef { r := ref; r.b2 = 0.95; return r }()},
		{"eps 0.05 → 0.06", func() adamRef { r := ref; r.eps = 0.06; return r }()},
		{"no bias correction", func() adamRef { r := ref; r.noBiasCorrection = true; return r }()},
		{"no weight decay", func() adamRef { r := ref; r.wd = 0; return r }()},
		{"no clipping", func() adamRef { r := ref; r.maxNorm = 0; return r }()},
	} {
		if d := maxDiff(want, v.r.run(w0, decay, grads, lrs)); d < 10*tol {
			t.Errorf("reference with %s moves the result by only %g; the test could not see it", v.name, d)
		}
	}
	// Decaying the bias too must matter (the no-decay group is tested).
	if d := maxDiff(want, ref.run(w0, []bool{true, true}, grads, lrs)); d < 10*tol {
		t.Errorf("decaying the bias moves the result by only %g", d)
	}

	// Float32 parameters take the fused loop, float64 ones libtorch's
	// in-place operations (torchrt.AdamW's two paths).
	for _, dt := range []struct {
		name string
		kind gotch.DType
	}{{"fused float32", gotch.Float}, {"libtorch ops float64", gotch.Double}} {
		t.Run(dt.name, func(t *testing.T) {
			adamWManySteps(t, dt.kind, ref, w0, names, shapes, decay, grads, lrs, tol)
		})
	}
}

// adamWManySteps is TestAdamWManyStepsMatchesReference with parameters of
// type kind.
func adamWManySteps(t *testing.T, kind gotch.DType, ref adamRef, w0 [][]float64, names []string, shapes [][]int64,
	decay []bool, grads [][][]float64, lrs []float64, tol float64) {
	steps := len(lrs)
	gradMode(t)
	params := make([]NamedTensor, len(w0))
	for i := range w0 {
		vals := make([]float32, len(w0[i]))
		for j, x := range w0[i] {
			vals[j] = float32(x)
		}
		x, err := ts.OfDataSize(float32Bytes(vals), shapes[i], gotch.Float)
		if err != nil {
			t.Fatal(err)
		}
		if kind != gotch.Float {
			x = x.MustTotype(kind, true)
		}
		params[i] = NamedTensor{Name: names[i], Tensor: x.MustSetRequiresGrad(true, true)}
	}
	defer func() {
		for _, p := range params {
			p.Tensor.MustDrop()
		}
	}()
	opt, err := newAdamW(params, AdamWOptions{Beta1: ref.b1, Beta2: ref.b2, Eps: ref.eps, WeightDecay: ref.wd})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.drop()
	var m *Model // optimizerStep uses none of the model's state
	worst := 0.0
	for s := 0; s < steps; s++ {
		setGrads(t, params, grads[s])
		if _, err := m.optimizerStep(opt, lrs[s], ref.maxNorm); err != nil {
			t.Fatal(err)
		}
		wantS := ref.run(w0, decay, grads[:s+1], lrs[:s+1])
		for i, p := range params {
			got, err := tensorFloat32s(p.Tensor)
			if err != nil {
				t.Fatal(err)
			}
			for j := range got {
				d := math.Abs(float64(got[j]) - wantS[i][j])
				worst = math.Max(worst, d)
				if d > tol {
					t.Errorf("step %d: %s[%d] = %.7f, reference %.7f", s+1, p.Name, j, got[j], wantS[i][j])
				}
			}
		}
	}
	t.Logf("largest difference from the float64 reference over %d steps: %.2g", steps, worst)
}

// TestClippedUpdateHandWorked checks one clipped AdamW step against values
// worked out by hand. Gradients (3, 0) and (0, 4) have global norm 5;
// with maxNorm 1 they become (0.6, 0) and (0, 0.8) (times 5/(5+1e-6),
// which moves nothing at this tolerance). The first step with bias
// correction moves each element by lr·g/(|g|+ε): with lr 1 and ε 0.5,
// 0.6/1.1 = 0.545454… and 0.8/1.3 = 0.615384…; unclipped it would be
// 3/3.5 = 0.857… and 4/4.5 = 0.888…, so a step without clipping fails.
func TestClippedUpdateHandWorked(t *testing.T) {
	gradMode(t)
	params := []NamedTensor{
		{Name: "a.bias", Tensor: ts.MustOfSlice([]float32{0, 0}).MustSetRequiresGrad(true, true)},
		{Name: "b.bias", Tensor: ts.MustOfSlice([]float32{0, 0}).MustSetRequiresGrad(true, true)},
	}
	defer func() {
		for _, p := range params {
			p.Tensor.MustDrop()
		}
	}()
	opt, err := newAdamW(params, AdamWOptions{Eps: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.drop()
	setGrads(t, params, [][]float64{{3, 0}, {0, 4}})
	var m *Model
	norm, err := m.optimizerStep(opt, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(norm-5) > 1e-6 {
		t.Errorf("optimizerStep returned gradient norm %g, want 5 (before clipping)", norm)
	}
	want := [][]float32{{-0.5454545, 0}, {0, -0.6153846}}
	for i, p := range params {
		got, err := tensorFloat32s(p.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if math.Abs(float64(got[j]-want[i][j])) > 1e-6 {
				t.Errorf("%s = %.7f after a clipped step, want %.7f", p.Name, got, want[i])
				break
			}
		}
	}
}

// TestOptimizerStepGradients takes three optimizer steps with some or all
// parameters lacking a gradient and checks that the step zeroes every
// gradient it used, leaves parameters without one (and their moments)
// alone, keeps the parameters' and moments' handles, and bumps the version
// counters of what it changed (the fast path's stacked weights are rebuilt
// from those).
func TestOptimizerStepGradients(t *testing.T) {
	tests := []struct {
		name    string
		wd      float64 // AdamWOptions.WeightDecay
		maxNorm float64
		// withGrad is how many of the parameters (from the first) get a
		// gradient; the others get none.
		withGrad int
	}{
		{"clipped", 0.1, 0.5, 3},
		{"not clipped", 0.1, 1e6, 3},
		{"no clipping", 0.1, 0, 3},
		{"no weight decay", -1, 0.5, 3},
		{"a parameter without gradient", 0.1, 0.5, 2},
		{"no gradients", 0.1, 0.5, 0},
	}
	names := []string{"a.dense.weight", "a.dense.bias", "b.dense.weight"}
	start := []float32{1, -2, 3}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gradMode(t)
			params := make([]NamedTensor, len(names))
			for i, n := range names {
				params[i] = NamedTensor{Name: n, Tensor: ts.MustOfSlice(start).MustSetRequiresGrad(true, true)}
			}
			defer func() {
				for _, p := range params {
					p.Tensor.MustDrop()
				}
			}()
			opt, err := newAdamW(params, AdamWOptions{WeightDecay: tc.wd})
			if err != nil {
				t.Fatal(err)
			}
			defer opt.drop()
			handles := func() []uintptr {
				var hs []uintptr
				for i, p := range params {
					for _, x := range []*ts.Tensor{p.Tensor, opt.m[i], opt.v[i]} {
						hs = append(hs, uintptr(unsafe.Pointer(ct(x))))
					}
				}
				return hs
			}
			before := handles()
			for step := range 3 {
				if tc.withGrad > 0 {
					setGrads(t, params[:tc.withGrad], [][]float64{{1, 2, 3}, {-4, 5, -6}, {7, 8, 9}})
				}
				v0, err := torchrt.VersionSum(handles())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := opt.apply(1e-3, tc.maxNorm); err != nil {
					t.Fatal(err)
				}
				v1, err := torchrt.VersionSum(handles())
				if err != nil {
					t.Fatal(err)
				}
				// Parameter, first and second moment of each updated one.
				if want := uint64(3 * tc.withGrad); v1-v0 != want {
					t.Errorf("step %d: version counters moved by %d, want %d", step, v1-v0, want)
				}
				for i, p := range params {
					g, err := p.Tensor.Grad(false)
					if err != nil {
						t.Fatal(err)
					}
					defined := g.MustDefined()
					if defined != (i < tc.withGrad) {
						t.Errorf("step %d: %s has a gradient: %v", step, p.Name, defined)
					}
					if defined {
						vals, err := tensorFloat32s(g)
						if err != nil {
							t.Fatal(err)
						}
						if !slices.Equal(vals, []float32{0, 0, 0}) {
							t.Errorf("step %d: gradient of %s = %v after the step, want zeros", step, p.Name, vals)
						}
					}
					g.MustDrop()
					if i < tc.withGrad {
						continue
					}
					for _, x := range []*ts.Tensor{p.Tensor, opt.m[i], opt.v[i]} {
						vals, err := tensorFloat32s(x)
						if err != nil {
							t.Fatal(err)
						}
						if x != p.Tensor && !slices.Equal(vals, []float32{0, 0, 0}) || x == p.Tensor && !slices.Equal(vals, start) {
							t.Errorf("step %d: %s without a gradient changed: %v", step, p.Name, vals)
						}
					}
				}
			}
			if after := handles(); !slices.Equal(after, before) {
				t.Errorf("parameter or moment handles changed: %v, were %v", after, before)
			}
			if opt.step != 3 {
				t.Errorf("optimizer step = %d, want 3", opt.step)
			}
		})
	}
}

// gradMode locks the test to its OS thread and turns libtorch's grad mode
// on for it (the mode is per thread, and an earlier test may have left it
// off) until the test ends.
func gradMode(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	prev, err := ts.GradSetEnabled(true)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ts.GradSetEnabled(prev)
		runtime.UnlockOSThread()
	})
}
