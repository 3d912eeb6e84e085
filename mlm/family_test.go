package mlm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/tokenize"
)

// familyCase is a tiny model of one family over testVocab.
type familyCase struct {
	name string
	cfg  Config
	tok  bool // DistilBERT runs with the WordPiece test tokenizer; RoBERTa on ids
	// names that must and must not be in a saved checkpoint
	want, notWant []string
}

func familyCases() []familyCase {
	d := testConfig()
	d.ModelType = ModelTypeDistilBERT
	d.Architectures = nil
	d.TypeVocabSize = 0
	d.PositionEmbeddingType = ""
	r := testConfig()
	r.ModelType = ModelTypeRoBERTa
	r.Architectures = nil
	r.TypeVocabSize = 1
	r.PadTokenID = 1
	r.LayerNormEps = 1e-5
	r.MaxPositionEmbeddings = 26
	mb := modernTestConfig()
	mb.NormBias = true
	x := r
	x.ModelType = ModelTypeXLMRoBERTa
	return []familyCase{
		{"distilbert", d, true,
			[]string{"distilbert.transformer.layer.1.sa_layer_norm.weight", "distilbert.transformer.layer.0.ffn.lin2.bias", "vocab_transform.weight", "vocab_layer_norm.bias", "vocab_projector.bias"},
			[]string{"vocab_projector.weight", "distilbert.embeddings.token_type_embeddings.weight"}},
		{"roberta", r, false,
			[]string{"roberta.encoder.layer.1.attention.self.query.weight", "roberta.embeddings.token_type_embeddings.weight", "lm_head.dense.weight", "lm_head.layer_norm.bias", "lm_head.bias"},
			[]string{"lm_head.decoder.weight", "lm_head.decoder.bias"}},
		{"modernbert", mb, false,
			[]string{"model.embeddings.tok_embeddings.weight", "model.layers.1.attn_norm.bias", "model.layers.2.attn.Wqkv.weight", "model.layers.0.mlp.Wi.weight", "model.final_norm.weight", "head.dense.weight", "head.norm.bias", "decoder.bias"},
			[]string{"decoder.weight", "model.layers.0.attn_norm.weight", "model.layers.0.attn.Wqkv.bias", "head.dense.bias"}},
		{"xlm-roberta", x, false,
			[]string{"roberta.encoder.layer.1.attention.self.query.weight", "roberta.embeddings.token_type_embeddings.weight", "lm_head.dense.weight", "lm_head.layer_norm.bias", "lm_head.bias"},
			[]string{"lm_head.decoder.weight", "lm_head.decoder.bias"}},
	}
}

// hfArchitecture is the masked-LM class transformers names for a
// model_type, written out independently of architecture.
func hfArchitecture(modelType string) string {
	return map[string]string{
		"bert": "BertForMaskedLM", "distilbert": "DistilBertForMaskedLM", "roberta": "RobertaForMaskedLM",
		"modernbert": "ModernBertForMaskedLM", "xlm-roberta": "XLMRobertaForMaskedLM",
	}[modelType]
}

