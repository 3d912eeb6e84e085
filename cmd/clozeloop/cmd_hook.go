package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/hook"
	"github.com/clozeloop/clozeloop/internal/listen"
	"github.com/clozeloop/clozeloop/tracing"
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
	fs := newFlagSet(env, "hook", "[--addr 127.0.0.1:8080] [--temporal HOST:PORT] [--namespace NS] [--runs ID,ID] [store flags] [auth flags] [--tls-cert F --tls-key F] [--json]")
	co := workers.ClientOptionsFromEnv()
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the annotation page and API")
	fs.StringVar(&co.Address, "temporal", co.Address, "Temporal frontend host:port (env CLOZELOOP_TEMPORAL_ADDRESS; TLS and API key from CLOZELOOP_TEMPORAL_*)")
	fs.StringVar(&co.Namespace, "namespace", co.Namespace, "Temporal namespace (env CLOZELOOP_TEMPORAL_NAMESPACE)")
	runs := fs.String("runs", "", "comma-separated run ids to serve (default: every open ActiveLearning run)")
	maxBody := fs.Int64("max-body", hook.DefaultMaxBodyBytes, "largest accepted request body in bytes")
	asJSON := fs.Bool("json", false, "print the listen address as JSON")
	open, err := storeFlags(fs)
	if err != nil {
		return err
	}
	af := hookAuthFlags(fs)
	mf := metricsFlags(fs)
	otlp := tracingFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("hook takes no arguments, got %q", fs.Args())
	}
	if *maxBody <= 0 {
		return usagef("--max-body must be positive")
	}
	auth, err := af.options(*addr, fs.Lookup("bucket").Value.String() != "")
	if err != nil {
		return err
	}
	if af.useAccounts {
		st, err := open(ctx, env)
		if err != nil {
			return err
		}
		auth.Accounts = hook.S3Accounts{Store: st, Key: af.accountsKey}
		n, err := hook.ListAccounts(ctx, auth.Accounts)
		if err != nil {
			return fmt.Errorf("read annotator accounts: %w", err)
		}
		if len(n) == 0 {
			env.log.Warn("no annotator accounts yet: every request gets 401 until one is added", "add", "clozeloop annotators add NAME --role annotator|lead|admin")
		}
	}
	var ids []string
	for _, id := range strings.Split(*runs, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	reg, stopMetrics, err := mf.start(env)
	if err != nil {
		return err
	}
	defer stopMetrics()
	co.MetricsHandler = reg.Temporal()
	tr, stopTracing, err := startTracing(ctx, env, *otlp, tracing.Options{Service: "clozeloop-hook", Instance: co.Identity})
	if err != nil {
		return err
	}
	defer stopTracing()
	if co.Interceptors, err = tr.Interceptors(); err != nil {
		return err
	}
	c, err := workers.Dial(ctx, co, env.log)
	if err != nil {
		return err
	}
	defer c.Close()
	hopts := hook.Options{
		AnnotatorHeader: af.header, MaxBodyBytes: *maxBody, Logger: env.log.With("component", "hook"), Auth: auth,
	}
	if reg != nil {
		hopts.Metrics = reg
	}
	h, err := hook.New(hook.NewTemporalBackend(c, co.Namespace, ids), hopts)
	if err != nil {
		return err
	}
	srv, err := startHTTPTLS(*addr, tr.Handler(h), env.log, af.tlsCert, af.tlsKey)
	if err != nil {
		return err
	}
	url := srv.URL()
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

// hookAuth holds the hook command's authentication and TLS flags.
type hookAuth struct {
	noAuth         bool
	header         string
	trustedProxies string
	accountsKey    string
	accountsTTL    time.Duration
	sessionTTL     time.Duration
	secureCookie   bool
	origins        string
	tlsCert        string
	tlsKey         string
	// useAccounts is set by options: the account store must be opened.
	useAccounts bool
}

func hookAuthFlags(fs *flag.FlagSet) *hookAuth {
	a := &hookAuth{}
	fs.BoolVar(&a.noAuth, "no-auth", false, "serve without authentication (refused unless --addr is a loopback address)")
	fs.StringVar(&a.header, "trust-proxy-header", hook.DefaultAnnotatorHeader, "request `header` naming the annotator, trusted only from --trusted-proxies")
	fs.StringVar(&a.trustedProxies, "trusted-proxies", "", "proxy mode: comma-separated `CIDRs` (e.g. 10.0.0.0/8) of the authenticating reverse proxies whose --trust-proxy-header is believed")
	fs.StringVar(&a.accountsKey, "accounts-key", hook.DefaultAccountsKey, "object `key` of the annotator accounts in the store")
	fs.DurationVar(&a.accountsTTL, "accounts-ttl", hook.DefaultAccountsTTL, "reload the accounts this often: a revoked token stops working within it")
	fs.DurationVar(&a.sessionTTL, "session-ttl", hook.DefaultSessionTTL, "how long a page sign-in lasts")
	fs.BoolVar(&a.secureCookie, "secure-cookie", false, "mark the session cookie Secure over plain HTTP too (behind a TLS-terminating proxy)")
	fs.StringVar(&a.origins, "origin", "", "comma-separated extra `origins` (https://label.example.com) accepted for browser requests, when a proxy rewrites Host")
	fs.StringVar(&a.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM, with --tls-key)")
	fs.StringVar(&a.tlsKey, "tls-key", "", "private key `file` (PEM) of --tls-cert")
	return a
}

// options checks the flags against the listen address and returns the
// hook's AuthOptions (without the account store, which the caller opens
// when useAccounts is set). haveBucket says whether a store is configured.
func (a *hookAuth) options(addr string, haveBucket bool) (hook.AuthOptions, error) {
	o := hook.AuthOptions{AccountsTTL: a.accountsTTL, SessionTTL: a.sessionTTL, SecureCookie: a.secureCookie, NoAuth: a.noAuth}
	if (a.tlsCert == "") != (a.tlsKey == "") {
		return o, usagef("--tls-cert and --tls-key go together")
	}
	if strings.TrimSpace(a.header) == "" {
		return o, usagef("--trust-proxy-header must not be empty")
	}
	for _, s := range strings.Split(a.trustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return o, usagef("--trusted-proxies: %v", err)
		}
		o.TrustedProxies = append(o.TrustedProxies, p)
	}
	for _, s := range strings.Split(a.origins, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.AllowedOrigins = append(o.AllowedOrigins, s)
		}
	}
	if a.noAuth {
		if len(o.TrustedProxies) > 0 {
			return o, usagef("--no-auth and --trusted-proxies exclude each other")
		}
		if !listen.Loopback(addr) {
			return o, usagef("--no-auth serves without authentication and is refused on %s: listen on a loopback address (127.0.0.1:PORT) or use accounts", addr)
		}
		return o, nil
	}
	switch {
	case haveBucket:
		a.useAccounts = true
	case len(o.TrustedProxies) == 0:
		return o, usagef("no way to authenticate annotators: give the store holding the accounts (--bucket or CLOZELOOP_S3_BUCKET; create them with clozeloop annotators add), --trusted-proxies for proxy mode, or --no-auth on a loopback address")
	}
	return o, nil
}

// parsePrefix reads a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// httpServer is a started HTTP server.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
	log  *slog.Logger
	tls  bool
}

// startHTTP listens on addr (port 0 picks a free port) and serves h in the
// background.
func startHTTP(addr string, h http.Handler, log *slog.Logger) (*httpServer, error) {
	return startHTTPTLS(addr, h, log, "", "")
}

// startHTTPTLS is startHTTP, serving HTTPS when certFile and keyFile are
// given.
func startHTTPTLS(addr string, h http.Handler, log *slog.Logger, certFile, keyFile string) (*httpServer, error) {
	var tlsCfg *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &httpServer{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, TLSConfig: tlsCfg},
		ln: ln, done: make(chan error, 1), log: log, tls: tlsCfg != nil,
	}
	if !s.tls && !listen.Loopback(addr) {
		log.Warn("serving plain HTTP on a non-loopback address: tokens and session cookies cross the network in clear; use --tls-cert/--tls-key or a TLS-terminating proxy", "addr", addr)
	}
	go func() {
		if s.tls {
			s.done <- s.srv.ServeTLS(ln, "", "")
			return
		}
		s.done <- s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *httpServer) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL (http:// or https://).
func (s *httpServer) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

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
