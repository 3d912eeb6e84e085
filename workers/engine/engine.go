// Package engine wires the real model engine (activities/mlmengine over
// mlm/ and store/) into the activities a worker serves. It is a package of
// its own so that workers/ stays free of cgo (gotch/libtorch).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/mlmengine"
	"github.com/clozeloop/clozeloop/activities/storeblobs"
	"github.com/clozeloop/clozeloop/hfhub"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/workers"
)

// Options configure NewActivities.
type Options struct {
	// Store is the object store; when nil, StoreConfig is opened.
	Store       *store.Store
	StoreConfig store.Config
	// CacheDir is the local folder for downloaded models and fine-tuning
	// work folders. Required.
	CacheDir string
	// Device is "auto" (default), "cpu", "cuda" or "cuda:N".
	Device string
	// Threads is libtorch's intra-op thread count (0: the number of CPUs).
	Threads int
	// MaxModels is how many loaded models the worker keeps (default 2).
	MaxModels int
	// CheckpointEvery is the default number of fine-tuning steps between
	// resumable checkpoints (default 100; runs can set their own).
	CheckpointEvery int
	// Logger receives the engine's logs (default slog.Default()).
	Logger *slog.Logger
	// Hub resolves hf:// model URIs; nil reads the Hugging Face variables
	// (HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE).
	Hub *hfhub.Client
}

// NewActivities returns the production activities: the object store as
// Blobs and an mlmengine.Engine as Scorer, Trainer and Evaluator, with the
// models used for scoring and evaluation loaded once and cached by URI
// (workers.ModelCache).
func NewActivities(ctx context.Context, o Options) (*activities.Activities, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	st := o.Store
	if st == nil {
		if o.StoreConfig.Bucket == "" {
			return nil, errors.New("engine: no object store: set the S3 bucket (CLOZELOOP_S3_BUCKET)")
		}
		var err error
		if st, err = store.Open(ctx, o.StoreConfig, log); err != nil {
			return nil, fmt.Errorf("engine: open object store %s: %w", o.StoreConfig, err)
		}
	}
	hub := o.Hub
	if hub == nil {
		cfg, err := hfhub.ConfigFromEnv(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		hub = hfhub.New(cfg)
	}
	cache := &workers.ModelCache[*mlm.Model]{Close: func(m *mlm.Model) { _ = m.Close() }, Max: o.MaxModels}
	eng, err := mlmengine.New(mlmengine.Options{
		Store: st, CacheDir: o.CacheDir, Device: o.Device, Threads: o.Threads, Models: cache,
		CheckpointEvery: o.CheckpointEvery, Logger: log, Hub: hub,
	})
	if err != nil {
		return nil, err
	}
	cache.Load = eng.LoadModel
	return &activities.Activities{Blobs: storeblobs.Blobs{S: st}, Scorer: eng, Trainer: eng, Evaluator: eng, Adapter: eng, Pinner: eng, Logger: log}, nil
}
