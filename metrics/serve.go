package metrics

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/internal/listen"
)

// Server serves a registry at /metrics on its own listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen starts serving r at http://addr/metrics. An address that is not
// loopback needs token: scrapers then send "Authorization: Bearer <token>"
// (Prometheus: authorization.credentials_file); without one it returns
// ErrUnauthenticatedListen; on loopback it is optional. Only GET
// and HEAD of /metrics are answered, with no CORS headers.
func Listen(addr, token string, r *Registry, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if token == "" && !listen.Loopback(addr) {
		return nil, fmt.Errorf("%w: %s (give --metrics-token-file, or listen on 127.0.0.1)", ErrUnauthenticatedListen, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	s := &Server{ln: ln, done: make(chan error, 1)}
	s.srv = &http.Server{Handler: Protect(r.Handler(), token), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	logger.Info("metrics listening", "url", s.URL(), "auth", token != "")
	return s, nil
}

// URL is the metrics URL, e.g. "http://127.0.0.1:9464/metrics".
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/metrics" }

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; err == nil {
		err = serr
	}
	return err
}

// Protect serves h at /metrics only (GET, HEAD) and, with a token, only to
// requests that carry it as a bearer token.
func Protect(h http.Handler, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/metrics" {
			http.NotFound(w, req)
			return
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if token != "" {
			got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
				http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, req)
	})
}
