package main

import (
	"context"
	"errors"
	"flag"
	"time"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/workers"
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

// errEngineNotWired is returned until the model engine and the object store
// are connected to the activities.
var errEngineNotWired = errors.New("the model engine (mlm/) and object store (store/) are not wired into the worker yet")

// newActivities builds the activities' dependencies from the environment.
func newActivities(ctx context.Context, env *cmdEnv) (*activities.Activities, error) {
	return nil, errEngineNotWired
}

func workerCmd() command {
	return command{
		name:    "worker",
		summary: "run Temporal workers for the default (CPU) and/or gpu task queues",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "worker", "[--queues default,gpu] [--gpus N] [client flags]")
			co := clientFlags(fs)
			queues := fs.String("queues", "default,gpu", "task queues to serve: default, gpu or default,gpu")
			gpus := fs.Int("gpus", 1, "fine-tunes run at once on the gpu queue (number of GPUs)")
			stop := fs.Duration("stop-timeout", 30*time.Second, "on shutdown, how long running activities may finish and heartbeat")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			qs, err := workers.ParseQueues(*queues)
			if err != nil {
				return usagef("%v", err)
			}
			if *gpus < 1 {
				return usagef("--gpus must be at least 1")
			}
			acts, err := newActivities(ctx, env)
			if err != nil {
				return err
			}
			c, err := workers.Dial(ctx, *co, env.log)
			if err != nil {
				return err
			}
			defer c.Close()
			return workers.Run(ctx, c, acts, workers.Options{Queues: qs, MaxConcurrentFineTunes: *gpus, StopTimeout: *stop, Identity: co.Identity}, env.log)
		},
	}
}
