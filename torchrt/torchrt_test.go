package torchrt

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// majorMinor returns "X.Y" of a version "X.Y.Z..." or "" when v is malformed.
func majorMinor(v string) string {
	m := regexp.MustCompile(`^(\d+)\.(\d+)(\.|$)`).FindStringSubmatch(v)
	if m == nil {
		return ""
	}
	return m[1] + "." + m[2]
}

func TestVersion(t *testing.T) {
	v := Version()
	if majorMinor(v) == "" {
		t.Fatalf("Version() = %q, want X.Y.Z", v)
	}
	// scripts/env.sh exports the version it detected from torch/version.h.
	if want := os.Getenv("CLOZELOOP_LIBTORCH_VERSION"); want != "" && majorMinor(v) != majorMinor(want) {
		t.Errorf("Version() = %q, CLOZELOOP_LIBTORCH_VERSION = %q: built against another libtorch", v, want)
	}
	rv, err := RuntimeVersion()
	if err != nil {
		t.Fatalf("RuntimeVersion: %v", err)
	}
	if majorMinor(rv) != majorMinor(v) {
		t.Errorf("RuntimeVersion() = %q, Version() = %q: loaded libtorch differs from the headers", rv, v)
	}
}

func TestCompatHeader(t *testing.T) {
	mm := majorMinor(Version())
	old := mm != "" && versionLess(mm, "2.1")
	if got := CompatHeader(); old != (got != "") {
		t.Errorf("libtorch %s: CompatHeader() = %q; want a hash exactly when libtorch < 2.1", Version(), got)
	}
}

// versionLess compares "X.Y" versions numerically.
func versionLess(a, b string) bool {
	var a1, a2, b1, b2 int
	if _, err := fmt.Sscanf(a, "%d.%d", &a1, &a2); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(b, "%d.%d", &b1, &b2); err != nil {
		return false
	}
	return a1 < b1 || (a1 == b1 && a2 < b2)
}

func TestSetNumThreads(t *testing.T) {
	orig, err := NumThreads()
	if err != nil {
		t.Fatalf("NumThreads: %v", err)
	}
	if orig < 1 {
		t.Fatalf("NumThreads() = %d, want >= 1", orig)
	}
	t.Cleanup(func() {
		if err := SetNumThreads(orig); err != nil {
			t.Errorf("restore threads: %v", err)
		}
	})
	tests := []struct {
		n       int
		wantErr bool
	}{
		{n: 2},
		{n: 1},
		{n: 3},
		{n: 0, wantErr: true},
		{n: -4, wantErr: true},
	}
	for _, tc := range tests {
		before, err := NumThreads()
		if err != nil {
			t.Fatalf("NumThreads: %v", err)
		}
		err = SetNumThreads(tc.n)
		if (err != nil) != tc.wantErr {
			t.Fatalf("SetNumThreads(%d) error = %v, want error %v", tc.n, err, tc.wantErr)
		}
		got, err := NumThreads()
		if err != nil {
			t.Fatalf("NumThreads after SetNumThreads(%d): %v", tc.n, err)
		}
		want := tc.n
		if tc.wantErr {
			want = before // a rejected value changes nothing
		}
		if got != want {
			t.Errorf("SetNumThreads(%d): NumThreads() = %d, want %d", tc.n, got, want)
		}
	}
}

func TestDetectBLAS(t *testing.T) {
	b, err := DetectBLAS()
	if err != nil {
		t.Fatalf("DetectBLAS: %v", err)
	}
	t.Logf("BLAS: %+v", b)
	if runtime.GOOS != "linux" || b.Alternative == "" {
		t.Skip("no Debian BLAS alternative on this system")
	}
	// The library in the process must be the one the alternatives system
	// selects; on a machine set up with "make setup" that is OpenBLAS.
	if want := classifyBLASPath(b.Alternative); b.Name != want || b.Source != "maps" {
		t.Errorf("DetectBLAS() = %+v, want %q from /proc/self/maps (alternative %s)", b, want, b.Alternative)
	}
	if os.Getenv("CI") != "" && b.Name != BLASOpenBLAS {
		t.Errorf("CI: DetectBLAS().Name = %q, want %q (is libopenblas0-pthread installed?)", b.Name, BLASOpenBLAS)
	}
}

