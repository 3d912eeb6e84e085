package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/config"
	"github.com/clozeloop/clozeloop/torchrt"
)

// doctorReport is what "clozeloop doctor" finds out about the machine.
type doctorReport struct {
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	// Gotch is the gotch module version linked into this binary.
	Gotch string `json:"gotch"`
	// Libtorch is the version of the headers clozeloop was built with.
	Libtorch string `json:"libtorch"`
	// LibtorchRuntime is the version of the loaded libtorch library.
	LibtorchRuntime string `json:"libtorch_runtime"`
	// CompatHeader is the hash of deploy/libtorch/compat.h when the build
	// used it (libtorch < 2.1), "" otherwise.
	CompatHeader string       `json:"compat_header"`
	Threads      int          `json:"threads"`
	BLAS         torchrt.BLAS `json:"blas"`
	CUDA         torchrt.CUDA `json:"cuda"`
	// Device is the configured device resolved against the CUDA devices.
	Device   string        `json:"device"`
	Matmul   matmulCheck   `json:"matmul"`
	Temporal endpointCheck `json:"temporal"`
	S3       endpointCheck `json:"s3"`
	Warnings []string      `json:"warnings"`
	Problems []string      `json:"problems"`
}

// matmulCheck is the result of a small matrix product run through gotch.
type matmulCheck struct {
	Size   int     `json:"size"`
	GFLOPS float64 `json:"gflops"`
	Error  string  `json:"error,omitempty"`
}

// endpointCheck says whether a network service answered.
type endpointCheck struct {
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// referenceBLASWarning is printed when Debian's reference BLAS serves libtorch.
const referenceBLASWarning = "install libopenblas0-pthread: the reference BLAS is ~100x slower (make setup installs it)"

func doctorCmd() command {
	return command{
		name:    "doctor",
		summary: "check the libtorch setup (versions, threads, BLAS, CUDA) and the Temporal/S3 endpoints",
		run:     runDoctor,
	}
}

func runDoctor(ctx context.Context, env *cmdEnv, args []string) error {
	rt, err := config.RuntimeFromEnv(os.Getenv)
	if err != nil {
		return usagef("%v", err)
	}
	eps := config.EndpointsFromEnv(os.Getenv)
	fs := newFlagSet(env, "doctor", "[--json] [--temporal host:port] [--s3 URL] [--device D] [--threads N]\n\n"+
		"Exit status 1 when a hard problem is found: the reference BLAS is active, the\n"+
		"loaded libtorch differs from the one clozeloop was built with, a gotch matrix\n"+
		"product fails or is wrong, or the chosen device does not exist. Unreachable\n"+
		"Temporal or S3 endpoints are reported but are not failures.")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.StringVar(&eps.TemporalAddress, "temporal", eps.TemporalAddress, "Temporal frontend host:port (env "+config.EnvTemporalAddress+")")
	fs.StringVar(&eps.S3Endpoint, "s3", eps.S3Endpoint, "S3 endpoint URL (env "+config.EnvS3Endpoint+")")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of each endpoint check")
	rt.RegisterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %q", fs.Args())
	}

	r := diagnose(ctx, rt, eps, *timeout)
	if *asJSON {
		if err := writeJSON(env.stdout, r); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	} else {
		printDoctor(env.stdout, r)
	}
	if len(r.Problems) > 0 {
		return fmt.Errorf("%d problem(s): %s", len(r.Problems), strings.Join(r.Problems, "; "))
	}
	return nil
}

// diagnose gathers the report; hard failures go to Problems, the rest to
// Warnings.
func diagnose(ctx context.Context, rt config.Runtime, eps config.Endpoints, timeout time.Duration) doctorReport {
	v := buildVersion()
	r := doctorReport{
		GoVersion:    v.GoVersion,
		Platform:     v.Platform,
		Gotch:        v.Gotch,
		Libtorch:     torchrt.Version(),
		CompatHeader: torchrt.CompatHeader(),
		Warnings:     []string{},
		Problems:     []string{},
	}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...)) }

	if rv, err := torchrt.RuntimeVersion(); err != nil {
		warn("%v", err)
	} else {
		r.LibtorchRuntime = rv
		if !sameMajorMinor(rv, r.Libtorch) {
			problem("loaded libtorch %s differs from the headers of the build (%s): rebuild with make build", rv, r.Libtorch)
		}
	}

	if err := torchrt.SetNumThreads(rt.Threads); err != nil {
		problem("%v", err)
	}
	if n, err := torchrt.NumThreads(); err != nil {
		problem("%v", err)
	} else {
		r.Threads = n
	}

	b, err := torchrt.DetectBLAS()
	if err != nil {
		warn("%v", err)
	}
	r.BLAS = b
	switch b.Name {
	case torchrt.BLASReference:
		warn("%s", referenceBLASWarning)
		problem("reference BLAS active (%s)", b.Path)
	case torchrt.BLASUnknown:
		warn("cannot tell which BLAS libtorch uses")
	}

	if c, err := torchrt.CUDAInfo(); err != nil {
		warn("%v", err)
	} else {
		r.CUDA = c
	}
	if d, err := rt.Device.Resolve(r.CUDA.Available, r.CUDA.Devices); err != nil {
		problem("%v", err)
		r.Device = rt.Device.String()
	} else {
		r.Device = d.String()
	}

	r.Matmul = checkMatmul(512)
	if r.Matmul.Error != "" {
		problem("gotch matrix product: %s", r.Matmul.Error)
	}

	r.Temporal = dialTCP(ctx, eps.TemporalAddress, timeout)
	if !r.Temporal.Reachable {
		warn("Temporal frontend %s not reachable (start one with clozeloop dev)", eps.TemporalAddress)
	}
	r.S3 = getHTTP(ctx, eps.S3Endpoint, timeout)
	if !r.S3.Reachable {
		warn("S3 endpoint %s not reachable", eps.S3Endpoint)
	}
	return r
}

