// Package workers wires clozeloop's workflows and activities to Temporal
// task queues: "default" (clozeloop-default: workflows and CPU activities)
// and "gpu" (clozeloop-gpu: fine-tuning and adaptation), in one process or
// several.
package workers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/workflows"
)

// ClientOptions say how to reach Temporal (a local dev server or Temporal
// Cloud).
type ClientOptions struct {
	Address   string `json:"address"`
	Namespace string `json:"namespace"`
	// TLSCert and TLSKey are a client certificate (mTLS) in PEM files;
	// TLSCA verifies the server; TLSServerName overrides the name checked.
	TLSCert, TLSKey, TLSCA, TLSServerName string
	// APIKey authenticates to Temporal Cloud (implies TLS).
	APIKey   string `json:"-"`
	Identity string `json:"identity"`
	// MetricsHandler, when set, receives the SDK's metrics (see package
	// metrics).
	MetricsHandler client.MetricsHandler `json:"-"`
	// Interceptors, when set, wrap the client's calls and the workers it
	// runs (see package tracing).
	Interceptors []interceptor.ClientInterceptor `json:"-"`
}

// ClientOptionsFromEnv reads CLOZELOOP_TEMPORAL_ADDRESS (default
// 127.0.0.1:7233), CLOZELOOP_TEMPORAL_NAMESPACE (default "default"),
// CLOZELOOP_TEMPORAL_TLS_CERT, _TLS_KEY, _TLS_CA, _TLS_SERVER_NAME,
// _API_KEY and _IDENTITY.
func ClientOptionsFromEnv() ClientOptions {
	get := func(name, def string) string {
		if v := os.Getenv("CLOZELOOP_TEMPORAL_" + name); v != "" {
			return v
		}
		return def
	}
	return ClientOptions{
		Address: get("ADDRESS", "127.0.0.1:7233"), Namespace: get("NAMESPACE", "default"),
		TLSCert: get("TLS_CERT", ""), TLSKey: get("TLS_KEY", ""), TLSCA: get("TLS_CA", ""),
		TLSServerName: get("TLS_SERVER_NAME", ""), APIKey: get("API_KEY", ""), Identity: get("IDENTITY", ""),
	}
}

// Dial connects a Temporal client.
func Dial(ctx context.Context, o ClientOptions, logger *slog.Logger) (client.Client, error) {
	if logger == nil {
		logger = slog.Default()
	}
	opts := client.Options{HostPort: o.Address, Namespace: o.Namespace, Identity: o.Identity, Logger: sdklog.NewStructuredLogger(logger),
		MetricsHandler: o.MetricsHandler, Interceptors: o.Interceptors}
	tlsCfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	opts.ConnectionOptions.TLS = tlsCfg
	if o.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(o.APIKey)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", o.Address, o.Namespace, err)
	}
	return c, nil
}

func tlsConfig(o ClientOptions) (*tls.Config, error) {
	if o.TLSCert == "" && o.TLSKey == "" && o.TLSCA == "" && o.APIKey == "" {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: o.TLSServerName, MinVersion: tls.VersionTLS12}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("TLS client certificate and key must be given together")
	}
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS client certificate %s / %s: %w", o.TLSCert, o.TLSKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA %s: %w", o.TLSCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s holds no PEM certificate", o.TLSCA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Options configure the workers of one process.
type Options struct {
	// Queues is any of "default" and "gpu".
	Queues []string
	// MaxConcurrentFineTunes bounds fine-tunes at once on the GPU queue,
	// normally the number of GPUs (default 1).
	MaxConcurrentFineTunes int
	// StopTimeout is how long a stopping worker lets running activities
	// finish and heartbeat their progress (default 30s).
	StopTimeout time.Duration
	// Identity names this worker in the Temporal UI.
	Identity string
	// MaxHeartbeatThrottleInterval bounds how long the SDK holds back an
	// activity heartbeat (and so how stale the resumable checkpoint the
	// server knows of can be); 0 keeps the SDK default (60s, or 80% of the
	// heartbeat timeout when smaller).
	MaxHeartbeatThrottleInterval time.Duration
	// Versioning puts the workers in a Worker Deployment Version (see
	// Versioning); the zero value runs them unversioned.
	Versioning Versioning
}

