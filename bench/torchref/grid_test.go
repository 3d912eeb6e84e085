package torchref

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestMixLengths(t *testing.T) {
	a, err := MixLengths(500, 8, 64, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MixLengths(500, 8, 64, 7)
	c, _ := MixLengths(500, 8, 64, 8)
	if !slices.Equal(a, b) {
		t.Error("same seed, different lengths")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same lengths")
	}
	seen := map[int]bool{}
	for _, n := range a {
		if n < 8 || n > 64 {
			t.Fatalf("length %d outside [8, 64]", n)
		}
		seen[n] = true
	}
	if !seen[8] || !seen[64] || len(seen) < 50 {
		t.Errorf("500 draws cover %d of the 57 lengths (ends: %v %v)", len(seen), seen[8], seen[64])
	}
	for _, bad := range [][3]int{{-1, 8, 64}, {10, 2, 64}, {10, 9, 8}} {
		if _, err := MixLengths(bad[0], bad[1], bad[2], 1); err == nil {
			t.Errorf("MixLengths%v: no error", bad)
		}
	}
}

func TestGridValidation(t *testing.T) {
	tests := []struct {
		name  string
		cells []Cell
		want  string
	}{
		{"no cells", nil, "without cells"},
		{"bad mode", []Cell{{Mode: ModeMatmul, Batch: 1, Length: 8}}, "mode"},
		{"zero batch", []Cell{{Batch: 0, Length: 8}}, "batch = 0"},
		{"short item", []Cell{{Batch: 2, Lengths: []int{8, 2}}}, "length 2"},
		{"long item", []Cell{{Batch: 2, Lengths: []int{65}}}, "length 65"},
		{"train with lengths", []Cell{{Mode: ModeTrain, Batch: 2, Lengths: []int{8}}}, "score mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The python is never started: validation comes first.
			_, err := RunGrid(context.Background(), Options{Python: "/nonexistent", Model: Tiny()}, tc.cells)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
	if _, err := (Options{Mode: ModeTrain, Lengths: []int{8}}).Args(); err == nil || !strings.Contains(err.Error(), "score mode") {
		t.Errorf("train with lengths: err = %v", err)
	}
}

// TestRunMixLengths checks that the reference scores exactly the items it
// is given: the mix's lengths in order, batched in input order.
func TestRunMixLengths(t *testing.T) {
	python := torchPython(t)
	ctx := context.Background()
	lengths, err := MixLengths(11, 8, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, n := range lengths {
		sum += n
	}
	t.Run("score with lengths", func(t *testing.T) {
		r, err := Run(ctx, Options{Python: python, Mode: ModeScore, Model: Tiny(), Batch: 4, Lengths: lengths, Threads: 1, Runs: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Lengths, lengths) || r.Items != 11 || r.Tokens != sum || r.Length != slices.Max(lengths) || r.Batch != 4 {
			t.Errorf("result lengths %v items %d tokens %d length %d batch %d, want %v, 11, %d, %d, 4",
				r.Lengths, r.Items, r.Tokens, r.Length, r.Batch, lengths, sum, slices.Max(lengths))
		}
		if len(r.MsRuns) != 2 || !(r.ItemsPerS > 0) {
			t.Errorf("runs %v items/s %v", r.MsRuns, r.ItemsPerS)
		}
	})
	t.Run("grid", func(t *testing.T) {
		cells := []Cell{
			{Batch: 2, Length: 8},
			{Batch: 4, Lengths: lengths, MaskOnly: true},
			{Mode: ModeTrain, Batch: 2, Length: 8, MaskOnly: true},
		}
		res, err := RunGrid(ctx, Options{Python: python, Model: Tiny(), Threads: 1, Runs: 1, MinSeconds: 0.05, MaxSeconds: 1}, cells)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Items != 2 || res[0].Tokens != 16 || res[0].MaskOnly || res[0].Mode != ModeScore {
			t.Errorf("fixed cell result %+v", res[0])
		}
		if !slices.Equal(res[1].Lengths, lengths) || res[1].Items != 11 || res[1].Tokens != sum || !res[1].MaskOnly {
			t.Errorf("mix cell result lengths %v items %d tokens %d mask-only %v", res[1].Lengths, res[1].Items, res[1].Tokens, res[1].MaskOnly)
		}
		if res[2].Mode != ModeTrain || !(res[2].LossFirst > 0) || !(res[2].TokensPerS > 0) {
			t.Errorf("train cell result %+v", res[2])
		}
		for i, r := range res {
			if r.Runs < 1 || r.Python != python || r.Threads != 1 {
				t.Errorf("cell %d: runs %d python %q threads %d", i, r.Runs, r.Python, r.Threads)
			}
		}
	})
}
