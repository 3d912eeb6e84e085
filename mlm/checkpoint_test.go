package mlm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/safetensors"
)

// TestSaveWithHalfPrecision saves a model in F16 and BF16, checks that
// every stored value is the rounded float32 parameter, that the file is
// about half the float32 one, and that the reloaded model's logits are
// those of the float32 model within the precision of the type.
func TestSaveWithHalfPrecision(t *testing.T) {
	ctx := context.Background()
	m := newTestModel(t, 3)
	ref := t.TempDir()
	if err := m.Save(ctx, ref); err != nil {
		t.Fatal(err)
	}
	refInfo, err := os.Stat(filepath.Join(ref, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	sd32, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	ids, mask, types := testBatch()
	want := allLogits(t, m, ids, mask, types)
	var scale float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	// The expected values come from roundHalf/roundBF16 and the stored bits
	// are read with decodeF16/decodeBF16, all written here from the formats'
	// definitions and checked on hand-worked bit patterns in
	// TestSaveHalfPrecisionBitPatterns, not with the saver's converters.
	tests := []struct {
		dtype  safetensors.DType
		round  func(float32) float64
		decode func(uint16) float64
		// relTol bounds the logit difference relative to the largest logit.
		relTol float64
	}{
		{safetensors.F16, roundHalf, decodeF16, 5e-3},
		{safetensors.BF16, roundBF16, decodeBF16, 4e-2},
	}
	for _, tt := range tests {
		t.Run(string(tt.dtype), func(t *testing.T) {
			dir := t.TempDir()
			if err := m.SaveWith(ctx, dir, SaveOptions{DType: tt.dtype}); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{ConfigFile, "vocab.txt", "tokenizer.json"} {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					t.Errorf("SaveWith did not write %s: %v", name, err)
				}
			}
			path := filepath.Join(dir, SafetensorsFile)
			f, err := safetensors.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if f.Len() != len(sd32) {
				t.Errorf("%d tensors, want %d (the float32 file's)", f.Len(), len(sd32))
			}
			if _, ok := f.Tensor("cls.predictions.decoder.weight"); ok {
				t.Error("tied decoder weight written twice")
			}
			for _, w := range sd32 {
				got, ok := f.Tensor(w.Name)
				if !ok {
					t.Errorf("tensor %s missing", w.Name)
					continue
				}
				if got.DType != tt.dtype {
					t.Errorf("tensor %s has dtype %s, want %s", w.Name, got.DType, tt.dtype)
				}
				wv, _ := w.Float32s()
				if len(got.Data) != 2*len(wv) {
					t.Fatalf("tensor %s has %d bytes, want %d", w.Name, len(got.Data), 2*len(wv))
				}
				for i := range wv {
					g := tt.decode(binary.LittleEndian.Uint16(got.Data[2*i:]))
					if r := tt.round(wv[i]); g != r {
						t.Fatalf("tensor %s[%d] = %g, want %g (%g rounded to %s)", w.Name, i, g, r, wv[i], tt.dtype)
					}
				}
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if r := float64(info.Size()) / float64(refInfo.Size()); r < 0.45 || r > 0.55 {
				t.Errorf("%s file is %d bytes, %.2f of the float32 file's %d; want about half", tt.dtype, info.Size(), r, refInfo.Size())
			}
			m2, err := Load(ctx, dir, Options{Device: "cpu", Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			got := allLogits(t, m2, ids, mask, types)
			d := maxAbsDiff(want, got)
			if d > tt.relTol*scale {
				t.Errorf("%s logits differ from float32 by %g, more than %g × the largest logit %g", tt.dtype, d, tt.relTol, scale)
			}
			t.Logf("%s: %d bytes (float32 %d), max logit difference %.3g (largest logit %.3g)", tt.dtype, info.Size(), refInfo.Size(), d, scale)
		})
	}
}

// roundHalf rounds f to IEEE 754 binary16 (11 significant bits, exponent
// down to -14, subnormals on the grid 2^-24, ties to even, above 65504 to
// infinity), computed exactly in float64.
func roundHalf(f float32) float64 {
	x := float64(f)
	a := math.Abs(x)
	var q float64
	switch {
	case a == 0 || math.IsInf(a, 0):
		return x
	case a < 0x1p-14:
		q = math.RoundToEven(a*0x1p24) / 0x1p24
	default:
		frac, exp := math.Frexp(a) // a = frac·2^exp, frac in [0.5, 1)
		q = math.Ldexp(math.RoundToEven(math.Ldexp(frac, 11)), exp-11)
	}
	if q > 65504 {
		q = math.Inf(1)
	}
	return math.Copysign(q, x)
}

// roundBF16 rounds f to bfloat16 (8 significant bits, float32's exponent
// range, subnormals on the grid 2^-133, ties to even).
func roundBF16(f float32) float64 {
	x := float64(f)
	a := math.Abs(x)
	var q float64
	switch {
	case a == 0 || math.IsInf(a, 0):
		return x
	case a < 0x1p-126:
		q = math.RoundToEven(a*0x1p133) / 0x1p133
	default:
		frac, exp := math.Frexp(a)
		q = math.Ldexp(math.RoundToEven(math.Ldexp(frac, 8)), exp-8)
	}
	if q > 0x1.fep127 {
		q = math.Inf(1)
	}
	return math.Copysign(q, x)
}

// decodeF16 reads binary16 bits: sign, 5 exponent bits (bias 15), 10
// fraction bits.
func decodeF16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	case 0:
		return sign * m * 0x1p-24
	}
	return sign * math.Ldexp(1024+m, e-25)
}

// decodeBF16 reads bfloat16 bits: sign, 8 exponent bits (bias 127), 7
// fraction bits.
func decodeBF16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>7)&0xff, float64(h&0x7f)
	switch e {
	case 0xff:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	case 0:
		return sign * m * 0x1p-133
	}
	return sign * math.Ldexp(128+m, e-134)
}

