package mlm

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/torchrt"
)

// AdamWOptions configure the AdamW optimizer used by FineTune and Pretrain.
// Zero values take the defaults noted (those of Hugging Face's Trainer).
type AdamWOptions struct {
	// Beta1 and Beta2 are the moment decay rates (defaults 0.9 and 0.999).
	Beta1, Beta2 float64
	// Eps is added to the denominator (default 1e-8).
	Eps float64
	// WeightDecay is the decoupled weight decay of weight matrices and
	// embeddings; biases and LayerNorm parameters get none (see
	// NoWeightDecay). Default 0.01; a negative value means none.
	WeightDecay float64
}

func (o AdamWOptions) withDefaults() AdamWOptions {
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Eps == 0 {
		o.Eps = 1e-8
	}
	switch {
	case o.WeightDecay == 0:
		o.WeightDecay = 0.01
	case o.WeightDecay < 0:
		o.WeightDecay = 0
	}
	return o
}

func (o AdamWOptions) validate() error {
	if o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 {
		return fmt.Errorf("adamw betas (%g, %g) must be in [0, 1)", o.Beta1, o.Beta2)
	}
	if o.Eps <= 0 {
		return fmt.Errorf("adamw eps %g must be positive", o.Eps)
	}
	return nil
}

// NoWeightDecay reports whether the parameter called name (Hugging Face
// naming) is excluded from weight decay: biases and LayerNorm weights, as
// in Hugging Face's Trainer (ModernBERT's LayerNorms are the modules whose
// names end in "norm").
func NoWeightDecay(name string) bool {
	return strings.HasSuffix(name, "bias") || strings.Contains(name, "LayerNorm") || strings.Contains(name, "layer_norm") ||
		strings.HasSuffix(name, "norm.weight")
}

// LinearSchedule returns the learning rate at optimizer step step (0-based)
// of total: a linear warm-up to peak over warmup steps, then a linear decay
// towards 0 at total. After the warm-up it equals Hugging Face's
// get_linear_schedule_with_warmup for the step being taken,
// peak·(total−step)/(total−warmup), so the last step still has a small
// positive rate. The warm-up is one step ahead of Hugging Face's: step k
// uses peak·(k+1)/warmup, where Hugging Face uses peak·k/warmup and so
// spends its first step at rate 0.
func LinearSchedule(step, warmup, total int, peak float64) float64 {
	s := float64(step + 1)
	if warmup > 0 && step < warmup {
		return peak * s / float64(warmup)
	}
	if total <= warmup {
		return peak
	}
	f := float64(total-step) / float64(total-warmup)
	return peak * max(0, f)
}

// adamW is AdamW (Loshchilov & Hutter, as torch.optim.AdamW) on the
// model's parameters, with two groups: decayed and not decayed.
type adamW struct {
	opts   AdamWOptions
	params []NamedTensor
	decay  []bool
	m, v   []*ts.Tensor // first and second moments, one per parameter
	step   int64        // optimizer steps taken
}

// newAdamW creates zeroed moments for params. The caller holds the model
// lock.
func newAdamW(params []NamedTensor, opts AdamWOptions) (*adamW, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	o := &adamW{opts: opts, params: params}
	for _, p := range params {
		o.decay = append(o.decay, !NoWeightDecay(p.Name))
		m, err := p.Tensor.ZerosLike(false)
		if err != nil {
			o.drop()
			return nil, fmt.Errorf("adamw state for %s: %w", p.Name, err)
		}
		v, err := p.Tensor.ZerosLike(false)
		if err != nil {
			m.MustDrop()
			o.drop()
			return nil, fmt.Errorf("adamw state for %s: %w", p.Name, err)
		}
		o.m = append(o.m, m)
		o.v = append(o.v, v)
	}
	return o, nil
}

func (o *adamW) drop() {
	for _, t := range o.m {
		t.MustDrop()
	}
	for _, t := range o.v {
		t.MustDrop()
	}
	o.m, o.v = nil, nil
}

