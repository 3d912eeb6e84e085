package workers

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/workflow"
)

func TestParseQueues(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"default,gpu", "default,gpu", ""},
		{" gpu ", "gpu", ""},
		{"default,default", "default", ""},
		{"cpu", "", "unknown queue"},
		{"", "", "no queue"},
	}
	for _, tc := range tests {
		got, err := ParseQueues(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseQueues(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("ParseQueues(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestModelCache(t *testing.T) {
	var loads atomic.Int32
	var closed []string
	c := &ModelCache[string]{
		Load: func(ctx context.Context, uri string) (string, error) {
			loads.Add(1)
			if uri == "bad" {
				return "", errors.New("corrupt")
			}
			return "model:" + uri, nil
		},
		Close: func(m string) { closed = append(closed, m) },
		Max:   2,
	}
	ctx := context.Background()
	for _, uri := range []string{"a", "a", "b", "a", "c"} {
		m, err := c.Get(ctx, uri)
		if err != nil || m != "model:"+uri {
			t.Fatalf("Get(%s) = %q, %v", uri, m, err)
		}
	}
	if n := loads.Load(); n != 3 {
		t.Errorf("%d loads, want 3", n)
	}
	if len(closed) != 1 || closed[0] != "model:b" {
		t.Errorf("closed %v, want the least recently used model:b", closed)
	}
	if _, err := c.Get(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "load model bad") {
		t.Errorf("bad load error %v", err)
	}
	if _, err := c.Get(ctx, "bad"); err == nil || loads.Load() != 5 {
		t.Errorf("failed loads must not be cached (loads=%d)", loads.Load())
	}
}

func TestTLSConfig(t *testing.T) {
	if cfg, err := tlsConfig(ClientOptions{}); cfg != nil || err != nil {
		t.Errorf("no TLS options: %v, %v", cfg, err)
	}
	if cfg, err := tlsConfig(ClientOptions{APIKey: "k"}); cfg == nil || err != nil {
		t.Errorf("API key implies TLS: %v, %v", cfg, err)
	}
	if _, err := tlsConfig(ClientOptions{TLSCert: "c.pem"}); err == nil {
		t.Error("cert without key accepted")
	}
	if _, err := tlsConfig(ClientOptions{TLSCA: "/nonexistent/ca.pem"}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestModelCacheAcquirePins(t *testing.T) {
	var closed []string
	c := &ModelCache[string]{
		Load:  func(ctx context.Context, uri string) (string, error) { return "model:" + uri, nil },
		Close: func(m string) { closed = append(closed, m) },
		Max:   2,
	}
	ctx := context.Background()
	get := func(uri string) {
		t.Helper()
		if m, err := c.Get(ctx, uri); err != nil || m != "model:"+uri {
			t.Fatalf("Get(%s) = %q, %v", uri, m, err)
		}
	}
	a, releaseA, err := c.Acquire(ctx, "a")
	if err != nil || a != "model:a" {
		t.Fatalf("Acquire(a) = %q, %v", a, err)
	}
	get("b")
	get("c") // over the limit: a is the oldest but in use, so b goes
	if strings.Join(closed, ",") != "model:b" {
		t.Fatalf("closed %v, want model:b (a is pinned)", closed)
	}
	releaseA()
	releaseA() // a second call is harmless
	if len(closed) != 1 {
		t.Fatalf("closed %v after release; a and c fit", closed)
	}
	get("d") // now a, the least recently used, goes
	if strings.Join(closed, ",") != "model:b,model:a" {
		t.Fatalf("closed %v, want model:b,model:a", closed)
	}
}

func TestVersioning(t *testing.T) {
	cases := []struct {
		name    string
		v       Versioning
		wantErr string
		str     string
	}{
		{"unversioned", Versioning{}, "", "unversioned"},
		{"unversioned with the default deployment", Versioning{Deployment: DefaultDeployment}, "", "unversioned"},
		{"release number", Versioning{BuildID: "2026.12.04-1"}, "", "clozeloop:2026.12.04-1"},
		{"dot in deployment", Versioning{Deployment: "team.a", BuildID: "v1"}, "worker deployment", ""},
		{"quote in build id", Versioning{BuildID: "v1'"}, "build id", ""},
		{"git commit", Versioning{BuildID: "15414c8"}, "", "clozeloop:15414c8"},
		{"own deployment", Versioning{Deployment: "team-a", BuildID: "v2"}, "", "team-a:v2"},
		{"deployment without build id", Versioning{Deployment: "team-a"}, "without a build id", ""},
		{"colon in build id", Versioning{BuildID: "a:b"}, "build id", ""},
		{"space in deployment", Versioning{Deployment: "team a", BuildID: "v1"}, "worker deployment", ""},
		{"too long", Versioning{BuildID: strings.Repeat("a", 129)}, "build id", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate() = %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.v.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			opts := tc.v.deploymentOptions()
			if opts.UseVersioning != tc.v.Enabled() {
				t.Errorf("UseVersioning = %v, want %v", opts.UseVersioning, tc.v.Enabled())
			}
			if tc.v.Enabled() && (opts.Version.BuildID != tc.v.BuildID || opts.DefaultVersioningBehavior != workflow.VersioningBehaviorPinned) {
				t.Errorf("deployment options %+v: want pinned workflows on %s", opts, tc.v)
			}
		})
	}
}