// halfCases are float32 values with their binary16 and bfloat16 bit
// patterns, worked out by hand from the formats (see the comments).
var halfCases = []struct {
	in        float32
	f16, bf16 uint16
	why       string
}{
	{1, 0x3c00, 0x3f80, "exponent bias 15 / 127, fraction 0"},
	{-2, 0xc000, 0xc000, "sign bit, exponent 16 / 128"},
	{0.1, 0x2e66, 0x3dcd, "1.6·2^-4: fraction 0.6·1024 = 614.4 → 614; float32 0x3dcccccd rounds up"},
	{1.0 / 3, 0x3555, 0x3eab, "fraction 341.33 → 341 = 0x155; float32 0x3eaaaaab rounds up"},
	{65504, 0x7bff, 0x4780, "largest half; float32 0x477fe000 rounds up to 65536 in bfloat16"},
	{65520, 0x7c00, 0x4780, "half tie between 65504 and 65536 goes to even: infinity"},
	{-1e6, 0xfc00, 0xc974, "half overflows to -infinity; float32 0xc9742400 rounds down"},
	{0x1p-14, 0x0400, 0x3880, "smallest normal half"},
	{0x1p-24, 0x0001, 0x3380, "smallest subnormal half"},
	{0x3p-25, 0x0002, 0x33c0, "1.5 subnormal steps: tie to even 2"},
	{0x1p-25, 0x0000, 0x3300, "half a subnormal step: tie to even 0"},
	{1 + 0x1p-11, 0x3c00, 0x3f80, "half tie between 1 and 1+2^-10: even is 1"},
	{1 + 0x3p-11, 0x3c02, 0x3f80, "half tie between 1+2^-10 and 1+2^-9: even is 1+2^-9"},
	{1 + 0x1p-8, 0x3c04, 0x3f80, "exact in half; bfloat16 tie 0x3f80/0x3f81: even 0x3f80"},
	{1 + 0x3p-8, 0x3c0c, 0x3f82, "exact in half; bfloat16 tie 0x3f81/0x3f82: even 0x3f82"},
}