// apply takes one optimizer step: it reads the gradients, clips them to
// maxNorm (no clipping when maxNorm <= 0), applies AdamW with lr and zeroes
// the gradients, in one call into libtorch (torchrt.AdamW: one fused pass
// over each float32 CPU parameter, libtorch's in-place operations
// elsewhere). It returns the gradients' global norm before clipping.
// Parameters without a gradient are left alone, as PyTorch does. The
// caller holds the model lock.
func (o *adamW) apply(lr, maxNorm float64) (float64, error) {
	handles := func(tensors []*ts.Tensor) []uintptr {
		out := make([]uintptr, len(tensors))
		for i, t := range tensors {
			out[i] = uintptr(unsafe.Pointer(ct(t)))
		}
		return out
	}
	params := make([]*ts.Tensor, len(o.params))
	for i, p := range o.params {
		params[i] = p.Tensor
	}
	wd := o.opts.WeightDecay
	norm, err := torchrt.AdamW(handles(params), handles(o.m), handles(o.v), o.decay, torchrt.AdamWStep{
		LR: lr, Beta1: o.opts.Beta1, Beta2: o.opts.Beta2, Eps: o.opts.Eps, WeightDecay: wd,
		Step: o.step + 1, MaxNorm: maxNorm,
	})
	if err != nil {
		return 0, err
	}
	o.step++
	return norm, nil
}

// stateTensors returns the moments as float32 safetensors tensors named
// "exp_avg.<param>" and "exp_avg_sq.<param>".
func (o *adamW) stateTensors() ([]safetensors.Tensor, error) {
	var out []safetensors.Tensor
	for i, p := range o.params {
		for _, s := range []struct {
			prefix string
			t      *ts.Tensor
		}{{"exp_avg.", o.m[i]}, {"exp_avg_sq.", o.v[i]}} {
			vals, err := tensorFloat32s(s.t)
			if err != nil {
				return nil, fmt.Errorf("read optimizer state %s%s: %w", s.prefix, p.Name, err)
			}
			shape, err := s.t.Size()
			if err != nil {
				return nil, fmt.Errorf("optimizer state %s%s: %w", s.prefix, p.Name, err)
			}
			st, err := safetensors.FromFloat32s(s.prefix+p.Name, safetensors.F32, shape, vals)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// loadState restores the moments from f (written by stateTensors) and the
// step count.
func (o *adamW) loadState(f *safetensors.File, step int64) error {
	for i, p := range o.params {
		for _, s := range []struct {
			prefix string
			t      *ts.Tensor
		}{{"exp_avg.", o.m[i]}, {"exp_avg_sq.", o.v[i]}} {
			st, ok := f.Tensor(s.prefix + p.Name)
			if !ok {
				return fmt.Errorf("optimizer state lacks %s%s", s.prefix, p.Name)
			}
			if err := copyInto(s.t, st); err != nil {
				return fmt.Errorf("optimizer state %s%s: %w", s.prefix, p.Name, err)
			}
		}
	}
	o.step = step
	return nil
}

// copyInto overwrites dst (a float32 tensor on any device) with the values
// of st, which must have dst's shape. Runs under no-grad.
func copyInto(dst *ts.Tensor, st safetensors.Tensor) error {
	shape, err := dst.Size()
	if err != nil {
		return err
	}
	if fmt.Sprint(shape) != fmt.Sprint(st.Shape) {
		return fmt.Errorf("shape %v, want %v", st.Shape, shape)
	}
	vals, err := st.Float32s()
	if err != nil {
		return err
	}
	src, err := ts.OfDataSize(float32Bytes(vals), shape, gotch.Float)
	if err != nil {
		return err
	}
	defer src.MustDrop()
	if dst.MustDevice() != gotch.CPU {
		moved, err := src.To(dst.MustDevice(), false)
		if err != nil {
			return err
		}
		defer moved.MustDrop()
		src = moved
	}
	if err := inPlace(dst, dst.Zero_); err != nil {
		return err
	}
	return inPlace(dst, func() error { return dst.Add_(src) })
}
