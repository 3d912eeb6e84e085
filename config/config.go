// Package config holds clozeloop's configuration values, their defaults and
// the CLOZELOOP_* environment variables that override them. Command-line
// flags override the environment; the environment overrides the defaults.
package config

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// Environment variables read by this package.
const (
	// EnvDevice selects the compute device: auto, cpu, cuda or cuda:N.
	EnvDevice = "CLOZELOOP_DEVICE"
	// EnvThreads sets libtorch's intra-op thread count.
	EnvThreads = "CLOZELOOP_THREADS"
	// EnvTemporalAddress is the host:port of the Temporal frontend.
	EnvTemporalAddress = "CLOZELOOP_TEMPORAL_ADDRESS"
	// EnvS3Endpoint is the URL of the S3-compatible endpoint.
	EnvS3Endpoint = "CLOZELOOP_S3_ENDPOINT"
)

// Default endpoints of the local development stack.
const (
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultS3Endpoint      = "http://127.0.0.1:9000"
)

// DeviceKind is the kind of compute device.
type DeviceKind string

// Device kinds.
const (
	// DeviceAuto picks CUDA when libtorch sees a CUDA device, else the CPU.
	DeviceAuto DeviceKind = "auto"
	DeviceCPU  DeviceKind = "cpu"
	DeviceCUDA DeviceKind = "cuda"
)

// Device is a compute device as the user names it: "auto", "cpu", "cuda" or
// "cuda:N". The zero value is "auto".
type Device struct {
	Kind DeviceKind
	// Index is the CUDA device number; meaningful only for DeviceCUDA.
	Index int
}

// ParseDevice parses "auto", "cpu", "cuda" or "cuda:N" (N >= 0), ignoring
// case and surrounding space. An empty string means "auto".
func ParseDevice(s string) (Device, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "", string(DeviceAuto):
		return Device{Kind: DeviceAuto}, nil
	case string(DeviceCPU):
		return Device{Kind: DeviceCPU}, nil
	case string(DeviceCUDA):
		return Device{Kind: DeviceCUDA}, nil
	}
	if idx, ok := strings.CutPrefix(t, "cuda:"); ok {
		n, err := strconv.Atoi(idx)
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("parse device %q: CUDA index %q is not a number >= 0", s, idx)
		}
		return Device{Kind: DeviceCUDA, Index: n}, nil
	}
	return Device{}, fmt.Errorf("parse device %q: want auto, cpu, cuda or cuda:N", s)
}

// String returns the device in the form ParseDevice accepts.
func (d Device) String() string {
	switch d.Kind {
	case "", DeviceAuto:
		return string(DeviceAuto)
	case DeviceCUDA:
		if d.Index == 0 {
			return string(DeviceCUDA)
		}
		return fmt.Sprintf("cuda:%d", d.Index)
	}
	return string(d.Kind)
}

// Set implements flag.Value.
func (d *Device) Set(s string) error {
	v, err := ParseDevice(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ErrNoCUDA is returned by Resolve when CUDA is asked for but libtorch sees no
// CUDA device (or not enough of them).
var ErrNoCUDA = errors.New("CUDA device not available")

// Resolve turns "auto" into a concrete device given what libtorch reports
// (torchrt.CUDAInfo): CUDA device 0 when a device exists, else the CPU. An
// explicit CUDA device that does not exist is an error wrapping ErrNoCUDA.
func (d Device) Resolve(cudaAvailable bool, cudaDevices int) (Device, error) {
	switch d.Kind {
	case "", DeviceAuto:
		if cudaAvailable && cudaDevices > 0 {
			return Device{Kind: DeviceCUDA}, nil
		}
		return Device{Kind: DeviceCPU}, nil
	case DeviceCUDA:
		if !cudaAvailable || d.Index >= cudaDevices {
			return Device{}, fmt.Errorf("device %s: libtorch sees %d CUDA device(s): %w", d, cudaDevices, ErrNoCUDA)
		}
	}
	return d, nil
}

// Runtime is how clozeloop runs libtorch: on which device and with how many
// intra-op threads.
type Runtime struct {
	Device  Device
	Threads int
}

// DefaultRuntime returns device "auto" and one libtorch thread per CPU.
// (Debian's libtorch starts with one thread; clozeloop sets this count.)
func DefaultRuntime() Runtime {
	return Runtime{Device: Device{Kind: DeviceAuto}, Threads: runtime.NumCPU()}
}

// RuntimeFromEnv returns DefaultRuntime overridden by CLOZELOOP_DEVICE and
// CLOZELOOP_THREADS as read through getenv (os.Getenv in programs). A set but
// invalid variable is an error naming it.
func RuntimeFromEnv(getenv func(string) string) (Runtime, error) {
	r := DefaultRuntime()
	if s := getenv(EnvDevice); s != "" {
		d, err := ParseDevice(s)
		if err != nil {
			return Runtime{}, fmt.Errorf("%s: %w", EnvDevice, err)
		}
		r.Device = d
	}
	if s := getenv(EnvThreads); s != "" {
		n, err := parseThreads(s)
		if err != nil {
			return Runtime{}, fmt.Errorf("%s: %w", EnvThreads, err)
		}
		r.Threads = n
	}
	return r, nil
}

// RegisterFlags adds --device and --threads to fs, with r's current values as
// defaults; parsing fs then overwrites r.
func (r *Runtime) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(&r.Device, "device", "compute device: auto, cpu, cuda or cuda:N (env "+EnvDevice+")")
	fs.Var((*threadsValue)(&r.Threads), "threads", "libtorch intra-op threads (env "+EnvThreads+"; default: number of CPUs)")
}

// Validate checks r's values.
func (r Runtime) Validate() error {
	if r.Threads < 1 {
		return fmt.Errorf("threads = %d: need at least 1", r.Threads)
	}
	if _, err := ParseDevice(r.Device.String()); err != nil {
		return err
	}
	return nil
}

// threadsValue is a flag.Value for a thread count >= 1.
type threadsValue int

func (v *threadsValue) String() string { return strconv.Itoa(int(*v)) }

func (v *threadsValue) Set(s string) error {
	n, err := parseThreads(s)
	if err != nil {
		return err
	}
	*v = threadsValue(n)
	return nil
}

func parseThreads(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("thread count %q: want a whole number >= 1", s)
	}
	return n, nil
}

// Endpoints are the network services clozeloop talks to.
type Endpoints struct {
	// TemporalAddress is the host:port of the Temporal frontend.
	TemporalAddress string
	// S3Endpoint is the URL of the S3-compatible blob store.
	S3Endpoint string
}

// EndpointsFromEnv returns the development defaults overridden by
// CLOZELOOP_TEMPORAL_ADDRESS and CLOZELOOP_S3_ENDPOINT as read through getenv.
func EndpointsFromEnv(getenv func(string) string) Endpoints {
	e := Endpoints{TemporalAddress: DefaultTemporalAddress, S3Endpoint: DefaultS3Endpoint}
	if s := strings.TrimSpace(getenv(EnvTemporalAddress)); s != "" {
		e.TemporalAddress = s
	}
	if s := strings.TrimSpace(getenv(EnvS3Endpoint)); s != "" {
		e.S3Endpoint = s
	}
	return e
}
