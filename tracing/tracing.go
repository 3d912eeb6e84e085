// Package tracing exports OpenTelemetry traces of clozeloop's processes to
// an OTLP/HTTP collector (Jaeger, Tempo, the OpenTelemetry Collector…).
//
// A Tracer gives a Temporal client interceptor, so that starting a run,
// a label submission (signal or update), the workflow that handles it and
// every activity it schedules form one trace across processes, and an HTTP
// middleware for the hook, so that an annotator's request is the root of
// the trace of what it caused. Queries are not traced: the annotation page
// polls them.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// EnvEndpoint is the standard OpenTelemetry variable that the serving
// commands read as their --otlp-endpoint default.
const EnvEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"

// Options configure a Tracer.
type Options struct {
	// Endpoint is the collector's OTLP/HTTP base URL, e.g.
	// http://127.0.0.1:4318; spans go to Endpoint + "/v1/traces". Headers
	// (authentication) come from OTEL_EXPORTER_OTLP_HEADERS, as every
	// OpenTelemetry exporter reads them.
	Endpoint string
	// Service is the resource's service.name, e.g. "clozeloop-worker".
	Service string
	// Instance is service.instance.id (the worker identity, a host name).
	Instance string
	// Version is service.version (the build id).
	Version string
}

// Tracer holds the process's tracer provider.
type Tracer struct {
	tp *sdktrace.TracerProvider
}

// Start makes a Tracer that batches spans to o.Endpoint. Without an
// endpoint it returns nil, and the nil Tracer's methods trace nothing.
func Start(ctx context.Context, o Options) (*Tracer, error) {
	if o.Endpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want an http:// or https:// URL such as http://127.0.0.1:4318", o.Endpoint)
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimSuffix(o.Endpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter for %s: %w", o.Endpoint, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", o.Service)}
	if o.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", o.Instance))
	}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second)),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return &Tracer{tp: tp}, nil
}

// Interceptors returns the Temporal client interceptors that trace
// workflow starts, signals, updates, workflow runs and activities (and,
// on a worker's client, the worker side too); none for a nil Tracer.
func (t *Tracer) Interceptors() ([]interceptor.ClientInterceptor, error) {
	if t == nil {
		return nil, nil
	}
	i, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{
		Tracer:              t.tp.Tracer("go.temporal.io/sdk"),
		TextMapPropagator:   propagation.TraceContext{},
		DisableQueryTracing: true,
		DisableBaggage:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("Temporal tracing interceptor: %w", err)
	}
	return []interceptor.ClientInterceptor{i}, nil
}

// Handler wraps h so that each request is a server span named by its
// method and route pattern. Trace context sent by clients is not trusted:
// every request starts its own trace. A nil Tracer returns h.
func (t *Tracer) Handler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return r.Method
		}))
}

// Shutdown sends the spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}
