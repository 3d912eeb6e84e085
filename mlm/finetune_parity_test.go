package mlm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
)

// TestFineTuneStepsMatchPyTorch runs five optimizer steps of FineTune
// (gradient accumulation over two micro-batches, linear warm-up, weight
// decay, gradient clipping on some steps and not on others) and the same
// steps in bench/torchref/finetune_ref.py: plain PyTorch autograd on the
// independent forward pass of bert_ref.py (BERT) or family_ref.py
// (ModernBERT, whose backward runs through the rotary embeddings, the
// sliding-window masks and the gated MLP), F.cross_entropy,
// clip_grad_norm_ and torch.optim.AdamW with Hugging Face Trainer's
// no-decay groups. Loss, gradient norm and every parameter must agree after
// every step. A wrong bias correction, decay group (biases are made
// non-zero for this), clipping or accumulation scale fails it.
func TestFineTuneStepsMatchPyTorch(t *testing.T) {
	python := torchPython(t)
	ref, err := filepath.Abs("../bench/torchref")
	if err != nil {
		t.Fatal(err)
	}
	bert := testConfig()
	bert.HiddenDropoutProb, bert.AttentionProbsDropoutProb = 0, 0
	// ModernBERT with every optional bias, so that the decay groups of
	// its LayerNorms and biases are checked too.
	modern := modernTestConfig()
	modern.NormBias, modern.AttentionBias, modern.MLPBias, modern.ClassifierBias = true, true, true, true
	for _, tc := range []struct {
		name    string
		cfg     Config
		maxNorm float64
	}{
		{"bert", bert, 4},
		{"modernbert", modern, 3.3},
	} {
		t.Run(tc.name, func(t *testing.T) { fineTuneStepsMatchPyTorch(t, python, ref, tc.cfg, tc.maxNorm) })
	}
}