// TestSaveHalfPrecisionBitPatterns plants halfCases in a model's word
// embeddings, saves it in F16 and BF16 and checks the stored bits against
// the hand-worked patterns. It also checks the test's own roundHalf,
// roundBF16 and decoders on them, which TestSaveWithHalfPrecision relies on.
func TestSaveHalfPrecisionBitPatterns(t *testing.T) {
	for _, c := range halfCases {
		if r, d := roundHalf(c.in), decodeF16(c.f16); r != d {
			t.Errorf("roundHalf(%g) = %g, hand-worked %#04x is %g", c.in, r, c.f16, d)
		}
		if r, d := roundBF16(c.in), decodeBF16(c.bf16); r != d {
			t.Errorf("roundBF16(%g) = %g, hand-worked %#04x is %g", c.in, r, c.bf16, d)
		}
	}
	const name = "bert.embeddings.word_embeddings.weight"
	m := newTestModel(t, 4)
	dir := writeState(t, m, func(sd []safetensors.Tensor) []safetensors.Tensor {
		for i, x := range sd {
			if x.Name != name {
				continue
			}
			v, _ := x.Float32s()
			for j, c := range halfCases {
				v[j] = c.in
			}
			sd[i], _ = safetensors.FromFloat32s(x.Name, safetensors.F32, x.Shape, v)
		}
		return sd
	})
	planted, err := Load(context.Background(), dir, Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer planted.Close()
	for _, dtype := range []safetensors.DType{safetensors.F16, safetensors.BF16} {
		out := t.TempDir()
		if err := planted.SaveWith(context.Background(), out, SaveOptions{DType: dtype}); err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.ReadFile(filepath.Join(out, SafetensorsFile))
		if err != nil {
			t.Fatal(err)
		}
		w, ok := f.Tensor(name)
		if !ok || len(w.Data) < 2*len(halfCases) {
			t.Fatalf("%s: tensor %s missing or short", dtype, name)
		}
		for j, c := range halfCases {
			got := binary.LittleEndian.Uint16(w.Data[2*j:])
			want := c.f16
			if dtype == safetensors.BF16 {
				want = c.bf16
			}
			if got != want {
				t.Errorf("%s of %g stored as %#04x, want %#04x (%s)", dtype, c.in, got, want, c.why)
			}
		}
	}
}

func TestSaveWithBadDType(t *testing.T) {
	m := newTestModel(t, 1)
	dir := filepath.Join(t.TempDir(), "out")
	for _, d := range []safetensors.DType{safetensors.I64, safetensors.F64, "f16"} {
		err := m.SaveWith(context.Background(), dir, SaveOptions{DType: d})
		if err == nil || !strings.Contains(err.Error(), "want F32, F16 or BF16") {
			t.Errorf("SaveWith(%q): %v, want a dtype error", d, err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("SaveWith(%q) created %s despite the error", d, dir)
		}
	}
}

// TestLoadSharded splits a saved checkpoint into two safetensors shards
// with a Hugging Face index (model.safetensors.index.json) and loads it
// back; broken indexes are refused.
func TestLoadSharded(t *testing.T) {
	ctx := context.Background()
	m := newTestModel(t, 3)
	ids, mask, types := testBatch()
	want := allLogits(t, m, ids, mask, types)
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mutate  func(weightMap map[string]string, shards [][]safetensors.Tensor) (map[string]string, [][]safetensors.Tensor)
		wantErr string
	}{
		{"two shards", nil, ""},
		{"shard outside the folder", func(w map[string]string, s [][]safetensors.Tensor) (map[string]string, [][]safetensors.Tensor) {
			w[sd[0].Name] = "../model-00001-of-00002.safetensors"
			return w, s
		}, "not a file name in the checkpoint folder"},
		{"tensor not in its shard", func(w map[string]string, s [][]safetensors.Tensor) (map[string]string, [][]safetensors.Tensor) {
			w[sd[0].Name] = "model-00002-of-00002.safetensors"
			return w, s
		}, "which does not hold it"},
		{"missing shard file", func(w map[string]string, s [][]safetensors.Tensor) (map[string]string, [][]safetensors.Tensor) {
			w[sd[0].Name] = "model-00003-of-00002.safetensors"
			return w, s
		}, "model-00003-of-00002.safetensors"},
		{"tensor missing from the weight map", func(w map[string]string, s [][]safetensors.Tensor) (map[string]string, [][]safetensors.Tensor) {
			delete(w, sd[1].Name)
			return w, s
		}, sd[1].Name},
		{"empty weight map", func(w map[string]string, s [][]safetensors.Tensor) (map[string]string, [][]safetensors.Tensor) {
			return map[string]string{}, s
		}, "no weight_map"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := m.Save(ctx, dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, SafetensorsFile)); err != nil {
				t.Fatal(err)
			}
			weightMap := map[string]string{}
			shards := make([][]safetensors.Tensor, 2)
			for i, tn := range sd {
				shards[i%2] = append(shards[i%2], tn)
				weightMap[tn.Name] = fmt.Sprintf("model-%05d-of-00002.safetensors", i%2+1)
			}
			if tc.mutate != nil {
				weightMap, shards = tc.mutate(weightMap, shards)
			}
			for i, sh := range shards {
				if err := safetensors.WriteFile(filepath.Join(dir, fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)), sh, map[string]string{"format": "pt"}); err != nil {
					t.Fatal(err)
				}
			}
			idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap})
			if err := os.WriteFile(filepath.Join(dir, SafetensorsIndexFile), idx, 0o644); err != nil {
				t.Fatal(err)
			}
			m2, err := Load(ctx, dir, Options{Device: "cpu", Threads: 1})
			if tc.wantErr != "" {
				if err == nil {
					m2.Close()
				}
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load = %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			if d := maxAbsDiff(want, allLogits(t, m2, ids, mask, types)); d != 0 {
				t.Errorf("logits differ by %g after loading the shards", d)
			}
			files, err := WeightFiles(dir)
			if err != nil || len(files) != 2 || filepath.Base(files[0]) != "model-00001-of-00002.safetensors" {
				t.Errorf("WeightFiles = %v, %v; want the two shards", files, err)
			}
		})
	}
}
