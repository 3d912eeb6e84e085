package mlm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/tokenize"
)

// modernTestConfig is a tiny ModernBERT over testVocab: 3 layers (0
// global, 1 and 2 local), a window of 8 (4 positions each side) and head
// size 8.
func modernTestConfig() Config {
	c := ModernBERTBaseConfig()
	c.Architectures = nil
	c.VocabSize = len(testVocab())
	c.HiddenSize = 32
	c.NumHiddenLayers = 3
	c.NumAttentionHeads = 4
	c.IntermediateSize = 48
	c.MaxPositionEmbeddings = 64
	c.LocalAttention = 8
	c.PadTokenID = 0
	return c
}

// publishedModernBERT is answerdotai/ModernBERT-base's config.json.
const publishedModernBERT = `{
  "architectures": ["ModernBertForMaskedLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 50281, "classifier_activation": "gelu", "classifier_bias": false, "classifier_dropout": 0.0,
  "classifier_pooling": "mean", "cls_token_id": 50281, "decoder_bias": true, "deterministic_flash_attn": false,
  "embedding_dropout": 0.0, "eos_token_id": 50282, "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0,
  "gradient_checkpointing": false, "hidden_activation": "gelu", "hidden_size": 768, "initializer_cutoff_factor": 2.0,
  "initializer_range": 0.02, "intermediate_size": 1152, "layer_norm_eps": 1e-05, "local_attention": 128,
  "local_rope_theta": 10000.0, "max_position_embeddings": 8192, "mlp_bias": false, "mlp_dropout": 0.0,
  "model_type": "modernbert", "norm_bias": false, "norm_eps": 1e-05, "num_attention_heads": 12,
  "num_hidden_layers": 22, "pad_token_id": 50283, "position_embedding_type": "absolute", "sep_token_id": 50282,
  "torch_dtype": "float32", "transformers_version": "4.47.0.dev0", "vocab_size": 50368}`