// sameMajorMinor reports whether versions a and b agree in "X.Y".
func sameMajorMinor(a, b string) bool {
	mm := func(v string) string {
		parts := strings.SplitN(v, ".", 3)
		if len(parts) < 2 {
			return v
		}
		return parts[0] + "." + parts[1]
	}
	return mm(a) == mm(b)
}

// checkMatmul multiplies two n×n matrices of ones on the CPU through gotch,
// checks the result (every entry is n) and reports the speed of the fastest
// of five products after a warm-up one.
func checkMatmul(n int) matmulCheck {
	res := matmulCheck{Size: n}
	err := torchrt.Run(func() error {
		size := []int64{int64(n), int64(n)}
		a, err := ts.Ones(size, gotch.Float, gotch.CPU)
		if err != nil {
			return err
		}
		defer a.MustDrop()
		var best time.Duration
		for i := 0; i < 6; i++ {
			start := time.Now()
			p, err := a.Matmul(a, false)
			if d := time.Since(start); i > 0 && (best == 0 || d < best) {
				best = d
			}
			if err != nil {
				return err
			}
			v, err := p.Float64Value([]int64{int64(n - 1), 0})
			p.MustDrop()
			if err != nil {
				return err
			}
			if v != float64(n) {
				return fmt.Errorf("ones(%d,%d)·ones(%d,%d) gave %g, want %d", n, n, n, n, v, n)
			}
		}
		if s := best.Seconds(); s > 0 {
			res.GFLOPS = 2 * float64(n) * float64(n) * float64(n) / s / 1e9
		}
		return nil
	})
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// dialTCP reports whether a TCP connection to addr opens within timeout.
func dialTCP(ctx context.Context, addr string, timeout time.Duration) endpointCheck {
	c := endpointCheck{Address: addr}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	conn.Close()
	c.Reachable = true
	return c
}

// getHTTP reports whether an HTTP GET of url gets any response within
// timeout (an S3 endpoint answers an anonymous GET with an error status,
// which still proves it is there).
func getHTTP(ctx context.Context, url string, timeout time.Duration) endpointCheck {
	c := endpointCheck{Address: url}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c.Reachable = true
	return c
}

// printDoctor writes the report as aligned text.
func printDoctor(w io.Writer, r doctorReport) {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	reach := func(c endpointCheck) string {
		if c.Reachable {
			return c.Address + ": reachable"
		}
		return fmt.Sprintf("%s: not reachable (%s)", c.Address, c.Error)
	}
	compat := "none"
	if r.CompatHeader != "" {
		compat = "deploy/libtorch/compat.h (" + r.CompatHeader + ")"
	}
	blas := r.BLAS.Name
	if r.BLAS.Path != "" {
		blas += " (" + r.BLAS.Path + ")"
	}
	matmul := fmt.Sprintf("%d×%d ok, %.1f GFLOP/s", r.Matmul.Size, r.Matmul.Size, r.Matmul.GFLOPS)
	if r.Matmul.Error != "" {
		matmul = "FAILED: " + r.Matmul.Error
	}
	rows := [][2]string{
		{"go", r.GoVersion + " " + r.Platform},
		{"gotch", r.Gotch},
		{"libtorch", fmt.Sprintf("%s (headers), %s (loaded)", r.Libtorch, r.LibtorchRuntime)},
		{"compat header", compat},
		{"threads", fmt.Sprint(r.Threads)},
		{"BLAS", blas},
		{"CUDA", fmt.Sprintf("available %s, %d device(s)", yes(r.CUDA.Available), r.CUDA.Devices)},
		{"device", r.Device},
		{"matmul", matmul},
		{"temporal", reach(r.Temporal)},
		{"s3", reach(r.S3)},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%-14s %s\n", row[0], row[1])
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", s)
	}
	for _, s := range r.Problems {
		fmt.Fprintf(w, "ERROR: %s\n", s)
	}
	if runtime.GOOS == "linux" && r.BLAS.Name == torchrt.BLASReference {
		fmt.Fprintln(w, "fix: sudo apt-get install --no-install-recommends libopenblas0-pthread")
	}
}
