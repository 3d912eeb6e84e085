package store_test

import (
	"context"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
	"github.com/clozeloop/clozeloop/store/s3test"
)

// request is one request seen by the embedded server.
type request struct {
	Method string
	Path   string // URL path, e.g. /bucket/key
	Query  string
}

// recorder counts requests reaching the embedded server.
type recorder struct {
	mu   sync.Mutex
	reqs []request
}

func (r *recorder) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery})
		r.mu.Unlock()
		next.ServeHTTP(w, req)
	})
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}

// count returns how many requests used method on a path matching match.
func (r *recorder) count(method string, match func(request) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.reqs {
		if q.Method == method && (match == nil || match(q)) {
			n++
		}
	}
	return n
}

type env struct {
	// objectPath is where the server keeps an object's bytes on disk (to
	// corrupt or inspect them behind the server's back).
	objectPath func(bucket, key string) string
	rec        *recorder
	cfg        store.Config
	st         *store.Store
}

// newEnv starts an S3 server on a free loopback port and opens a store on
// it through the real SDK client: the embedded server, or with
// CLOZELOOP_TEST_S3_BACKEND=versitygw a real Versity S3 Gateway process
// (posix backend) behind a recording reverse proxy (package s3test).
// mw, if set, wraps the server handler inside the recorder.
func newEnv(t *testing.T, mw func(http.Handler) http.Handler, mod func(*store.Config)) *env {
	t.Helper()
	ctx := context.Background()
	rec := &recorder{}
	chain := rec.middleware
	if mw != nil {
		chain = func(h http.Handler) http.Handler { return rec.middleware(mw(h)) }
	}
	cfg := store.Config{
		PathStyle:  true,
		MaxBackoff: 20 * time.Millisecond,
		TempDir:    t.TempDir(),
	}
	var objectPath func(bucket, key string) string
	switch backend := os.Getenv("CLOZELOOP_TEST_S3_BACKEND"); backend {
	case "", "embedded":
		srv, err := s3embed.Start(ctx, "127.0.0.1:0", t.TempDir(), s3embed.WithMiddleware(chain))
		if err != nil {
			t.Fatalf("start embedded s3: %v", err)
		}
		t.Cleanup(func() {
			if err := srv.Close(); err != nil {
				t.Errorf("close embedded s3: %v", err)
			}
		})
		cfg.Endpoint, cfg.Region, cfg.Bucket = srv.Endpoint(), s3embed.Region, srv.Bucket()
		cfg.AccessKeyID, cfg.SecretAccessKey = srv.Credentials().AccessKeyID, srv.Credentials().SecretAccessKey
		objectPath = srv.ObjectPath
	case "versitygw":
		gw := s3test.StartVersityGW(t, chain)
		cfg.Endpoint, cfg.Region, cfg.Bucket = gw.Endpoint, gw.Region, gw.Bucket
		cfg.AccessKeyID, cfg.SecretAccessKey = gw.AccessKey, gw.SecretKey
		objectPath = gw.ObjectPath
	default:
		t.Fatalf("CLOZELOOP_TEST_S3_BACKEND=%q: want embedded or versitygw", backend)
	}
	if mod != nil {
		mod(&cfg)
	}
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return &env{objectPath: objectPath, rec: rec, cfg: cfg, st: st}
}

// randomBytes returns n pseudo-random bytes (fast; not for secrets).
func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func isPartUpload(q request) bool { return strings.Contains(q.Query, "partNumber=") }

// hookTransport lets a test intercept request and response bodies on the
// client side.
type hookTransport struct {
	base http.RoundTripper
	req  func(*http.Request)
	resp func(*http.Request, *http.Response)
}

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.req != nil {
		h.req(r)
	}
	resp, err := h.base.RoundTrip(r)
	if err == nil && h.resp != nil {
		h.resp(r, resp)
	}
	return resp, err
}

// cancelAfter reads through r and calls cancel once more than n bytes went
// past, then fails like a cancelled transfer.
type cancelAfter struct {
	r      io.ReadCloser
	n      int64
	cancel context.CancelFunc
	read   int64
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.read > c.n {
		c.cancel()
		return 0, context.Canceled
	}
	k, err := c.r.Read(p)
	c.read += int64(k)
	return k, err
}

func (c *cancelAfter) Close() error { return c.r.Close() }