func TestParseModernBERTConfig(t *testing.T) {
	small := `{"model_type": "modernbert", "vocab_size": 40, "hidden_size": 32, "num_attention_heads": 4,
 "num_hidden_layers": 4, "intermediate_size": 48, "global_attn_every_n_layers": 2, "local_attention": 8, "pad_token_id": 0}`
	with := func(extra string) string { return strings.TrimSuffix(small, "}") + ", " + extra + "}" }
	tests := []struct {
		name  string
		json  string
		check func(Config) bool
		err   string
	}{
		{"published", publishedModernBERT, func(c Config) bool {
			want := ModernBERTBaseConfig()
			return c.HiddenSize == 768 && c.NumHiddenLayers == 22 && c.IntermediateSize == 1152 && c.LayerNormEps == 1e-5 &&
				c.GlobalRopeTheta == 160000 && c.LocalRopeTheta == 10000 && c.LocalAttention == 128 &&
				c.GlobalAttnEveryNLayers == 3 && c.DecoderBias && !c.NormBias && c.PadTokenID == 50283 &&
				c.HiddenAct == "gelu" && c.ClassifierActivation == "gelu" && c.TypeVocabSize == 0 &&
				c.MaxSequenceLength() == want.MaxPositionEmbeddings && c.InitializerCutoffFactor == 2 &&
				string(c.Extra["layer_norm_eps"]) == "1e-05" && string(c.Extra["classifier_pooling"]) == `"mean"`
		}, ""},
		{"defaults", `{"model_type": "modernbert"}`, func(c Config) bool {
			d := ModernBERTBaseConfig()
			c.Architectures, c.Extra = d.Architectures, d.Extra
			return reflect.DeepEqual(c, d)
		}, ""},
		{"biases and activations", with(`"norm_bias": true, "attention_bias": true, "mlp_bias": true, "classifier_bias": true,
 "hidden_activation": "gelu_pytorch_tanh", "classifier_activation": "relu", "norm_eps": 1e-6`), func(c Config) bool {
			return c.NormBias && c.AttentionBias && c.MLPBias && c.ClassifierBias && c.HiddenAct == "gelu_pytorch_tanh" &&
				c.ClassifierActivation == "relu" && c.LayerNormEps == 1e-6
		}, ""},
		{"null local theta", with(`"global_rope_theta": 5000.0, "local_rope_theta": null`), func(c Config) bool {
			return c.GlobalRopeTheta == 5000 && c.LocalRopeTheta == 5000
		}, ""},
		{"transformers 5 keys", with(`"layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"],
 "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 80000.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 500.0}}`),
			func(c Config) bool {
				_, lt := c.Extra["layer_types"]
				_, rp := c.Extra["rope_parameters"]
				return c.GlobalRopeTheta == 80000 && c.LocalRopeTheta == 500 && !lt && !rp
			}, ""},
		{"layer_types off the pattern", with(`"layer_types": ["full_attention", "full_attention", "full_attention", "sliding_attention"]`), nil,
			`layer_types[1] is "full_attention"`},
		{"rope type", with(`"rope_parameters": {"full_attention": {"rope_type": "yarn", "rope_theta": 10.0}}`), nil, `rope_type "yarn" is not supported`},
		{"rope scaling", with(`"rope_scaling": {"type": "linear", "factor": 2.0}`), nil, "rope_scaling"},
		{"no decoder bias", with(`"decoder_bias": false`), nil, "decoder_bias false is not supported"},
		{"untied decoder", with(`"tie_word_embeddings": false`), nil, "tie_word_embeddings false is not supported"},
		{"odd head size", strings.Replace(small, `"hidden_size": 32`, `"hidden_size": 12`, 1), nil, "head size 3 is odd"},
		{"activation", with(`"hidden_activation": "silu"`), nil, `unsupported hidden_activation "silu"`},
		{"head activation", with(`"classifier_activation": "tanh"`), nil, `unsupported classifier_activation "tanh"`},
		{"window", with(`"local_attention": 0`), nil, "local_attention must be positive"},
		{"theta", with(`"global_rope_theta": 0`), nil, "global_rope_theta must be positive"},
		{"norm eps", with(`"norm_eps": 0`), nil, "norm_eps must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want ErrConfig mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("parsed %+v", c)
			}
			data, err := MarshalConfig(c)
			if err != nil {
				t.Fatal(err)
			}
			var keys map[string]json.RawMessage
			if err := json.Unmarshal(data, &keys); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"hidden_activation", "norm_eps", "attention_dropout", "global_rope_theta", "local_rope_theta",
				"local_attention", "global_attn_every_n_layers", "norm_bias", "decoder_bias", "classifier_activation"} {
				if _, ok := keys[k]; !ok {
					t.Errorf("written config lacks %s: %s", k, data)
				}
			}
			for _, k := range []string{"hidden_act", "type_vocab_size", "hidden_dropout_prob", "attention_probs_dropout_prob"} {
				if _, ok := keys[k]; ok {
					t.Errorf("written config has BERT key %s: %s", k, data)
				}
			}
			if string(keys["architectures"]) != `["ModernBertForMaskedLM"]` {
				t.Errorf("architectures %s", keys["architectures"])
			}
			c2, err := ParseConfig(data)
			if err != nil {
				t.Fatalf("re-parse %s: %v", data, err)
			}
			if !tc.check(c2) || c2.ModelType != ModelTypeModernBERT {
				t.Errorf("round trip changed config: %s", data)
			}
		})
	}
	// BERT configs do not gain ModernBERT keys.
	data, err := MarshalConfig(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "rope") || strings.Contains(string(data), "norm_bias") {
		t.Errorf("BERT config has ModernBERT keys: %s", data)
	}
}

