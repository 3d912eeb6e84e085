package torchrt_test

import (
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/torchrt"
)

// TestUseHugePages checks the huge-page allocator: tensors from
// HugePageThreshold bytes get 2 MiB aligned mappings that are counted while
// they live and released when freed, smaller ones are left to malloc, and
// tensors of both kinds hold and compute the right values.
func TestUseHugePages(t *testing.T) {
	ok, err := torchrt.UseHugePages()
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		if ok {
			t.Fatal("UseHugePages installed an allocator outside Linux")
		}
		t.Skip("huge pages only on Linux")
	}
	if !ok {
		t.Fatal("UseHugePages did not install its allocator")
	}
	if again, err := torchrt.UseHugePages(); err != nil || !again {
		t.Fatalf("second UseHugePages() = %v, %v; want true, nil", again, err)
	}
	tests := []struct {
		name  string
		n     int64 // float32 elements
		huge  bool
		bytes uint64 // mapped bytes (rounded up to 4 KiB)
	}{
		{"small", 1000, false, 0},
		{"32 MiB", (32 << 20) / 4, false, 0},
		{"just above 32 MiB", (32<<20)/4 + 1, true, 32<<20 + 4096},
		{"odd size", 10_000_001, true, (10_000_001*4 + 4095) &^ 4095},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := torchrt.HugePageBytes()
			x := ts.MustOnes([]int64{tc.n}, gotch.Float, gotch.CPU)
			during := torchrt.HugePageBytes()
			if got := during - before; got != tc.bytes {
				t.Errorf("mapped bytes grew by %d, want %d", got, tc.bytes)
			}
			ptr, err := x.DataPtr()
			if err != nil {
				t.Fatal(err)
			}
			if addr := uintptr(ptr); tc.huge && addr%(2<<20) != 0 {
				t.Errorf("data at %#x, not 2 MiB aligned", addr)
			}
			y := x.MustMulScalar(ts.FloatScalar(3), false)
			sum := y.MustSum(gotch.Double, true).Float64Values()[0]
			if sum != 3*float64(tc.n) {
				t.Errorf("sum of 3·ones(%d) = %g, want %g", tc.n, sum, 3*float64(tc.n))
			}
			x.MustDrop()
			if got := torchrt.HugePageBytes(); got != before {
				t.Errorf("after freeing, %d bytes mapped, want %d", got, before)
			}
		})
	}
}
