package mlm

import (
	"math"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
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
	runtime.LockOSThread() // libtorch's grad mode is per thread
	defer runtime.UnlockOSThread()
	// An earlier test may have left grad mode off on this OS thread.
	prev, err := ts.GradSetEnabled(true)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.GradSetEnabled(prev)
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
	ts.NoGrad(func() {
		grads := opt.grads()
		defer dropAll(grads)
		if grads[3] != nil {
			t.Errorf("parameter without gradient has one")
		}
		if norm := clipGradNorm(grads, 0); math.Abs(norm-math.Sqrt(6*g*g)) > 1e-6 {
			t.Errorf("global grad norm = %g, want %g", norm, math.Sqrt(6*g*g))
		}
		var err error
		func() {
			defer catch(&err, "adamw")
			opt.update(grads, lr)
			opt.zeroGrads()
		}()
		if err != nil {
			t.Fatal(err)
		}
	})
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
	// Clipping scales to the maximum norm.
	for _, p := range params {
		p.Tensor.MustDrop()
	}
}

func TestClipGradNorm(t *testing.T) {
	a := ts.MustOfSlice([]float32{3, 0})
	b := ts.MustOfSlice([]float32{0, 4})
	defer a.MustDrop()
	defer b.MustDrop()
	ts.NoGrad(func() {
		if n := clipGradNorm([]*ts.Tensor{a, nil, b}, 1); math.Abs(n-5) > 1e-6 {
			t.Errorf("norm = %g, want 5", n)
		}
	})
	va, _ := tensorFloat32s(a)
	vb, _ := tensorFloat32s(b)
	if math.Abs(float64(va[0])-0.6) > 1e-5 || math.Abs(float64(vb[1])-0.8) > 1e-5 {
		t.Errorf("clipped to %v %v, want [0.6 0] [0 0.8]", va, vb)
	}
}