// modernBatch is a padded batch of 3 rows of length 24: a full row, one of
// 17 tokens and one of 9; padding uses pad. Tokens are drawn over [5, V).
func modernBatch(V int, pad int64) (ids, mask [][]int64) {
	lengths := []int{24, 17, 9}
	for b, n := range lengths {
		row, mrow := make([]int64, 24), make([]int64, 24)
		for p := range row {
			row[p], mrow[p] = pad, 0
			if p < n {
				row[p], mrow[p] = int64(5+(b*7+p*p*3+p)%(V-5)), 1
			}
		}
		ids, mask = append(ids, row), append(mask, mrow)
	}
	return ids, mask
}

// referenceLogits runs bench/torchref/family_ref.py on the checkpoint in
// dir and returns its logits [B*T*V].
func referenceLogits(t *testing.T, python, dir string, ids, mask [][]int64) []float32 {
	t.Helper()
	ref, err := filepath.Abs("../bench/torchref")
	if err != nil {
		t.Fatal(err)
	}
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
	return want
}

// softmax64 returns the softmax of logits in float64.
func softmax64(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	out := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		out[i] = math.Exp(float64(v) - mx)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// compareReal returns the largest logit and probability differences
// between got and want over the non-padding positions, and the largest
// reference logit.
func compareReal(got, want []float32, mask [][]int64, V int) (dLogit, dProb, scale float64) {
	T := len(mask[0])
	for b := range mask {
		for p := 0; p < T; p++ {
			if mask[b][p] == 0 {
				continue
			}
			o := (b*T + p) * V
			dLogit = math.Max(dLogit, maxAbsDiff(got[o:o+V], want[o:o+V]))
			pg, pw := softmax64(got[o:o+V]), softmax64(want[o:o+V])
			for i := range pg {
				dProb = math.Max(dProb, math.Abs(pg[i]-pw[i]))
			}
			for _, v := range want[o : o+V] {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
		}
	}
	return dLogit, dProb, scale
}

// TestModernBERTParityWithPyTorch compares a random-weight ModernBERT with
// family_ref.py's independent PyTorch implementation on a padded batch of
// length 24, long enough for the window of 8 of the local layers (1 and
// 2) to hide most keys: the fill-mask probabilities must agree within
// 1e-4 at every real position. The test also checks that the window and
// the rotary bases change the outputs here (a wrong window or theta could
// not pass) and that a row's outputs do not depend on the padding after
// it.
func TestModernBERTParityWithPyTorch(t *testing.T) {
	python := torchPython(t)
	biased := modernTestConfig()
	biased.NormBias, biased.AttentionBias, biased.MLPBias, biased.ClassifierBias = true, true, true, true
	biased.HiddenAct, biased.ClassifierActivation = "gelu_pytorch_tanh", "relu"
	biased.GlobalRopeTheta, biased.LocalRopeTheta, biased.LayerNormEps = 1000, 100, 1e-6
	biased.GlobalAttnEveryNLayers = 2
	for i, tc := range []struct {
		name string
		cfg  Config
	}{
		{"defaults", modernTestConfig()},
		{"biases", biased},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.cfg, nil, Options{Device: "cpu", Threads: 1, Seed: uint64(40 + i)})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor {
				for i, x := range sd {
					v, _ := x.Float32s()
					for j := range v {
						v[j] = v[j]*5 + float32(math.Sin(float64(i*131+j)))*0.1
					}
					sd[i], _ = safetensors.FromFloat32s(x.Name, safetensors.F32, x.Shape, v)
				}
				return sd
			})
			cfg, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := LoadWeights(context.Background(), dir, cfg, nil, Options{Device: "cpu", Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			V := tc.cfg.VocabSize
			ids, mask := modernBatch(V, int64(tc.cfg.PadTokenID))
			got := allLogits(t, m2, ids, mask, nil)
			want := referenceLogits(t, python, dir, ids, mask)
			if len(want) != len(got) {
				t.Fatalf("reference returned %d logits, we have %d", len(want), len(got))
			}
			dLogit, dProb, scale := compareReal(got, want, mask, V)
			t.Logf("max |Δp| %.3g, max |Δlogit| %.3g (largest logit %.3g)", dProb, dLogit, scale)
			if dProb > 1e-4 {
				t.Errorf("probabilities differ from the PyTorch reference by %g > 1e-4", dProb)
			}
			if scale < 1 {
				t.Errorf("logits too small (%g) for a meaningful comparison", scale)
			}

			// The last row, alone and unpadded, gives the same outputs.
			n := 9
			alone := allLogits(t, m2, [][]int64{ids[2][:n]}, [][]int64{mask[2][:n]}, nil)
			T := len(ids[0])
			if d := maxAbsDiff(alone, got[2*T*V:(2*T+n)*V]); d > 1e-4 {
				t.Errorf("padding changes a row's logits by %g", d)
			}

			// Guards: the window and each rotary base matter on this input.
			for _, mut := range []struct {
				what string
				edit func(*Config)
			}{
				{"a global window", func(c *Config) { c.LocalAttention = 64 }},
				{"a window of 10", func(c *Config) { c.LocalAttention = 10 }},
				{"local theta = global theta", func(c *Config) { c.LocalRopeTheta = c.GlobalRopeTheta }},
				{"global theta = local theta", func(c *Config) { c.GlobalRopeTheta = c.LocalRopeTheta }},
			} {
				c := cfg
				mut.edit(&c)
				mm, err := LoadWeights(context.Background(), dir, c, nil, Options{Device: "cpu", Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				_, dp, _ := compareReal(allLogits(t, mm, ids, mask, nil), want, mask, V)
				mm.Close()
				if dp < 1e-3 {
					t.Errorf("with %s the probabilities move by only %g: the test input does not exercise it", mut.what, dp)
				}
			}
		})
	}
}

// modernWords are the words of the test ModernBERT vocabulary.
var modernWords = robertaWords

// writeModernBERTTokenizer writes a ModernBERT-form tokenizer to dir:
// tokenizer.json with a byte-level BPE model (the 256 byte characters,
// modernWords with and without 'Ġ' by left-to-right merges), the special
// tokens [UNK] [CLS] [SEP] [PAD] [MASK] after them ([MASK] with lstrip),
// the "[CLS] $A [SEP]" template, and tokenizer_config.json naming the
// special tokens as the published checkpoints do. It returns the
// vocabulary.
func writeModernBERTTokenizer(t *testing.T, dir string) map[string]int {
	t.Helper()
	vocab := map[string]int{}
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(vocab)
		}
	}
	for b := range 256 {
		add(string(byteLevelRune(byte(b))))
	}
	var merges []string
	seen := map[string]bool{}
	for _, w := range modernWords {
		for _, form := range []string{"Ġ" + w, w} {
			r := []rune(form)
			cur := string(r[0])
			for _, c := range r[1:] {
				m := cur + " " + string(c)
				cur += string(c)
				if !seen[m] {
					seen[m] = true
					merges = append(merges, m)
				}
				add(cur)
			}
		}
	}
	var added []map[string]any
	for _, s := range []string{"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"} {
		add(s)
		added = append(added, map[string]any{"id": vocab[s], "content": s, "single_word": false, "lstrip": s == "[MASK]",
			"rstrip": false, "normalized": false, "special": true})
	}
	special := func(s string) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": s, "type_id": 0}}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added, "normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{special("[CLS]"), map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, special("[SEP]")},
			"pair": []any{special("[CLS]"), map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, special("[SEP]"),
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 0}}, special("[SEP]")},
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{vocab["[CLS]"]}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{vocab["[SEP]"]}, "tokens": []string{"[SEP]"}},
			},
		},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges,
		},
	}
	cfg := map[string]any{
		"clean_up_tokenization_spaces": true, "cls_token": "[CLS]", "mask_token": "[MASK]", "model_max_length": 8192,
		"pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]", "tokenizer_class": "PreTrainedTokenizerFast",
	}
	for name, v := range map[string]any{"tokenizer.json": doc, "tokenizer_config.json": cfg} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return vocab
}