// ParseQueues reads "default,gpu" style lists.
func ParseQueues(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, q := range strings.Split(s, ",") {
		q = strings.TrimSpace(q)
		if q == "" {
			continue
		}
		if q != "default" && q != "gpu" {
			return nil, fmt.Errorf("unknown queue %q: want default, gpu or both (default,gpu)", q)
		}
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no queue given: want default, gpu or both (default,gpu)")
	}
	return out, nil
}

// New creates (but does not start) one worker per queue.
func New(c client.Client, acts *activities.Activities, o Options) ([]worker.Worker, error) {
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.MaxConcurrentFineTunes <= 0 {
		o.MaxConcurrentFineTunes = 1
	}
	if err := o.Versioning.Validate(); err != nil {
		return nil, err
	}
	var ws []worker.Worker
	for _, q := range o.Queues {
		switch q {
		case "default":
			w := worker.New(c, workflows.DefaultTaskQueue, worker.Options{WorkerStopTimeout: o.StopTimeout, Identity: o.Identity,
				MaxHeartbeatThrottleInterval: o.MaxHeartbeatThrottleInterval, DeploymentOptions: o.Versioning.deploymentOptions()})
			RegisterDefault(w, acts)
			ws = append(ws, w)
		case "gpu":
			w := worker.New(c, workflows.GPUTaskQueue, worker.Options{
				WorkerStopTimeout:                  o.StopTimeout,
				MaxConcurrentActivityExecutionSize: o.MaxConcurrentFineTunes,
				Identity:                           o.Identity,
				MaxHeartbeatThrottleInterval:       o.MaxHeartbeatThrottleInterval,
				DeploymentOptions:                  o.Versioning.deploymentOptions(),
			})
			RegisterGPU(w, acts)
			ws = append(ws, w)
		default:
			return nil, fmt.Errorf("unknown queue %q", q)
		}
	}
	return ws, nil
}

// RegisterDefault registers the workflows and the CPU activities.
func RegisterDefault(r worker.Registry, acts *activities.Activities) {
	r.RegisterWorkflowWithOptions(workflows.ActiveLearning, workflow.RegisterOptions{Name: workflows.ActiveLearningName})
	r.RegisterWorkflowWithOptions(workflows.Retrain, workflow.RegisterOptions{Name: workflows.RetrainName})
	r.RegisterActivityWithOptions(acts.ScoreShard, activity.RegisterOptions{Name: workflows.ActivityScoreShard})
	r.RegisterActivityWithOptions(acts.PersistLabels, activity.RegisterOptions{Name: workflows.ActivityPersistLabels})
	r.RegisterActivityWithOptions(acts.Evaluate, activity.RegisterOptions{Name: workflows.ActivityEvaluate})
	r.RegisterActivityWithOptions(acts.UploadCheckpoint, activity.RegisterOptions{Name: workflows.ActivityUploadCheckpoint})
	r.RegisterActivityWithOptions(acts.ResolveRun, activity.RegisterOptions{Name: workflows.ActivityResolveRun})
}

// RegisterGPU registers the GPU activities: fine-tuning and adaptation.
func RegisterGPU(r worker.Registry, acts *activities.Activities) {
	r.RegisterActivityWithOptions(acts.FineTune, activity.RegisterOptions{Name: workflows.ActivityFineTune})
	r.RegisterActivityWithOptions(acts.Adapt, activity.RegisterOptions{Name: workflows.ActivityAdapt})
}

// Run starts the workers and blocks until ctx ends, then stops them
// gracefully (each waits up to StopTimeout for running activities).
func Run(ctx context.Context, c client.Client, acts *activities.Activities, o Options, logger *slog.Logger) error {
	ws, err := New(c, acts, o)
	if err != nil {
		return err
	}
	for i, w := range ws {
		if err := w.Start(); err != nil {
			for _, started := range ws[:i] {
				started.Stop()
			}
			return fmt.Errorf("start worker for queue %s: %w", o.Queues[i], err)
		}
	}
	logger.Info("workers running", "queues", o.Queues, "max_concurrent_fine_tunes", o.MaxConcurrentFineTunes,
		"version", o.Versioning.String())
	<-ctx.Done()
	logger.Info("stopping workers", "timeout", o.StopTimeout)
	for _, w := range ws {
		w.Stop()
	}
	return nil
}