// fineTuneStepsMatchPyTorch is TestFineTuneStepsMatchPyTorch for one
// model configuration (without dropout); maxNorm must clip some of the
// five steps and not others.
func fineTuneStepsMatchPyTorch(t *testing.T, python, ref string, cfg Config, maxNorm float64) {
	m0, err := New(cfg, testTokenizer(t), Options{Device: "cpu", Threads: 1, Seed: 21})
	if err != nil {
		t.Fatal(err)
	}
	// The starting point has non-zero biases: a new model's are all zero,
	// and biases that move only ~1e-2 in five steps would hide a decay
	// wrongly applied to them (lr·decay·bias is then under the tolerance).
	start := writeState(t, m0, nonZeroBiases(t))
	m0.Close()
	m, err := Load(context.Background(), start, Options{Device: "cpu", Threads: 1, Seed: 21})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.cfg.HiddenDropoutProb != 0 || m.cfg.AttentionProbsDropoutProb != 0 {
		t.Fatalf("dropout %g/%g after loading, want none", m.cfg.HiddenDropoutProb, m.cfg.AttentionProbsDropoutProb)
	}

	examples := []Example{
		{"the cat [MASK] on the mat .", []string{"sat"}},
		{"i want to [MASK] a book .", []string{"read"}},
		{"[MASK] is the capital of [MASK] .", []string{"paris", "france"}},
		{"the dog likes to [MASK] .", []string{"walking"}}, // two pieces: walk ##ing
		{"the sun is [MASK] and the moon is [MASK] .", []string{"red", "blue"}},
		{"it is a good [MASK] .", []string{"day"}},
		{"the [MASK] sat on a mat .", []string{"cats"}}, // two pieces: cat ##s
	}
	const (
		steps, accum, batch = 5, 2, 3
		seed                = 3
	)
	opts := FineTuneOptions{
		MaxSteps: steps, BatchSize: batch, GradAccum: accum, LR: 3e-3, WarmupSteps: 2,
		MaxGradNorm: maxNorm, AdamW: AdamWOptions{Beta1: 0.85, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1}, Seed: seed,
	}

	// The micro-batches FineTune will train on, in order, for the reference.
	items, skipped := m.labelledItems(examples)
	if len(skipped) > 0 {
		t.Fatalf("examples skipped: %+v", skipped)
	}
	src := &fineTuneSource{m: m, items: items, batch: batch, perEpoch: (len(items) + batch - 1) / batch, seed: seed}
	type refItem struct {
		IDs    []int64 `json:"ids"`
		Pos    []int   `json:"pos"`
		Labels []int64 `json:"labels"`
	}
	var micro [][]refItem
	for k := range int64(steps * accum) {
		mb, _ := src.micro(k)
		var out []refItem
		for _, it := range mb {
			out = append(out, refItem{it.ids, it.pos, it.labels})
		}
		micro = append(micro, out)
	}

	// The parameters after every step: a checkpoint is written after each
	// step, and the one of step k-1 is the latest when step k reports.
	ckpt := t.TempDir()
	opts.CheckpointDir, opts.CheckpointEvery = ckpt, 1
	var afterStep []*safetensors.File
	readLatestWeights := func() {
		_, dir, found, err := readLatest(ckpt)
		if err != nil || !found {
			t.Fatalf("no checkpoint to read: found %v, %v", found, err)
		}
		f, err := safetensors.ReadFile(filepath.Join(dir, SafetensorsFile))
		if err != nil {
			t.Fatal(err)
		}
		afterStep = append(afterStep, f)
	}
	var got []Progress
	res, err := m.FineTune(context.Background(), examples, nil, opts, func(p Progress) {
		got = append(got, p)
		if p.Step > 1 {
			readLatestWeights()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	readLatestWeights()
	if res.Steps != steps || len(afterStep) != steps {
		t.Fatalf("%d steps, %d sets of weights, want %d", res.Steps, len(afterStep), steps)
	}
	if len(got) != steps {
		t.Fatalf("%d progress reports, want %d", len(got), steps)
	}
	lrs := make([]float64, steps)
	clipped := 0
	for i, p := range got {
		lrs[i] = p.LR
		if p.GradNorm > maxNorm {
			clipped++
		}
	}
	// Both branches of clipping must be exercised, or the test checks less
	// than it says.
	if clipped == 0 || clipped == steps {
		t.Errorf("gradient norms %v: %d of %d steps above %g; change maxNorm so that some are clipped and some not",
			gradNorms(got), clipped, steps, maxNorm)
	}

	spec, err := json.Marshal(map[string]any{
		"accum": accum, "max_grad_norm": maxNorm, "beta1": opts.AdamW.Beta1, "beta2": opts.AdamW.Beta2,
		"eps": opts.AdamW.Eps, "weight_decay": opts.AdamW.WeightDecay, "lrs": lrs, "micro": micro,
	})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	specPath := filepath.Join(work, "steps.json")
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "ref")
	cmd := exec.Command(python, filepath.Join(ref, "finetune_ref.py"), start, specPath, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("finetune_ref.py: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(out, "steps.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Loss     []float64 `json:"loss"`
		GradNorm []float64 `json:"grad_norm"`
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Loss) != steps || len(want.GradNorm) != steps {
		t.Fatalf("reference reported %d losses and %d norms, want %d", len(want.Loss), len(want.GradNorm), steps)
	}
	rel := func(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(b), 1e-12) }
	worstLoss, worstNorm := 0.0, 0.0
	for i, p := range got {
		worstLoss = math.Max(worstLoss, rel(p.Loss, want.Loss[i]))
		worstNorm = math.Max(worstNorm, rel(p.GradNorm, want.GradNorm[i]))
		if rel(p.Loss, want.Loss[i]) > 1e-5 || rel(p.GradNorm, want.GradNorm[i]) > 1e-5 {
			t.Errorf("step %d: loss %.7g, grad norm %.7g; PyTorch %.7g, %.7g", i+1, p.Loss, p.GradNorm, want.Loss[i], want.GradNorm[i])
		}
	}

	startParams, err := safetensors.ReadFile(filepath.Join(start, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	worstParam, moved := 0.0, 0.0
	for k := 1; k <= steps; k++ {
		refParams, err := safetensors.ReadFile(filepath.Join(out, fmt.Sprintf("step-%d.safetensors", k)))
		if err != nil {
			t.Fatal(err)
		}
		ours := afterStep[k-1]
		if ours.Len() < refParams.Len() {
			t.Errorf("step %d: %d tensors saved, the reference has %d", k, ours.Len(), refParams.Len())
		}
		for _, name := range refParams.Names() {
			values := func(f *safetensors.File) []float32 {
				x, ok := f.Tensor(name)
				if !ok {
					t.Fatalf("step %d: parameter %s missing", k, name)
				}
				v, err := x.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			wantV, gotV, startV := values(refParams), values(ours), values(startParams)
			for j := range gotV {
				d := math.Abs(float64(gotV[j]) - float64(wantV[j]))
				worstParam = math.Max(worstParam, d)
				moved = math.Max(moved, math.Abs(float64(wantV[j])-float64(startV[j])))
				if d > 1e-5 {
					t.Errorf("step %d: %s[%d] = %.7g, PyTorch %.7g", k, name, j, gotV[j], wantV[j])
					break
				}
			}
		}
	}
	// The parameters must have moved much more than the tolerance, or
	// equality would show nothing.
	if moved < 100*1e-5 {
		t.Errorf("parameters moved at most %g in %d steps: too little to compare", moved, steps)
	}
	t.Logf("%d steps, %d clipped; largest differences from PyTorch: loss %.2g (rel), grad norm %.2g (rel), parameter %.2g (abs, largest move %.2g); norms %v",
		steps, clipped, worstLoss, worstNorm, worstParam, moved, gradNorms(got))
}

// nonZeroBiases returns a writeState mutation that sets every bias
// (LayerNorm's included) to deterministic values of about ±0.1.
func nonZeroBiases(t *testing.T) func([]safetensors.Tensor) []safetensors.Tensor {
	return func(sd []safetensors.Tensor) []safetensors.Tensor {
		r := rand.New(rand.NewPCG(17, 3))
		n := 0
		for i, x := range sd {
			if !strings.HasSuffix(x.Name, "bias") {
				continue
			}
			v, err := x.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for j := range v {
				v[j] = float32(0.1 * r.NormFloat64())
			}
			if sd[i], err = safetensors.FromFloat32s(x.Name, x.DType, x.Shape, v); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n == 0 {
			t.Fatal("no biases in the state dict")
		}
		return sd
	}
}

func gradNorms(ps []Progress) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = math.Round(p.GradNorm*1000) / 1000
	}
	return out
}
