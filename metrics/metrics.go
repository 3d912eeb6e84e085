// Package metrics holds one process's Prometheus metrics: clozeloop's own
// (pool scoring, training, evaluation, labels, S3 traffic) and the Temporal
// SDK's (through its tally integration, with Prometheus naming), in one
// registry served in the Prometheus text format by Handler and Serve.
//
// The metric names are listed in Names; deploy/'s Grafana dashboard may
// query only those (and the SDK's temporal_* metrics), which a test checks.
package metrics

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Names of clozeloop's own metrics.
const (
	ItemsScored      = "clozeloop_items_scored_total"
	ScoreSeconds     = "clozeloop_score_seconds_total"
	ScoreItemsPerSec = "clozeloop_score_items_per_second"
	TrainSteps       = "clozeloop_train_steps_total"
	TrainTokens      = "clozeloop_train_tokens_total"
	TrainTokensPerS  = "clozeloop_train_tokens_per_second"
	TrainLoss        = "clozeloop_train_loss"
	EvalMetric       = "clozeloop_eval_metric"
	Labels           = "clozeloop_label_submissions_total"
	RoundPhase       = "clozeloop_round_phase_seconds"
	S3Requests       = "clozeloop_s3_requests_total"
	S3Bytes          = "clozeloop_s3_bytes_total"
	S3Errors         = "clozeloop_s3_errors_total"
)

// Names returns every metric name clozeloop itself defines, with its
// labels. RoundPhase is recorded by the workflow through the Temporal SDK's
// metrics handler (a histogram: _bucket, _sum and _count series).
func Names() map[string][]string {
	return map[string][]string{
		ItemsScored:      nil,
		ScoreSeconds:     nil,
		ScoreItemsPerSec: nil,
		TrainSteps:       {"kind"},
		TrainTokens:      {"kind"},
		TrainTokensPerS:  {"kind"},
		TrainLoss:        {"kind"},
		EvalMetric:       {"set", "metric"},
		Labels:           {"result", "reason"},
		RoundPhase:       {"phase"},
		S3Requests:       {"method"},
		S3Bytes:          {"direction"},
		S3Errors:         {"method", "kind"},
	}
}

// timerBuckets are the histogram buckets of the SDK's timers, in seconds:
// from request latencies (milliseconds) to a round's wait for annotators
// (days).
func timerBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400}
}

// Registry is one process's metrics. Its methods are safe for concurrent
// use; a nil *Registry records nothing, so callers need no checks.
type Registry struct {
	reg      *prometheus.Registry
	temporal client.MetricsHandler
	closer   io.Closer

	itemsScored  prometheus.Counter
	scoreSeconds prometheus.Counter
	scoreRate    prometheus.Gauge
	trainSteps   *prometheus.CounterVec
	trainTokens  *prometheus.CounterVec
	trainRate    *prometheus.GaugeVec
	trainLoss    *prometheus.GaugeVec
	eval         *prometheus.GaugeVec
	labels       *prometheus.CounterVec
	s3Requests   *prometheus.CounterVec
	s3Bytes      *prometheus.CounterVec
	s3Errors     *prometheus.CounterVec
}

// New makes a registry with clozeloop's metrics, the Go runtime's and the
// process's, and a Temporal SDK metrics handler that reports into it
// (pass Temporal() as client.Options.MetricsHandler). Close it when done.
func New(logger *slog.Logger) (*Registry, error) {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Registry{reg: prometheus.NewRegistry()}
	labels := Names()
	r.itemsScored = prometheus.NewCounter(prometheus.CounterOpts{Name: ItemsScored,
		Help: "Pool items scored by this worker (shards whose scores were already stored are not counted)."})
	r.scoreSeconds = prometheus.NewCounter(prometheus.CounterOpts{Name: ScoreSeconds,
		Help: "Seconds spent scoring pool shards; rate(items)/rate(seconds) is the scoring throughput."})
	r.scoreRate = prometheus.NewGauge(prometheus.GaugeOpts{Name: ScoreItemsPerSec,
		Help: "Items per second of the last scored shard."})
	r.trainSteps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: TrainSteps,
		Help: "Optimizer steps done, by kind (finetune, adapt)."}, labels[TrainSteps])
	r.trainTokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: TrainTokens,
		Help: "Input tokens trained on, by kind (finetune, adapt)."}, labels[TrainTokens])
	r.trainRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: TrainTokensPerS,
		Help: "Training throughput of the running or last training activity, tokens per second."}, labels[TrainTokensPerS])
	r.trainLoss = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: TrainLoss,
		Help: "Training loss of the last reported step."}, labels[TrainLoss])
	r.eval = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: EvalMetric,
		Help: "Metrics of the last evaluation, by set (eval, forgetting) and metric (top1, top5, mrr, gold_nll, ...)."}, labels[EvalMetric])
	r.labels = prometheus.NewCounterVec(prometheus.CounterOpts{Name: Labels,
		Help: "Label submissions to the hook, accepted or refused, by reason."}, labels[Labels])
	r.s3Requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: S3Requests,
		Help: "HTTP requests to the S3 store, by method."}, labels[S3Requests])
	r.s3Bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: S3Bytes,
		Help: "Bytes sent to (request bodies) and received from (response bodies) the S3 store."}, labels[S3Bytes])
	r.s3Errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: S3Errors,
		Help: "Failed S3 requests, by method and kind (transport, 4xx, 5xx)."}, labels[S3Errors])
	for _, c := range []prometheus.Collector{
		r.itemsScored, r.scoreSeconds, r.scoreRate, r.trainSteps, r.trainTokens, r.trainRate, r.trainLoss,
		r.eval, r.labels, r.s3Requests, r.s3Bytes, r.s3Errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := r.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	// Error series exist from the start, at zero, so that dashboards and
	// alerts see them before the first failure.
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete} {
		for _, k := range []string{"transport", "4xx", "5xx"} {
			r.s3Errors.WithLabelValues(m, k)
		}
	}
	// The SDK's metrics go through tally into the same registry; timers
	// become Prometheus histograms in seconds.
	// (tallyprom.Configuration is not used: it registers a handler on
	// http.DefaultServeMux.)
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              r.reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: timerBuckets(),
		OnRegisterError:         func(err error) { logger.Warn("temporal metric not exported", "err", err) },
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	r.temporal = sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
	r.closer = closer
	return r, nil
}

