package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/config"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/tracing"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workers/engine"
)

// clientFlags adds the Temporal connection flags (defaults from the
// CLOZELOOP_TEMPORAL_* environment) to fs.
func clientFlags(fs *flag.FlagSet) *workers.ClientOptions {
	o := workers.ClientOptionsFromEnv()
	fs.StringVar(&o.Address, "address", o.Address, "Temporal frontend host:port (env CLOZELOOP_TEMPORAL_ADDRESS)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "Temporal namespace (env CLOZELOOP_TEMPORAL_NAMESPACE)")
	fs.StringVar(&o.TLSCert, "tls-cert", o.TLSCert, "TLS client certificate PEM (env CLOZELOOP_TEMPORAL_TLS_CERT)")
	fs.StringVar(&o.TLSKey, "tls-key", o.TLSKey, "TLS client key PEM (env CLOZELOOP_TEMPORAL_TLS_KEY)")
	fs.StringVar(&o.TLSCA, "tls-ca", o.TLSCA, "TLS CA PEM to verify the server (env CLOZELOOP_TEMPORAL_TLS_CA)")
	fs.StringVar(&o.TLSServerName, "tls-server-name", o.TLSServerName, "TLS server name override (env CLOZELOOP_TEMPORAL_TLS_SERVER_NAME)")
	fs.StringVar(&o.APIKey, "api-key", o.APIKey, "Temporal Cloud API key (env CLOZELOOP_TEMPORAL_API_KEY)")
	fs.StringVar(&o.Identity, "identity", o.Identity, "client/worker identity (env CLOZELOOP_TEMPORAL_IDENTITY)")
	return &o
}

// engineSettings say where the worker's model engine finds the object
// store and keeps its local files.
type engineSettings struct {
	store    store.Config
	cacheDir string
	runtime  config.Runtime
}

// engineSettingsFromEnv reads CLOZELOOP_S3_*, CLOZELOOP_CACHE_DIR (default
// <user cache dir>/clozeloop), CLOZELOOP_DEVICE and CLOZELOOP_THREADS.
func engineSettingsFromEnv() (engineSettings, error) {
	var s engineSettings
	var err error
	if s.store, err = store.ConfigFromEnv(); err != nil {
		return s, err
	}
	if s.runtime, err = config.RuntimeFromEnv(os.Getenv); err != nil {
		return s, err
	}
	s.cacheDir = os.Getenv("CLOZELOOP_CACHE_DIR")
	if s.cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		s.cacheDir = filepath.Join(base, "clozeloop")
	}
	return s, nil
}

// register adds the engine flags to fs, with s's values as defaults.
func (s *engineSettings) register(fs *flag.FlagSet) {
	fs.StringVar(&s.store.Endpoint, "s3-endpoint", s.store.Endpoint, "S3 endpoint URL; empty means AWS S3 (env "+store.EnvEndpoint+")")
	fs.StringVar(&s.store.Bucket, "s3-bucket", s.store.Bucket, "S3 bucket holding models, pools and runs (env "+store.EnvBucket+")")
	fs.StringVar(&s.store.Prefix, "s3-prefix", s.store.Prefix, "key prefix inside the bucket (env "+store.EnvPrefix+")")
	fs.StringVar(&s.store.Region, "s3-region", s.store.Region, "S3 signing region (env "+store.EnvRegion+")")
	fs.BoolVar(&s.store.PathStyle, "s3-path-style", s.store.PathStyle, "path-style S3 URLs, for MinIO and most S3-compatible servers (env "+store.EnvPathStyle+")")
	fs.StringVar(&s.cacheDir, "cache-dir", s.cacheDir, "local folder for downloaded models and fine-tuning checkpoints (env CLOZELOOP_CACHE_DIR)")
	s.runtime.RegisterFlags(fs)
}

// newActivities builds the activities' dependencies (object store and
// model engine) from the environment.
func newActivities(ctx context.Context, env *cmdEnv) (*activities.Activities, error) {
	s, err := engineSettingsFromEnv()
	if err != nil {
		return nil, err
	}
	return newActivitiesWith(ctx, env, s)
}

// newActivitiesWith builds the activities from s.
func newActivitiesWith(ctx context.Context, env *cmdEnv, s engineSettings) (*activities.Activities, error) {
	if err := s.runtime.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return engine.NewActivities(ctx, engine.Options{StoreConfig: s.store, CacheDir: s.cacheDir,
		Device: s.runtime.Device.String(), Threads: s.runtime.Threads, Logger: env.log})
}

func workerCmd() command {
	return command{
		name:    "worker",
		summary: "run Temporal workers for the default (CPU) and/or gpu task queues",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "worker", "[--queues default,gpu] [--gpus N] [--build-id ID [--deployment NAME]] [--s3-bucket B ...] [--cache-dir DIR] [--device D] [client flags]")
			co := clientFlags(fs)
			es, err := engineSettingsFromEnv()
			if err != nil {
				return err
			}
			es.register(fs)
			queues := fs.String("queues", "default,gpu", "task queues to serve: default, gpu or default,gpu")
			gpus := fs.Int("gpus", 1, "fine-tunes run at once on the gpu queue (number of GPUs)")
			stop := fs.Duration("stop-timeout", 30*time.Second, "on shutdown, how long running activities may finish and heartbeat")
			throttle := fs.Duration("heartbeat-throttle", 0, "send activity heartbeats (and so the last resumable checkpoint) at least this often (0: the SDK default, 60s or 80% of the heartbeat timeout)")
			var ver workers.Versioning
			fs.StringVar(&ver.BuildID, "build-id", os.Getenv("CLOZELOOP_BUILD_ID"), "join Temporal worker versioning with this build id (image tag or git commit): runs started by this build finish each round on it (env CLOZELOOP_BUILD_ID; empty: unversioned)")
			fs.StringVar(&ver.Deployment, "deployment", envOr("CLOZELOOP_DEPLOYMENT", workers.DefaultDeployment), "Temporal worker deployment the build id belongs to (env CLOZELOOP_DEPLOYMENT)")
			mf := metricsFlags(fs)
			otlp := tracingFlags(fs)
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if err := ver.Validate(); err != nil {
				return usagef("%v", err)
			}
			qs, err := workers.ParseQueues(*queues)
			if err != nil {
				return usagef("%v", err)
			}
			if *gpus < 1 {
				return usagef("--gpus must be at least 1")
			}
			reg, stopMetrics, err := mf.start(env)
			if err != nil {
				return err
			}
			defer stopMetrics()
			if reg != nil {
				es.store.HTTPClient = &http.Client{Transport: reg.S3Transport(nil)}
				co.MetricsHandler = reg.Temporal()
			}
			tr, stopTracing, err := startTracing(ctx, env, *otlp, tracing.Options{Service: "clozeloop-worker", Instance: co.Identity, Version: ver.BuildID})
			if err != nil {
				return err
			}
			defer stopTracing()
			if co.Interceptors, err = tr.Interceptors(); err != nil {
				return err
			}
			acts, err := newActivitiesWith(ctx, env, es)
			if err != nil {
				return err
			}
			if reg != nil {
				acts.Observer = reg
			}
			c, err := workers.Dial(ctx, *co, env.log)
			if err != nil {
				return err
			}
			defer c.Close()
			return workers.Run(ctx, c, acts, workers.Options{Queues: qs, MaxConcurrentFineTunes: *gpus, StopTimeout: *stop, Identity: co.Identity,
				MaxHeartbeatThrottleInterval: *throttle, Versioning: ver}, env.log)
		},
	}
}
