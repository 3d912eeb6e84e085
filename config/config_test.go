package config

import (
	"errors"
	"flag"
	"io"
	"runtime"
	"testing"
)

func TestParseDevice(t *testing.T) {
	tests := []struct {
		in      string
		want    Device
		str     string
		wantErr bool
	}{
		{in: "", want: Device{Kind: DeviceAuto}, str: "auto"},
		{in: "auto", want: Device{Kind: DeviceAuto}, str: "auto"},
		{in: " CPU ", want: Device{Kind: DeviceCPU}, str: "cpu"},
		{in: "cuda", want: Device{Kind: DeviceCUDA}, str: "cuda"},
		{in: "cuda:0", want: Device{Kind: DeviceCUDA}, str: "cuda"},
		{in: "cuda:3", want: Device{Kind: DeviceCUDA, Index: 3}, str: "cuda:3"},
		{in: "cuda:-1", wantErr: true},
		{in: "cuda:x", wantErr: true},
		{in: "cuda:", wantErr: true},
		{in: "gpu", wantErr: true},
		{in: "mps", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseDevice(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseDevice(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if got != tc.want || got.String() != tc.str {
			t.Errorf("ParseDevice(%q) = %+v (%s), want %+v (%s)", tc.in, got, got, tc.want, tc.str)
		}
	}
}

func TestDeviceResolve(t *testing.T) {
	tests := []struct {
		dev     string
		avail   bool
		count   int
		want    string
		wantErr bool
	}{
		{dev: "auto", want: "cpu"},
		{dev: "auto", avail: true, count: 2, want: "cuda"},
		{dev: "cpu", avail: true, count: 1, want: "cpu"},
		{dev: "cuda", wantErr: true},
		{dev: "cuda:1", avail: true, count: 2, want: "cuda:1"},
		{dev: "cuda:2", avail: true, count: 2, wantErr: true},
	}
	for _, tc := range tests {
		d, err := ParseDevice(tc.dev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Resolve(tc.avail, tc.count)
		if tc.wantErr {
			if !errors.Is(err, ErrNoCUDA) {
				t.Errorf("%s.Resolve(%v, %d) error = %v, want ErrNoCUDA", tc.dev, tc.avail, tc.count, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%s.Resolve(%v, %d) = %s, %v; want %s", tc.dev, tc.avail, tc.count, got, err, tc.want)
		}
	}
}

func TestRuntimeFromEnv(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		wantDevice  string
		wantThreads int
		wantErr     bool
	}{
		{name: "defaults", wantDevice: "auto", wantThreads: runtime.NumCPU()},
		{name: "both", env: map[string]string{EnvDevice: "cuda:1", EnvThreads: "3"}, wantDevice: "cuda:1", wantThreads: 3},
		{name: "bad device", env: map[string]string{EnvDevice: "tpu"}, wantErr: true},
		{name: "zero threads", env: map[string]string{EnvThreads: "0"}, wantErr: true},
		{name: "text threads", env: map[string]string{EnvThreads: "many"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := RuntimeFromEnv(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("RuntimeFromEnv error = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if r.Device.String() != tc.wantDevice || r.Threads != tc.wantThreads {
				t.Errorf("RuntimeFromEnv = %s/%d, want %s/%d", r.Device, r.Threads, tc.wantDevice, tc.wantThreads)
			}
			if err := r.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestRuntimeFlags(t *testing.T) {
	tests := []struct {
		args        []string
		wantDevice  string
		wantThreads int
		wantErr     bool
	}{
		{args: nil, wantDevice: "cpu", wantThreads: 5},
		{args: []string{"--device", "cuda:2", "--threads", "1"}, wantDevice: "cuda:2", wantThreads: 1},
		{args: []string{"--threads", "0"}, wantErr: true},
		{args: []string{"--device", "gpu"}, wantErr: true},
	}
	for _, tc := range tests {
		// Environment values become the flag defaults.
		r := Runtime{Device: Device{Kind: DeviceCPU}, Threads: 5}
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		r.RegisterFlags(fs)
		err := fs.Parse(tc.args)
		if (err != nil) != tc.wantErr {
			t.Errorf("parse %q: error = %v, want error %v", tc.args, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && (r.Device.String() != tc.wantDevice || r.Threads != tc.wantThreads) {
			t.Errorf("parse %q: %s/%d, want %s/%d", tc.args, r.Device, r.Threads, tc.wantDevice, tc.wantThreads)
		}
	}
}

func TestEndpointsFromEnv(t *testing.T) {
	tests := []struct {
		env          map[string]string
		temporal, s3 string
	}{
		{temporal: DefaultTemporalAddress, s3: DefaultS3Endpoint},
		{env: map[string]string{EnvTemporalAddress: "temporal:7233", EnvS3Endpoint: " https://s3.example.com "}, temporal: "temporal:7233", s3: "https://s3.example.com"},
	}
	for _, tc := range tests {
		e := EndpointsFromEnv(func(k string) string { return tc.env[k] })
		if e.TemporalAddress != tc.temporal || e.S3Endpoint != tc.s3 {
			t.Errorf("EndpointsFromEnv(%v) = %+v, want %s %s", tc.env, e, tc.temporal, tc.s3)
		}
	}
}