// TestModernBERTEndToEnd runs a small random-weight ModernBERT with a
// ModernBERT-form byte-level BPE tokenizer through what a BERT model does:
// users' [MASK] is the model's mask, answers are the tokens they read as
// at their masks, FillMask and Score work, FineTune lowers the gold NLL
// that Evaluate measures, and Save writes a Hugging Face checkpoint that
// Load reads back to a model with identical outputs.
func TestModernBERTEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	vocab := writeModernBERTTokenizer(t, dir)
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.MaskToken() != "[MASK]" || tok.PadID() != vocab["[PAD]"] || tok.CLSID() != vocab["[CLS]"] {
		t.Fatalf("tokenizer: mask %q, pad %d, cls %d", tok.MaskToken(), tok.PadID(), tok.CLSID())
	}
	cfg := modernTestConfig()
	cfg.VocabSize = tok.VocabSize()
	cfg.PadTokenID = vocab["[PAD]"]
	m, err := New(cfg, tok, Options{Device: "cpu", Threads: 1, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	for _, c := range []struct {
		text, answer string
		want         []string
	}{
		{"the cat sat on the [MASK] .", "mat", []string{"Ġmat"}},
		{"[MASK] cat sat on the mat .", "The", []string{"The"}},
		{"I want to [MASK] a book", "write", []string{"Ġwrite"}},
	} {
		pieces, reason := m.answerPieces(m.userText(c.text), []string{c.answer})
		if reason != "" {
			t.Fatalf("%q: %s", c.text, reason)
		}
		var want []int64
		for _, w := range c.want {
			want = append(want, int64(vocab[w]))
		}
		if !slices.Equal(pieces[0], want) {
			t.Errorf("answer %q in %q: ids %v, want %v (%q)", c.answer, c.text, pieces[0], want, c.want)
		}
	}
	res, err := m.FillMask(ctx, []string{"the cat sat on the [MASK] ."}, FillOptions{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Masks[0]) != 5 {
		t.Fatalf("FillMask: %+v", res)
	}
	checkScoreSuggestions(t, m, 'Ġ')

	_, after := checkFineTuneLearns(t, m, 60)

	out := t.TempDir()
	if err := m.Save(ctx, out); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(filepath.Join(out, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"model.embeddings.tok_embeddings.weight", "model.embeddings.norm.weight", "model.layers.0.attn.Wqkv.weight",
		"model.layers.1.attn_norm.weight", "model.layers.2.mlp.Wi.weight", "model.layers.2.mlp.Wo.weight", "model.layers.0.mlp_norm.weight",
		"model.final_norm.weight", "head.dense.weight", "head.norm.weight", "decoder.bias"} {
		if _, ok := f.Tensor(n); !ok {
			t.Errorf("checkpoint lacks %s", n)
		}
	}
	for _, n := range []string{"model.layers.0.attn_norm.weight", "decoder.weight", "model.layers.0.attn.Wqkv.bias", "head.norm.bias"} {
		if _, ok := f.Tensor(n); ok {
			t.Errorf("checkpoint has %s", n)
		}
	}
	m2, err := Load(ctx, out, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.Config().ModelType != ModelTypeModernBERT || m2.Tokenizer().MaskToken() != "[MASK]" {
		t.Fatalf("reloaded %s with mask %q", m2.Config().ModelType, m2.Tokenizer().MaskToken())
	}
	texts := []string{"the cat sat on the [MASK] .", "[MASK] want to write a [MASK]", "I  want to\t[MASK] a book ."}
	r1 := checkReloadedSame(t, m, m2, texts, after)
	if p := r1[2].Masks[0][0]; p.TokenStr != " read" {
		t.Errorf("after fine-tuning %q predicts %+v, want \" read\"", texts[2], p)
	}
}
