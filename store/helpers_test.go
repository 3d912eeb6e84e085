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
	srv *s3embed.Server
	rec *recorder
	cfg store.Config
	st  *store.Store
}

// newEnv starts an embedded server on a free loopback port and opens a store
// on it through the real SDK client. mw, if set, wraps the server handler
// inside the recorder.
func newEnv(t *testing.T, mw func(http.Handler) http.Handler, mod func(*store.Config)) *env {
	t.Helper()
	ctx := context.Background()
	rec := &recorder{}
	chain := rec.middleware
	if mw != nil {
		chain = func(h http.Handler) http.Handler { return rec.middleware(mw(h)) }
	}
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", t.TempDir(), s3embed.WithMiddleware(chain))
	if err != nil {
		t.Fatalf("start embedded s3: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close embedded s3: %v", err)
		}
	})
	cfg := store.Config{
		Endpoint:        srv.Endpoint(),
		Region:          s3embed.Region,
		Bucket:          srv.Bucket(),
		PathStyle:       true,
		AccessKeyID:     srv.Credentials().AccessKeyID,
		SecretAccessKey: srv.Credentials().SecretAccessKey,
		MaxBackoff:      20 * time.Millisecond,
		TempDir:         t.TempDir(),
	}
	if mod != nil {
		mod(&cfg)
	}
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return &env{srv: srv, rec: rec, cfg: cfg, st: st}
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