func (fc familyCase) newModel(t *testing.T, seed uint64) *Model {
	t.Helper()
	var tok *tokenize.Tokenizer
	if fc.tok {
		tok = testTokenizer(t)
	}
	m, err := New(fc.cfg, tok, Options{Device: "cpu", Threads: 1, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func (fc familyCase) load(t *testing.T, dir string) *Model {
	t.Helper()
	ctx := context.Background()
	var m *Model
	var err error
	if fc.tok {
		m, err = Load(ctx, dir, Options{Device: "cpu", Threads: 1})
	} else {
		var cfg Config
		if cfg, err = LoadConfig(dir); err == nil {
			m, err = LoadWeights(ctx, dir, cfg, nil, Options{Device: "cpu", Threads: 1})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// batch returns a padded batch with the family's padding id.
func (fc familyCase) batch() (ids, mask [][]int64) {
	ids, mask, _ = testBatch()
	for b := range ids {
		for p := range ids[b] {
			if mask[b][p] == 0 {
				ids[b][p] = int64(fc.cfg.PadTokenID)
			}
		}
	}
	return ids, mask
}

func TestFamilySaveLoad(t *testing.T) {
	for _, fc := range familyCases() {
		t.Run(fc.name, func(t *testing.T) {
			m := fc.newModel(t, 3)
			dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor { return sd })
			f, err := safetensors.ReadFile(filepath.Join(dir, SafetensorsFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range fc.want {
				if _, ok := f.Tensor(n); !ok {
					t.Errorf("checkpoint lacks %s", n)
				}
			}
			for _, n := range fc.notWant {
				if _, ok := f.Tensor(n); ok {
					t.Errorf("checkpoint has %s", n)
				}
			}
			raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			var cj map[string]any
			if err := json.Unmarshal(raw, &cj); err != nil {
				t.Fatal(err)
			}
			if cj["model_type"] != fc.name || (fc.name == "distilbert" && cj["dim"] != float64(32)) ||
				!slices.Equal(cj["architectures"].([]any), []any{hfArchitecture(fc.name)}) {
				t.Errorf("config.json %s", raw)
			}
			m2 := fc.load(t, dir)
			ids, mask := fc.batch()
			if d := maxAbsDiff(allLogits(t, m, ids, mask, nil), allLogits(t, m2, ids, mask, nil)); d != 0 {
				t.Errorf("logits differ by %g after save and load", d)
			}
			if fc.tok {
				res, err := m2.FillMask(context.Background(), []string{"the [MASK] sat on the mat"}, FillOptions{TopK: 3})
				if err != nil || len(res[0].Masks[0]) != 3 {
					t.Errorf("FillMask: %v %v", res, err)
				}
			}
		})
	}
}

// TestRoBERTaAliasesAndPositions loads a RoBERTa checkpoint written with
// the tied decoder weight, the decoder bias alias and a pooler, and checks
// that positions skip padding: a sequence gives the same logits alone and
// left-padded in a batch.
func TestRoBERTaAliasesAndPositions(t *testing.T) {
	fc := familyCases()[1]
	m := fc.newModel(t, 4)
	dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor {
		var out []safetensors.Tensor
		for _, x := range sd {
			switch x.Name {
			case "lm_head.bias":
				x.Name = "lm_head.decoder.bias"
			case "roberta.embeddings.word_embeddings.weight":
				out = append(out, safetensors.Tensor{Name: "lm_head.decoder.weight", DType: x.DType, Shape: x.Shape, Data: x.Data})
			}
			out = append(out, x)
		}
		p, _ := safetensors.FromFloat32s("roberta.pooler.dense.weight", safetensors.F32, []int64{32, 32}, make([]float32, 32*32))
		return append(out, p)
	})
	m2 := fc.load(t, dir)
	seq := []int64{0, 9, 10, 11, 4, 7, 2}
	alone := allLogits(t, m2, [][]int64{seq}, [][]int64{{1, 1, 1, 1, 1, 1, 1}}, nil)
	padded := allLogits(t, m2, [][]int64{append([]int64{1, 1}, seq...)}, [][]int64{{0, 0, 1, 1, 1, 1, 1, 1, 1}}, nil)
	V := fc.cfg.VocabSize
	if d := maxAbsDiff(alone, padded[2*V:]); d > 1e-5 {
		t.Errorf("left padding changes the logits by %g: positions do not skip padding", d)
	}
	if d := maxAbsDiff(alone, allLogits(t, m, [][]int64{seq}, [][]int64{{1, 1, 1, 1, 1, 1, 1}}, nil)); d != 0 {
		t.Errorf("logits differ by %g after loading aliased names", d)
	}
}

// TestFamilyParityWithPyTorch compares the logits and probabilities of
// DistilBERT, RoBERTa, ModernBERT and XLM-RoBERTa (RoBERTa's math under its
// own model_type) with
// bench/torchref/family_ref.py, an independent PyTorch implementation that
// reads the safetensors file by hand.
func TestFamilyParityWithPyTorch(t *testing.T) {
	python := torchPython(t)
	ref, err := filepath.Abs("../bench/torchref")
	if err != nil {
		t.Fatal(err)
	}
	for i, fc := range familyCases() {
		t.Run(fc.name, func(t *testing.T) {
			m := fc.newModel(t, uint64(30+i))
			dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor {
				for i, x := range sd {
					v, _ := x.Float32s()
					for j := range v {
						v[j] = v[j]*10 + float32(math.Sin(float64(i*131+j)))*0.1
					}
					sd[i], _ = safetensors.FromFloat32s(x.Name, safetensors.F32, x.Shape, v)
				}
				return sd
			})
			m2 := fc.load(t, dir)
			ids, mask := fc.batch()
			m2.fastOff = true // the reference path; the fast path below
			got := allLogits(t, m2, ids, mask, nil)
			m2.fastOff = false
			gotFast := allLogits(t, m2, ids, mask, nil)
			in, _ := json.Marshal(map[string]any{"ids": ids, "mask": mask})
			inPath, outPath := filepath.Join(dir, "inputs.json"), filepath.Join(dir, "ref.f32")
			if err := os.WriteFile(inPath, in, 0o644); err != nil {
				t.Fatal(err)
			}
			script := `
import json, sys
sys.path.insert(0, sys.argv[1])
import family_ref
inp = json.load(open(sys.argv[3]))
logits = family_ref.logits_from_checkpoint(sys.argv[2], inp["ids"], inp["mask"])
open(sys.argv[4], "wb").write(logits.contiguous().float().numpy().astype("<f4").tobytes())
`
			if out, err := exec.Command(python, "-c", script, ref, dir, inPath, outPath).CombinedOutput(); err != nil {
				t.Fatalf("reference failed: %v\n%s", err, out)
			}
			raw, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, len(raw)/4)
			for i := range want {
				want[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			if len(want) != len(got) {
				t.Fatalf("reference returned %d logits, we have %d", len(want), len(got))
			}
			V, T := fc.cfg.VocabSize, len(ids[0])
			var d, dp, df, dpf, scale float64
			for b := range ids {
				for p := 0; p < T; p++ {
					if mask[b][p] == 0 {
						continue
					}
					o := (b*T + p) * V
					d = math.Max(d, maxAbsDiff(got[o:o+V], want[o:o+V]))
					df = math.Max(df, maxAbsDiff(gotFast[o:o+V], want[o:o+V]))
					pg, pf, pw := softmax64(got[o:o+V]), softmax64(gotFast[o:o+V]), softmax64(want[o:o+V])
					for v := range pg {
						dp = math.Max(dp, math.Abs(pg[v]-pw[v]))
						dpf = math.Max(dpf, math.Abs(pf[v]-pw[v]))
					}
					for _, v := range want[o : o+V] {
						scale = math.Max(scale, math.Abs(float64(v)))
					}
				}
			}
			t.Logf("%s: max abs difference vs PyTorch reference: logits %.3g (largest logit %.3g), probabilities %.3g", fc.name, d, scale, dp)
			t.Logf("%s: fast path: logits %.3g, probabilities %.3g", fc.name, df, dpf)
			if d > 1e-4 || dp > 1e-4 {
				t.Errorf("max abs difference: logits %g, probabilities %g; want both <= 1e-4", d, dp)
			}
			if lim := fastLogitTolerance * scale; df > lim || dpf > 1e-4 {
				t.Errorf("fast path: max abs difference: logits %g, probabilities %g; want <= %g (%g of the largest logit) and 1e-4", df, dpf, lim, fastLogitTolerance)
			}
			if scale < 1 {
				t.Errorf("logits too small (%g) for a meaningful comparison", scale)
			}
		})
	}
}

// TestFamilyFineTuneLowersLoss fine-tunes each family that runs with the
// WordPiece test tokenizer on a few cloze items and requires the gold
// answers' NLL, measured by Evaluate as the workflow does, to fall.
// RoBERTa, XLM-RoBERTa and ModernBERT have the same check in their own
// end-to-end tests, with their own tokenizers.
func TestFamilyFineTuneLowersLoss(t *testing.T) {
	ctx := context.Background()
	examples := []Example{
		{Text: "the [MASK] sat on the mat", Answers: []string{"cat"}},
		{Text: "i want to [MASK] a book", Answers: []string{"read"}},
		{Text: "paris is the [MASK] of france", Answers: []string{"capital"}},
		{Text: "the sun and the [MASK]", Answers: []string{"moon"}},
	}
	var eval []EvalItem
	for i, e := range examples {
		eval = append(eval, EvalItem{ID: string(rune('a' + i)), Text: e.Text, Gold: e.Answers})
	}
	cases := []familyCase{{name: "bert", cfg: testConfig(), tok: true}}
	for _, fc := range familyCases() {
		if fc.tok {
			cases = append(cases, fc)
		}
	}
	ran := 0
	for _, fc := range cases {
		ran++
		t.Run(fc.name, func(t *testing.T) {
			m := fc.newModel(t, 5)
			before, err := m.Evaluate(ctx, eval, EvalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.FineTune(ctx, examples, nil, FineTuneOptions{MaxSteps: 30, BatchSize: 4, LR: 3e-3, Seed: 1}, nil); err != nil {
				t.Fatal(err)
			}
			after, err := m.Evaluate(ctx, eval, EvalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: gold NLL %.3f → %.3f, top-1 %.2f → %.2f", fc.name, before.GoldNLL, after.GoldNLL, before.Top1, after.Top1)
			if after.GoldNLL >= before.GoldNLL-0.5 {
				t.Errorf("gold NLL %.3f → %.3f: fine-tuning did not lower it", before.GoldNLL, after.GoldNLL)
			}
		})
	}
	if ran < 2 {
		t.Fatalf("%d families with a tokenizer, want BERT and DistilBERT at least", ran)
	}
}