func TestClassifyBLASPath(t *testing.T) {
	tests := []struct {
		path, want string
	}{
		{"/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", BLASOpenBLAS},
		{"/usr/lib/aarch64-linux-gnu/openblas-openmp/libblas.so.3", BLASOpenBLAS},
		{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", BLASReference},
		{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0", BLASReference},
		{"/opt/intel/oneapi/mkl/latest/lib/libblas.so.3", BLASMKL},
		{"/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3", BLASUnknown},
		{"", BLASUnknown},
	}
	for _, tc := range tests {
		if got := classifyBLASPath(tc.path); got != tc.want {
			t.Errorf("classifyBLASPath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestBLASFromMaps(t *testing.T) {
	tests := []struct {
		name     string
		libs     []string
		wantName string
		wantPath string
	}{
		{
			name:     "reference libblas wins over mapped libopenblas",
			libs:     []string{"/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13", "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"},
			wantName: BLASReference, wantPath: "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3",
		},
		{
			name:     "openblas libblas",
			libs:     []string{"/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"},
			wantName: BLASOpenBLAS, wantPath: "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
		},
		{
			name:     "mkl without libblas",
			libs:     []string{"/opt/libtorch/lib/libtorch_cpu.so", "/opt/intel/lib/libmkl_rt.so.2"},
			wantName: BLASMKL, wantPath: "/opt/intel/lib/libmkl_rt.so.2",
		},
		{
			name:     "nothing",
			libs:     []string{"/usr/lib/x86_64-linux-gnu/libc.so.6"},
			wantName: BLASUnknown,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, path := blasFromMaps(tc.libs)
			if name != tc.wantName || path != tc.wantPath {
				t.Errorf("blasFromMaps = (%q, %q), want (%q, %q)", name, path, tc.wantName, tc.wantPath)
			}
		})
	}
}

func TestMappedLibraries(t *testing.T) {
	maps := `55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 123 /usr/bin/clozeloop
7f0000000000-7f0000001000 r-xp 00001000 08:01 456 /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
7f0000001000-7f0000002000 r--p 00002000 08:01 456 /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
7f0000002000-7f0000003000 rw-p 00000000 00:00 0 
7f0000003000-7f0000004000 rw-p 00000000 00:00 0 [heap]
7f0000004000-7f0000005000 r--p 00000000 08:01 789 /tmp/with space/lib.so (deleted)
`
	got, err := mappedLibraries(strings.NewReader(maps))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/bin/clozeloop", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", "/tmp/with space/lib.so"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("mappedLibraries = %q, want %q", got, want)
	}
}

func TestBuildSetting(t *testing.T) {
	cfg := "PyTorch built with:\n  - GCC 12.2\n  - Build settings: BLAS_INFO=generic, BUILD_TYPE=Release, CXX_FLAGS=-O2 -fPIC, TORCH_VERSION=1.13.0, USE_CUDA=OFF, \n"
	tests := []struct{ key, want string }{
		{"BLAS_INFO", "generic"},
		{"TORCH_VERSION", "1.13.0"},
		{"USE_CUDA", "OFF"},
		{"CXX_FLAGS", "-O2 -fPIC"},
		{"MISSING", ""},
	}
	for _, tc := range tests {
		if got := buildSetting(cfg, tc.key); got != tc.want {
			t.Errorf("buildSetting(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestCUDAInfo(t *testing.T) {
	c, err := CUDAInfo()
	if err != nil {
		t.Fatalf("CUDAInfo: %v", err)
	}
	if c.Available != (c.Devices > 0) {
		t.Errorf("CUDAInfo() = %+v: availability and device count disagree", c)
	}
	cfg, err := BuildConfig()
	if err != nil {
		t.Fatalf("BuildConfig: %v", err)
	}
	if buildSetting(cfg, "USE_CUDA") == "OFF" && (c.Available || c.Devices != 0) {
		t.Errorf("CPU-only libtorch: CUDAInfo() = %+v, want no CUDA", c)
	}
	if CUDAAvailable() != c.Available || CUDADeviceCount() != c.Devices {
		t.Errorf("CUDAAvailable/CUDADeviceCount disagree with CUDAInfo %+v", c)
	}
}

func TestParallelInfo(t *testing.T) {
	info, err := ParallelInfo()
	if err != nil {
		t.Fatalf("ParallelInfo: %v", err)
	}
	if !strings.Contains(info, "at::get_num_threads()") {
		t.Errorf("ParallelInfo() = %q, want libtorch's thread report", info)
	}
}
