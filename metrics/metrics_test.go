package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/metrics/metricstest"
)

// scrape fetches url (with token, when given) and parses it.
func scrape(t *testing.T, url, token string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	m, err := metricstest.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRegistryRecordsEveryMetric(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Scored(100, 2*time.Second)
	r.Trained("finetune", 3, 480, 2.5, 240)
	r.Evaluated("eval", map[string]float64{"top1": 0.25})
	r.LabelSubmission(true, "")
	r.LabelSubmission(false, "invalid")
	// The workflow's phase timer goes through the Temporal handler.
	r.Temporal().WithTags(map[string]string{"phase": "labeling"}).Timer("clozeloop_round_phase").Record(3 * time.Second)
	r.Temporal().Counter("temporal_test_counter").Inc(2)

	s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if strings.HasSuffix(req.URL.Path, "/broken") {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("0123456789"))
	}))
	defer s3.Close()
	client := &http.Client{Transport: r.S3Transport(nil)}
	for _, path := range []string{"/ok", "/broken"} {
		resp, err := client.Post(s3.URL+path, "application/octet-stream", bytes.NewReader([]byte("abcd")))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	srv, err := Listen("127.0.0.1:0", "", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	var got map[string]float64
	// The tally reporter flushes the SDK's metrics every second.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = scrape(t, srv.URL(), "")
		if got["temporal_test_counter_total"] > 0 && got[RoundPhase] > 0 || time.Now().After(deadline) {
			break
		}
	}
	want := map[string]float64{
		ItemsScored: 100, ScoreSeconds: 2, ScoreItemsPerSec: 50,
		TrainSteps: 3, TrainTokens: 480, TrainTokensPerS: 240, TrainLoss: 2.5,
		EvalMetric: 0.25, Labels: 2, RoundPhase: 1,
		S3Requests: 2, S3Bytes: 2*4 + 10 + 5, // sent "abcd" twice, received "0123456789" and "boom\n"
		S3Errors: 1, "temporal_test_counter_total": 2,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	for name := range Names() {
		if _, ok := want[name]; !ok {
			t.Errorf("metric %s is not checked by this test", name)
		}
	}
}

func TestProtect(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tests := []struct {
		name, method, path, auth string
		token                    string
		want                     int
	}{
		{"no token configured", http.MethodGet, "/metrics", "", "", http.StatusOK},
		{"right token", http.MethodGet, "/metrics", "Bearer s3cret", "s3cret", http.StatusOK},
		{"HEAD", http.MethodHead, "/metrics", "Bearer s3cret", "s3cret", http.StatusOK},
		{"missing token", http.MethodGet, "/metrics", "", "s3cret", http.StatusUnauthorized},
		{"wrong token", http.MethodGet, "/metrics", "Bearer nope", "s3cret", http.StatusUnauthorized},
		{"basic auth is not a bearer token", http.MethodGet, "/metrics", "Basic czNjcmV0", "s3cret", http.StatusUnauthorized},
		{"other path", http.MethodGet, "/debug/pprof/", "", "", http.StatusNotFound},
		{"POST", http.MethodPost, "/metrics", "", "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			req.Header.Set("Origin", "https://evil.example")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			Protect(r.Handler(), tt.token).ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
			if v := rec.Header().Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("CORS header %q", v)
			}
		})
	}
}

func TestListenNeedsTokenOffLoopback(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tests := []struct {
		addr, token string
		refused     bool
	}{
		{"0.0.0.0:0", "", true},
		{":0", "", true},
		{"[::]:0", "", true},
		{"127.0.0.1:0", "", false},
		{"localhost:0", "", false},
		{"0.0.0.0:0", "tok", false},
	}
	for _, tt := range tests {
		srv, err := Listen(tt.addr, tt.token, r, nil)
		if tt.refused {
			if !errors.Is(err, ErrUnauthenticatedListen) {
				t.Errorf("Listen(%q, %q) = %v, want ErrUnauthenticatedListen", tt.addr, tt.token, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Listen(%q, %q): %v", tt.addr, tt.token, err)
			continue
		}
		if tt.token != "" {
			req, _ := http.NewRequest(http.MethodGet, strings.Replace(srv.URL(), "0.0.0.0", "127.0.0.1", 1), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s without token: %s", tt.addr, resp.Status)
			}
		}
		srv.Shutdown(context.Background())
	}
}

// A nil registry records nothing and does not panic: callers need no checks.
func TestNilRegistry(t *testing.T) {
	var r *Registry
	r.Scored(1, time.Second)
	r.Trained("finetune", 1, 1, 1, 1)
	r.Evaluated("eval", map[string]float64{"top1": 1})
	r.LabelSubmission(false, "invalid")
	if r.Temporal() != nil || r.Close() != nil {
		t.Error("nil registry")
	}
	if tr := r.S3Transport(nil); tr != http.DefaultTransport {
		t.Errorf("S3Transport of nil registry = %T", tr)
	}
}
