package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/torchrt"
)

// closedAddr returns a local TCP address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDoctorJSON(t *testing.T) {
	temporal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer temporal.Close()
	s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "AccessDenied", http.StatusForbidden) // any answer counts
	}))
	defer s3.Close()
	down := closedAddr(t)

	tests := []struct {
		name          string
		temporal, s3  string
		wantReachable bool
	}{
		{name: "services up", temporal: temporal.Addr().String(), s3: s3.URL, wantReachable: true},
		{name: "services down", temporal: down, s3: "http://" + down, wantReachable: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"doctor", "--json", "--threads", "2", "--device", "cpu", "--timeout", "1s",
				"--temporal", tc.temporal, "--s3", tc.s3}, &stdout, &stderr)
			var r doctorReport
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("doctor --json output %q: %v (stderr %q)", stdout.String(), err, stderr.String())
			}
			// Unreachable services are not failures; only Problems are.
			if wantCode := map[bool]int{true: 0, false: 1}[len(r.Problems) == 0]; code != wantCode {
				t.Errorf("exit %d with problems %q, want %d", code, r.Problems, wantCode)
			}
			if r.Temporal.Reachable != tc.wantReachable || r.S3.Reachable != tc.wantReachable {
				t.Errorf("reachable temporal=%v s3=%v, want %v (errors %q, %q)",
					r.Temporal.Reachable, r.S3.Reachable, tc.wantReachable, r.Temporal.Error, r.S3.Error)
			}
			if !tc.wantReachable && (r.Temporal.Error == "" || r.S3.Error == "") {
				t.Errorf("unreachable endpoints without an error: %+v %+v", r.Temporal, r.S3)
			}
			if r.Threads != 2 {
				t.Errorf("threads = %d after --threads 2", r.Threads)
			}
			if r.Device != "cpu" || r.Libtorch != torchrt.Version() || r.Gotch == "" {
				t.Errorf("device %q libtorch %q gotch %q", r.Device, r.Libtorch, r.Gotch)
			}
			if r.Matmul.Error != "" || r.Matmul.GFLOPS <= 0 {
				t.Errorf("matmul check: %+v", r.Matmul)
			}
			if alt := r.BLAS.Alternative; strings.Contains(alt, "openblas") && r.BLAS.Name != torchrt.BLASOpenBLAS {
				t.Errorf("BLAS %+v, want openblas (the alternative points to %s)", r.BLAS, alt)
			}
			if r.BLAS.Name == torchrt.BLASReference && !strings.Contains(strings.Join(r.Warnings, "\n"), "install libopenblas0-pthread") {
				t.Errorf("reference BLAS without the install warning: %q", r.Warnings)
			}
		})
	}
}

func TestDoctorBadInput(t *testing.T) {
	tests := [][]string{
		{"doctor", "--device", "gpu"},
		{"doctor", "--threads", "0"},
		{"doctor", "extra"},
	}
	for _, args := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}

// TestNoCUDALibrariesLoaded checks on a CPU-only libtorch that the program
// (this test binary links what bin/clozeloop links) loads no CUDA library:
// gotch's CUDA link flags must be satisfied by stubs that --as-needed drops.
func TestNoCUDALibrariesLoaded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/maps")
	}
	cfg, err := torchrt.BuildConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg, "USE_CUDA=OFF") {
		t.Skip("libtorch built with CUDA")
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	cuda := []string{"libcuda.", "libcudart", "libcublas", "libcudnn", "libnvrtc", "libnvToolsExt", "libcaffe2_nvrtc", "libc10_cuda", "libtorch_cuda"}
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		base := filepath.Base(f[len(f)-1])
		for _, c := range cuda {
			if strings.HasPrefix(base, c) {
				t.Errorf("CUDA library loaded on a CPU-only libtorch: %s", f[len(f)-1])
			}
		}
	}
}
