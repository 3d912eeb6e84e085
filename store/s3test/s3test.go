// Package s3test starts real S3 servers for tests: the Versity S3 Gateway
// (github.com/versity/versitygw), an S3-compatible server teams run in
// production, as a separate process with its posix backend. "make test"
// builds a pinned gateway and names it in CLOZELOOP_TEST_VERSITYGW.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// EnvVersityGW names the environment variable holding the gateway binary.
const EnvVersityGW = "CLOZELOOP_TEST_VERSITYGW"

// VersityGWBinary returns the gateway binary: $CLOZELOOP_TEST_VERSITYGW,
// else versitygw on PATH.
func VersityGWBinary() (string, bool) {
	if bin := os.Getenv(EnvVersityGW); bin != "" {
		return bin, true
	}
	bin, err := exec.LookPath("versitygw")
	return bin, err == nil
}

// VersityGW is a running Versity S3 Gateway (github.com/versity/versitygw,
// an S3 server teams run in production) with its posix backend, seen
// through a reverse proxy that applies the test's middleware.
type VersityGW struct {
	// Endpoint is the proxy's URL, Direct the gateway's own.
	Endpoint, Direct     string
	Region, Bucket       string
	AccessKey, SecretKey string
	// Root is the posix backend's folder.
	Root string
}

// ObjectPath is where the posix backend keeps an object: the bucket is a
// folder of Root and the key a path inside it.
func (g *VersityGW) ObjectPath(bucket, key string) string {
	return filepath.Join(g.Root, bucket, filepath.FromSlash(key))
}

// StartVersityGW starts the gateway binary named by CLOZELOOP_TEST_VERSITYGW
// (else versitygw on PATH; "make test" builds it, pinned, into the build
// cache) on a free loopback port with fresh keys and a new bucket, and a
// reverse proxy in front of it whose handler chain is mw. The process is
// stopped when the test ends.
func StartVersityGW(t testing.TB, mw func(http.Handler) http.Handler) *VersityGW {
	t.Helper()
	if mw == nil {
		mw = func(h http.Handler) http.Handler { return h }
	}
	bin, ok := VersityGWBinary()
	if !ok {
		t.Fatalf("no versitygw binary: set %s (make test builds it) or put versitygw on PATH", EnvVersityGW)
	}
	g := &VersityGW{Region: "us-east-1", Bucket: "clozeloop-test", Root: t.TempDir(),
		AccessKey: randomHex(t, 10), SecretKey: randomHex(t, 20)}
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--access", g.AccessKey, "--secret", g.SecretKey, "--region", g.Region,
		"--port", addr, "posix", g.Root)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("versitygw output:\n%s", logs.String())
		}
	})
	direct := "http://" + addr
	// Wait until it answers (an unsigned request gets an S3 error).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(direct + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("versitygw exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not answer on %s: %v\n%s", addr, err, logs.String())
		}
	}

	// The proxy keeps the client's Host header: the gateway checks the
	// SigV4 signature, which covers it.
	target, _ := url.Parse(direct)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	srv := httptest.NewServer(mw(proxy))
	t.Cleanup(srv.Close)
	g.Endpoint, g.Direct = srv.URL, direct

	client := s3.New(s3.Options{Region: g.Region, BaseEndpoint: aws.String(direct), UsePathStyle: true,
		Credentials: aws.NewCredentialsCache(staticCreds{g.AccessKey, g.SecretKey})})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(g.Bucket)}); err != nil {
		t.Fatalf("create bucket on versitygw: %v\n%s", err, logs.String())
	}
	return g
}

type staticCreds struct{ id, secret string }

func (c staticCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: c.id, SecretAccessKey: c.secret, Source: "test"}, nil
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return addr
}
