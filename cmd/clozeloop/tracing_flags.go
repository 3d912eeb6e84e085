package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/clozeloop/clozeloop/tracing"
)

// tracingFlags adds --otlp-endpoint to fs, with the standard
// OTEL_EXPORTER_OTLP_ENDPOINT as its default.
func tracingFlags(fs *flag.FlagSet) *string {
	return fs.String("otlp-endpoint", os.Getenv(tracing.EnvEndpoint),
		"send OpenTelemetry traces (Temporal calls, workflows, activities, hook requests) to this OTLP/HTTP collector `URL`, e.g. http://127.0.0.1:4318; headers from OTEL_EXPORTER_OTLP_HEADERS (env "+tracing.EnvEndpoint+"; empty: no tracing)")
}

// startTracing starts the tracer of a serving command (nil without an
// endpoint) and returns it with a stop function that flushes it.
func startTracing(ctx context.Context, env *cmdEnv, endpoint string, o tracing.Options) (*tracing.Tracer, func(), error) {
	o.Endpoint = endpoint
	t, err := tracing.Start(ctx, o)
	if err != nil {
		return nil, nil, usagef("--otlp-endpoint: %v", err)
	}
	if t != nil {
		env.log.Info("tracing", "otlp_endpoint", endpoint, "service", o.Service)
	}
	return t, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.Shutdown(sctx); err != nil {
			env.log.Warn("flush traces", "err", err)
		}
	}, nil
}
