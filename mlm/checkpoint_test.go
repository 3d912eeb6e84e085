package mlm

import (
	"context"
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
	tests := []struct {
		dtype safetensors.DType
		round func(float32) float32
		// relTol bounds the logit difference relative to the largest logit.
		relTol float64
	}{
		{safetensors.F16, func(f float32) float32 { return safetensors.F16ToFloat32(safetensors.Float32ToF16(f)) }, 5e-3},
		{safetensors.BF16, func(f float32) float32 { return safetensors.BF16ToFloat32(safetensors.Float32ToBF16(f)) }, 4e-2},
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
				gv, err := got.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				wv, _ := w.Float32s()
				for i := range wv {
					if r := tt.round(wv[i]); gv[i] != r {
						t.Fatalf("tensor %s[%d] = %g, want %g (%g rounded to %s)", w.Name, i, gv[i], r, wv[i], tt.dtype)
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
