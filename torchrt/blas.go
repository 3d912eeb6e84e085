package torchrt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// BLAS library names reported by DetectBLAS.
const (
	BLASOpenBLAS  = "openblas"
	BLASReference = "reference"
	BLASMKL       = "mkl"
	BLASUnknown   = "unknown"
)

// BLAS describes the BLAS library that serves libtorch's matrix products in
// this process.
type BLAS struct {
	// Name is BLASOpenBLAS, BLASReference, BLASMKL or BLASUnknown.
	Name string `json:"name"`
	// Path is the library file mapped into the process, "" when none was
	// found (for example MKL linked statically into an official libtorch).
	Path string `json:"path,omitempty"`
	// Alternative is where Debian's alternatives system points
	// libblas.so.3 (/etc/alternatives/libblas.so.3-<multiarch>), "" when
	// the system has no such link.
	Alternative string `json:"alternative,omitempty"`
	// Source says how Name was found: "maps" (/proc/self/maps),
	// "build-config" (BLAS_INFO of at::show_config()) or "none".
	Source string `json:"source"`
}

// Slow reports whether the BLAS is Debian's reference implementation, which
// makes libtorch about 100 times slower than OpenBLAS.
func (b BLAS) Slow() bool { return b.Name == BLASReference }

// DetectBLAS finds the BLAS library this process actually loaded. Debian's
// libtorch links libblas.so.3, which the alternatives system points at the
// reference BLAS or at OpenBLAS; the library mapped into the process is read
// from /proc/self/maps. When no BLAS library is mapped (static MKL, macOS),
// the BLAS_INFO build setting of libtorch decides.
func DetectBLAS() (BLAS, error) {
	b := BLAS{Name: BLASUnknown, Source: "none"}
	if alt, err := debianBLASAlternative(runtime.GOARCH); err == nil {
		b.Alternative = alt
	}
	f, err := os.Open("/proc/self/maps")
	switch {
	case err == nil:
		defer f.Close()
		libs, err := mappedLibraries(f)
		if err != nil {
			return b, fmt.Errorf("detect BLAS: read /proc/self/maps: %w", err)
		}
		if name, path := blasFromMaps(libs); name != BLASUnknown || path != "" {
			b.Name, b.Path, b.Source = name, path, "maps"
			return b, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return b, fmt.Errorf("detect BLAS: %w", err)
	}
	cfg, err := BuildConfig()
	if err != nil {
		return b, fmt.Errorf("detect BLAS: %w", err)
	}
	if info := buildSetting(cfg, "BLAS_INFO"); info != "" {
		b.Source = "build-config"
		switch {
		case strings.Contains(info, "mkl"):
			b.Name = BLASMKL
		case strings.Contains(info, "open"):
			b.Name = BLASOpenBLAS
		}
	}
	return b, nil
}

// mappedLibraries returns the distinct file paths of the mappings listed in
// r, in /proc/<pid>/maps format, in order of first appearance.
func mappedLibraries(r io.Reader) ([]string, error) {
	var libs []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") {
			continue
		}
		p := strings.Join(fields[5:], " ")
		p = strings.TrimSuffix(p, " (deleted)")
		if !seen[p] {
			seen[p] = true
			libs = append(libs, p)
		}
	}
	return libs, sc.Err()
}

// blasFromMaps picks the BLAS in use among mapped library paths. The
// libblas.so.3 that is mapped wins: libtorch resolves sgemm_ through it even
// when libopenblas.so.0 is mapped too. Without a libblas, a mapped MKL or
// OpenBLAS library decides.
func blasFromMaps(libs []string) (name, path string) {
	for _, p := range libs {
		if strings.HasPrefix(filepath.Base(p), "libblas.so") {
			return classifyBLASPath(p), p
		}
	}
	for _, p := range libs {
		base := filepath.Base(p)
		switch {
		case strings.HasPrefix(base, "libmkl_"):
			return BLASMKL, p
		case strings.HasPrefix(base, "libopenblas"):
			return BLASOpenBLAS, p
		}
	}
	return BLASUnknown, ""
}

// classifyBLASPath names the implementation behind a libblas.so.3 path, e.g.
// /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 (OpenBLAS) or
// /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 (reference BLAS).
func classifyBLASPath(p string) string {
	lp := strings.ToLower(p)
	switch {
	case strings.Contains(lp, "openblas"):
		return BLASOpenBLAS
	case strings.Contains(lp, "mkl"):
		return BLASMKL
	case filepath.Base(filepath.Dir(lp)) == "blas":
		return BLASReference
	}
	return BLASUnknown
}

// debianBLASAlternative resolves /etc/alternatives/libblas.so.3-<multiarch>
// for the Go architecture goarch.
func debianBLASAlternative(goarch string) (string, error) {
	multiarch := map[string]string{
		"amd64":   "x86_64-linux-gnu",
		"arm64":   "aarch64-linux-gnu",
		"ppc64le": "powerpc64le-linux-gnu",
		"s390x":   "s390x-linux-gnu",
		"riscv64": "riscv64-linux-gnu",
	}[goarch]
	if multiarch == "" {
		return "", fmt.Errorf("no Debian multiarch name for %s", goarch)
	}
	link := "/etc/alternatives/libblas.so.3-" + multiarch
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", link, err)
	}
	return p, nil
}
