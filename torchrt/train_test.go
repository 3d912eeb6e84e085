package torchrt_test

import (
	"fmt"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/torchrt"
)

// toyModel is embedding → linear → layer_norm → gelu → linear (logits).
type toyModel struct {
	emb  *nn.Embedding
	hid  *nn.Linear
	norm *nn.LayerNorm
	out  *nn.Linear
}

func newToyModel(p *nn.Path, vocab, dim int64) *toyModel {
	return &toyModel{
		emb:  nn.NewEmbedding(p.Sub("emb"), vocab, dim, nn.DefaultEmbeddingConfig()),
		hid:  nn.NewLinear(p.Sub("hid"), dim, dim, nn.DefaultLinearConfig()),
		norm: nn.NewLayerNorm(p.Sub("norm"), []int64{dim}, nn.DefaultLayerNormConfig()),
		out:  nn.NewLinear(p.Sub("out"), dim, vocab, nn.DefaultLinearConfig()),
	}
}

func (m *toyModel) forward(ids *ts.Tensor) (*ts.Tensor, error) {
	x := m.emb.Forward(ids)
	h := m.hid.Forward(x)
	x.MustDrop()
	n := m.norm.Forward(h)
	h.MustDrop()
	g, err := n.Gelu("none", true)
	if err != nil {
		return nil, fmt.Errorf("gelu: %w", err)
	}
	logits := m.out.Forward(g)
	g.MustDrop()
	return logits, nil
}

// trainToy trains the toy model for steps AdamW steps to map each token x to
// (3x+1) mod vocab and returns the loss of every step. It runs inside
// torchrt.Run, which keeps gotch on one OS thread and turns gotch's panics
// into errors.
func trainToy(seed uint64, threads, steps int) (losses []float64, err error) {
	err = torchrt.Run(func() error {
		var err error
		losses, err = trainToyLocked(seed, threads, steps)
		return err
	})
	return losses, err
}

func trainToyLocked(seed uint64, threads, steps int) (losses []float64, err error) {
	if err := torchrt.SetNumThreads(threads); err != nil {
		return nil, err
	}
	if err := torchrt.ManualSeed(seed); err != nil {
		return nil, err
	}
	const vocab, dim, batch = 16, 32, 64
	ids := make([]int64, batch)
	targets := make([]int64, batch)
	for i := range ids {
		ids[i] = int64(i % vocab)
		targets[i] = (3*ids[i] + 1) % vocab
	}
	x, err := ts.OfSlice(ids)
	if err != nil {
		return nil, fmt.Errorf("input tensor: %w", err)
	}
	defer x.MustDrop()
	y, err := ts.OfSlice(targets)
	if err != nil {
		return nil, fmt.Errorf("target tensor: %w", err)
	}
	defer y.MustDrop()

	vs := nn.NewVarStore(gotch.CPU)
	defer vs.Destroy()
	m := newToyModel(vs.Root(), vocab, dim)
	opt, err := nn.DefaultAdamWConfig().Build(vs, 1e-2)
	if err != nil {
		return nil, fmt.Errorf("build AdamW: %w", err)
	}
	for step := 0; step < steps; step++ {
		logits, err := m.forward(x)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", step, err)
		}
		loss := logits.CrossEntropyForLogits(y)
		logits.MustDrop()
		v, err := loss.Float64Value([]int64{})
		if err != nil {
			return nil, fmt.Errorf("step %d: read loss: %w", step, err)
		}
		if err := opt.BackwardStep(loss); err != nil {
			return nil, fmt.Errorf("step %d: backward: %w", step, err)
		}
		loss.MustDrop()
		losses = append(losses, v)
	}
	return losses, nil
}

// TestTrainToyModel trains a small gotch model on the CPU and checks that
// the loss falls: the end-to-end proof that gotch, libtorch (with the
// compatibility header where needed), autograd and AdamW work together.
func TestTrainToyModel(t *testing.T) {
	orig, err := torchrt.NumThreads()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = torchrt.SetNumThreads(orig) })
	tests := []struct {
		name    string
		seed    uint64
		threads int
		steps   int
	}{
		{name: "1 thread", seed: 1, threads: 1, steps: 40},
		{name: "2 threads", seed: 7, threads: 2, steps: 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			losses, err := trainToy(tc.seed, tc.threads, tc.steps)
			if err != nil {
				t.Fatalf("train: %v", err)
			}
			first, last := losses[0], losses[len(losses)-1]
			t.Logf("loss %.4f → %.4f over %d steps", first, last, len(losses))
			if !(last < 0.5*first) {
				t.Errorf("loss %.4f → %.4f: want last < 0.5 × first", first, last)
			}
		})
	}
}

// TestTrainToyModelSeeded checks that ManualSeed makes training repeat.
func TestTrainToyModelSeeded(t *testing.T) {
	a, err := trainToy(3, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := trainToy(3, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	c, err := trainToy(4, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("step %d: loss %v then %v with the same seed", i, a[i], b[i])
		}
	}
	if a[0] == c[0] {
		t.Errorf("seeds 3 and 4 gave the same first loss %v: seed has no effect", a[0])
	}
}