// Close stops the Temporal metrics' reporting loop.
func (r *Registry) Close() error {
	if r == nil || r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Temporal is the handler to give the Temporal client
// (client.Options.MetricsHandler); nil for a nil registry.
func (r *Registry) Temporal() client.MetricsHandler {
	if r == nil {
		return nil
	}
	return r.temporal
}

// Handler serves the registry in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Scored records a scored shard of n items that took d.
func (r *Registry) Scored(n int, d time.Duration) {
	if r == nil || n <= 0 {
		return
	}
	r.itemsScored.Add(float64(n))
	r.scoreSeconds.Add(d.Seconds())
	if s := d.Seconds(); s > 0 {
		r.scoreRate.Set(float64(n) / s)
	}
}

// Trained records training progress of the given kind ("finetune",
// "adapt"): steps and tokens done since the last report, the latest loss and
// throughput.
func (r *Registry) Trained(kind string, steps int, tokens int64, loss, tokensPerSec float64) {
	if r == nil {
		return
	}
	if steps > 0 {
		r.trainSteps.WithLabelValues(kind).Add(float64(steps))
	}
	if tokens > 0 {
		r.trainTokens.WithLabelValues(kind).Add(float64(tokens))
	}
	if tokensPerSec > 0 {
		r.trainRate.WithLabelValues(kind).Set(tokensPerSec)
	}
	r.trainLoss.WithLabelValues(kind).Set(loss)
}

// Evaluated records an evaluation's metrics on set ("eval", "forgetting").
func (r *Registry) Evaluated(set string, m map[string]float64) {
	if r == nil {
		return
	}
	for k, v := range m {
		r.eval.WithLabelValues(set, k).Set(v)
	}
}

// LabelSubmission records a label submission to the hook: accepted, or
// refused for reason (a short fixed word, see hook).
func (r *Registry) LabelSubmission(accepted bool, reason string) {
	if r == nil {
		return
	}
	result := "refused"
	if accepted {
		result, reason = "accepted", ""
	}
	r.labels.WithLabelValues(result, reason).Inc()
}

// S3Transport wraps base (http.DefaultTransport when nil) so that every
// request through it is counted: requests by method, request and response
// body bytes, and failures (transport errors, 4xx other than 404 and 412,
// which the store expects, and 5xx).
func (r *Registry) S3Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if r == nil {
		return base
	}
	return &countingTransport{base: base, r: r}
}

type countingTransport struct {
	base http.RoundTripper
	r    *Registry
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	method := req.Method
	t.r.s3Requests.WithLabelValues(method).Inc()
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &countingBody{ReadCloser: req.Body, add: t.r.s3Bytes.WithLabelValues("sent")}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.r.s3Errors.WithLabelValues(method, "transport").Inc()
		return resp, err
	}
	switch code := resp.StatusCode; {
	case code >= 500:
		t.r.s3Errors.WithLabelValues(method, "5xx").Inc()
	case code >= 400 && code != http.StatusNotFound && code != http.StatusPreconditionFailed && code != http.StatusNotModified:
		t.r.s3Errors.WithLabelValues(method, strconv.Itoa(code/100)+"xx").Inc()
	}
	if resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, add: t.r.s3Bytes.WithLabelValues("received")}
	}
	return resp, nil
}

// countingBody adds the bytes read through it to a counter.
type countingBody struct {
	io.ReadCloser
	add prometheus.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.add.Add(float64(n))
	}
	return n, err
}

// ErrUnauthenticatedListen is returned by Serve for an address that is not
// loopback when no token is given.
var ErrUnauthenticatedListen = errors.New("metrics: a listen address other than loopback needs a bearer token")
