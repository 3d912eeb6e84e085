package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/hook"
	"github.com/clozeloop/clozeloop/workers"
)

func hookCmd() command {
	return command{
		name:    "hook",
		summary: "serve the annotation page and the /api/v1 HTTP hook for annotators",
		run:     runHook,
	}
}

func runHook(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "hook", "[--addr 127.0.0.1:8080] [--temporal HOST:PORT] [--namespace NS] [--runs ID,ID] [--json]")
	co := workers.ClientOptionsFromEnv()
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the annotation page and API")
	fs.StringVar(&co.Address, "temporal", co.Address, "Temporal frontend host:port (env CLOZELOOP_TEMPORAL_ADDRESS; TLS and API key from CLOZELOOP_TEMPORAL_*)")
	fs.StringVar(&co.Namespace, "namespace", co.Namespace, "Temporal namespace (env CLOZELOOP_TEMPORAL_NAMESPACE)")
	runs := fs.String("runs", "", "comma-separated run ids to serve (default: every open ActiveLearning run)")
	header := fs.String("annotator-header", hook.DefaultAnnotatorHeader, "request header naming the annotator, set by your auth proxy")
	maxBody := fs.Int64("max-body", hook.DefaultMaxBodyBytes, "largest accepted request body in bytes")
	asJSON := fs.Bool("json", false, "print the listen address as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("hook takes no arguments, got %q", fs.Args())
	}
	if *maxBody <= 0 {
		return usagef("--max-body must be positive")
	}
	var ids []string
	for _, id := range strings.Split(*runs, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	c, err := workers.Dial(ctx, co, env.log)
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := hook.New(hook.NewTemporalBackend(c, co.Namespace, ids), hook.Options{
		AnnotatorHeader: *header, MaxBodyBytes: *maxBody, Logger: env.log.With("component", "hook"),
	})
	if err != nil {
		return err
	}
	srv, err := startHTTP(*addr, h, env.log)
	if err != nil {
		return err
	}
	url := "http://" + srv.Addr()
	if *asJSON {
		if err := writeJSON(env.stdout, map[string]string{"addr": srv.Addr(), "url": url, "temporal": co.Address, "namespace": co.Namespace}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.stdout, "annotation page: %s/\nAPI:             %s/api/v1/runs\n", url, url)
	}
	<-ctx.Done()
	return srv.Shutdown(10 * time.Second)
}

// httpServer is a started HTTP server.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
	log  *slog.Logger
}

// startHTTP listens on addr (port 0 picks a free port) and serves h in the
// background.
func startHTTP(addr string, h http.Handler, log *slog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &httpServer{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10},
		ln: ln, done: make(chan error, 1), log: log,
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *httpServer) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting requests and waits up to timeout for running
// ones.
func (s *httpServer) Shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop HTTP server on %s: %w", s.Addr(), err)
	}
	if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("HTTP server on %s: %w", s.Addr(), err)
	}
	return nil
}
