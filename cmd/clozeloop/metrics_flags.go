package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/metrics"
)

// metricsSettings are the --metrics-* flags of the serving commands.
type metricsSettings struct {
	listen    string
	tokenFile string
}

// metricsFlags adds --metrics-listen and --metrics-token-file to fs, with
// defaults from CLOZELOOP_METRICS_LISTEN and CLOZELOOP_METRICS_TOKEN_FILE.
func metricsFlags(fs *flag.FlagSet) *metricsSettings {
	m := &metricsSettings{listen: os.Getenv("CLOZELOOP_METRICS_LISTEN"), tokenFile: os.Getenv("CLOZELOOP_METRICS_TOKEN_FILE")}
	fs.StringVar(&m.listen, "metrics-listen", m.listen, "serve Prometheus metrics at http://`ADDR`/metrics (e.g. 127.0.0.1:9464; empty: no metrics; env CLOZELOOP_METRICS_LISTEN)")
	fs.StringVar(&m.tokenFile, "metrics-token-file", m.tokenFile, "`file` holding the bearer token scrapers must send; required unless --metrics-listen is loopback (env CLOZELOOP_METRICS_TOKEN_FILE)")
	return m
}

// start makes the registry and serves it; without --metrics-listen it
// returns a nil registry (which records nothing). stop shuts the server.
func (m *metricsSettings) start(env *cmdEnv) (reg *metrics.Registry, stop func(), err error) {
	if m.listen == "" {
		if m.tokenFile != "" {
			return nil, nil, usagef("--metrics-token-file needs --metrics-listen")
		}
		return nil, func() {}, nil
	}
	token := ""
	if m.tokenFile != "" {
		b, err := os.ReadFile(m.tokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read --metrics-token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, nil, usagef("--metrics-token-file %s is empty", m.tokenFile)
		}
	}
	reg, err = metrics.New(env.log)
	if err != nil {
		return nil, nil, err
	}
	srv, err := metrics.Listen(m.listen, token, reg, env.log)
	if err != nil {
		reg.Close()
		return nil, nil, usagef("%v", err)
	}
	return reg, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = reg.Close()
	}, nil
}
