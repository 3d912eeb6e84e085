// Package mlmengine implements the model-engine interfaces of package
// activities (Scorer, Trainer, Evaluator) with the fill-mask models of
// package mlm and the S3 object store of package store.
//
// Model URIs are store key prefixes of Hugging Face checkpoint folders
// uploaded with store.UploadDir (they carry a MANIFEST.json), or Hugging
// Face Hub references hf://org/name[@revision] (resolved through
// Options.Hub into the Hub's shared cache). Store keys are downloaded into a
// local, content-addressed cache (Options.CacheDir) and, for scoring and
// evaluation, loaded once through Options.Models.
// Fine-tuning always loads a fresh copy of the base model, because training
// changes the weights.
//
// Errors about unusable inputs wrap activities.ErrBadCheckpoint (a model
// that is missing, incomplete or cannot be loaded) or activities.ErrBadData
// (a pool, evaluation set or label set that is malformed), so that the
// activities fail without retrying; everything else (network, cancellation)
// is retryable.
package mlmengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/hfhub"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/store"
)

// Models hands out loaded models by URI, normally from a cache such as
// workers.ModelCache. The model stays valid until release is called; the
// caller must not close it.
type Models interface {
	Acquire(ctx context.Context, uri string) (model *mlm.Model, release func(), err error)
}

// Options configure an Engine.
type Options struct {
	// Store holds models, pools, evaluation sets and checkpoints. Required.
	Store *store.Store
	// CacheDir is a local folder for downloaded models (<CacheDir>/models,
	// content-addressed) and fine-tuning work folders (<CacheDir>/train).
	// Required.
	CacheDir string
	// Device is the mlm device: "auto" (default), "cpu", "cuda", "cuda:N".
	Device string
	// Threads is libtorch's intra-op thread count (0: the number of CPUs).
	Threads int
	// Models, when set, provides the models used for scoring and
	// evaluation (a cache); nil loads the model for every call.
	Models Models
	// ScoreBatchSize and EvalBatchSize are the items per forward pass
	// (default 32).
	ScoreBatchSize, EvalBatchSize int
	// ChunkSize is how many pool or evaluation items are read and processed
	// at once; progress is reported after each chunk (default 512).
	ChunkSize int
	// MCDropout is the number of dropout samples of the "bald" strategy
	// (default 8); it is only used when bald is asked for.
	MCDropout int
	// CheckpointEvery is the number of optimizer steps between resumable
	// checkpoints when the fine-tune settings do not say (default 100).
	CheckpointEvery int
	// WaitHeartbeat is how often a chunk that waits for its turn at a
	// model shared with other shards or evaluations reports progress, so
	// that its activity heartbeats while it waits (default
	// DefaultWaitHeartbeat).
	WaitHeartbeat time.Duration
	// Logger receives progress and warnings (default slog.Default()).
	Logger *slog.Logger
	// Hub resolves hf:// model URIs (nil: they are refused as bad
	// checkpoints). A worker without internet uses a client with
	// Config.Offline and a filled cache.
	Hub *hfhub.Client
}

// Engine implements activities.Scorer, activities.Trainer and
// activities.Evaluator. It is safe for concurrent use.
type Engine struct {
	o     Options
	log   *slog.Logger
	div   diversityLimits
	turns turns
}

var (
	_ activities.Scorer          = (*Engine)(nil)
	_ activities.StreamingScorer = (*Engine)(nil)
	_ activities.Trainer         = (*Engine)(nil)
	_ activities.Evaluator       = (*Engine)(nil)
)

// New checks o and returns an Engine.
func New(o Options) (*Engine, error) {
	if o.Store == nil {
		return nil, errors.New("mlm engine: no object store")
	}
	if o.CacheDir == "" {
		return nil, errors.New("mlm engine: no cache folder")
	}
	if o.Device == "" {
		o.Device = "auto"
	}
	if _, err := mlm.ParseDevice(o.Device); err != nil {
		return nil, fmt.Errorf("mlm engine: %w", err)
	}
	if o.Threads < 0 {
		return nil, fmt.Errorf("mlm engine: negative thread count %d", o.Threads)
	}
	if o.ScoreBatchSize <= 0 {
		o.ScoreBatchSize = 32
	}
	if o.EvalBatchSize <= 0 {
		o.EvalBatchSize = 32
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = 512
	}
	if o.MCDropout <= 0 {
		o.MCDropout = 8
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 100
	}
	if o.WaitHeartbeat <= 0 {
		o.WaitHeartbeat = DefaultWaitHeartbeat
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("mlm engine: create cache folder: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Engine{o: o, log: log, div: defaultDiversityLimits(), turns: turns{gates: map[*mlm.Model]*gate{}}}, nil
}

func (e *Engine) modelCache() string { return filepath.Join(e.o.CacheDir, "models") }
func (e *Engine) trainRoot() string  { return filepath.Join(e.o.CacheDir, "train") }

// LoadModel downloads the checkpoint at uri into the local cache (unless
// it is there already) and loads it. The caller owns the model and closes
// it. A missing, incomplete or unloadable checkpoint gives an error
// wrapping activities.ErrBadCheckpoint.
func (e *Engine) LoadModel(ctx context.Context, uri string) (*mlm.Model, error) {
	dir, err := e.download(ctx, uri)
	if err != nil {
		return nil, err
	}
	m, err := mlm.Load(ctx, dir, mlm.Options{Device: e.o.Device, Threads: e.o.Threads})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("load model %s: %w", uri, err)
		}
		return nil, fmt.Errorf("%w: load model %s from %s: %w", activities.ErrBadCheckpoint, uri, dir, err)
	}
	return m, nil
}

// download fetches the checkpoint at uri into the content-addressed cache
// and returns its folder.
func (e *Engine) download(ctx context.Context, uri string) (string, error) {
	if hfhub.IsRef(uri) {
		snap, err := e.hubModel(ctx, uri)
		return snap.Dir, err
	}
	dir, _, err := e.o.Store.DownloadDir(ctx, uri, e.modelCache())
	if err != nil {
		return "", storeErr(fmt.Sprintf("download model %s", uri), activities.ErrBadCheckpoint, err)
	}
	return dir, nil
}

// storeErr wraps err with what failed, adding bad (ErrBadCheckpoint or
// ErrBadData) when the error is about the object rather than the
// connection: missing, incomplete, corrupted or an invalid key.
func storeErr(what string, bad, err error) error {
	for _, final := range []error{store.ErrNotFound, store.ErrIncomplete, store.ErrChecksumMismatch, store.ErrInvalidKey} {
		if errors.Is(err, final) {
			return fmt.Errorf("%w: %s: %w", bad, what, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// acquire returns a shared, loaded model for reading (scoring,
// evaluation) and its release function.
func (e *Engine) acquire(ctx context.Context, uri string) (*mlm.Model, func(), error) {
	if e.o.Models != nil {
		m, release, err := e.o.Models.Acquire(ctx, uri)
		if err != nil {
			return nil, nil, err
		}
		return m, release, nil
	}
	m, err := e.LoadModel(ctx, uri)
	if err != nil {
		return nil, nil, err
	}
	return m, func() { m.Close() }, nil
}

// hubModel resolves a Hub reference through the shared Hugging Face cache
// (no request when the cache holds it). Answers about the model itself
// (missing repository, revision or file, gated, not a fill-mask model, not
// cached while offline) wrap activities.ErrBadCheckpoint; network errors
// are retryable.
func (e *Engine) hubModel(ctx context.Context, uri string) (hfhub.Snapshot, error) {
	if e.o.Hub == nil {
		return hfhub.Snapshot{}, fmt.Errorf("%w: model %s: this worker has no Hugging Face Hub client", activities.ErrBadCheckpoint, uri)
	}
	ref, err := hfhub.ParseRef(uri)
	if err != nil {
		return hfhub.Snapshot{}, fmt.Errorf("%w: %w", activities.ErrBadCheckpoint, err)
	}
	snap, err := e.o.Hub.Resolve(ctx, ref)
	if err != nil {
		for _, final := range []error{hfhub.ErrRepoNotFound, hfhub.ErrRevisionNotFound, hfhub.ErrEntryNotFound, hfhub.ErrGated,
			hfhub.ErrUnauthorized, hfhub.ErrNotFillMask, hfhub.ErrNotAModel, hfhub.ErrNotCached} {
			if errors.Is(err, final) {
				return snap, fmt.Errorf("%w: %w", activities.ErrBadCheckpoint, err)
			}
		}
		return snap, fmt.Errorf("hub model %s: %w", uri, err)
	}
	if !snap.Cached {
		e.log.Info("hub model downloaded", "ref", ref.String(), "commit", snap.Commit, "bytes", snap.Downloaded)
	}
	return snap, nil
}

// HubModelFile is written beside a fine-tune's or adaptation's result when
// its base model is a Hub reference: the commit it resolved to, so that the
// run can be reproduced after the Hub repository moves on.
const HubModelFile = "hub_model.json"

// HubModelRecord is the content of HubModelFile.
type HubModelRecord struct {
	URI      string `json:"uri"`
	Repo     string `json:"repo"`
	Revision string `json:"revision"`
	Commit   string `json:"commit"`
	// Pinned is the reference to the resolved commit.
	Pinned string `json:"pinned"`
}

// PinModel implements activities.ModelPinner: a Hub reference is resolved
// (downloaded, or found in the cache), recorded in
// <prefix>/hub_model.json and returned as hf://org/name@<commit>; any other
// URI is returned unchanged.
func (e *Engine) PinModel(ctx context.Context, uri, prefix string) (string, error) {
	if !hfhub.IsRef(uri) {
		return uri, nil
	}
	snap, err := e.hubModel(ctx, uri)
	if err != nil {
		return "", err
	}
	if err := e.recordHubModel(ctx, prefix, uri); err != nil {
		return "", err
	}
	pinned := snap.Ref
	pinned.Revision = snap.Commit
	return pinned.String(), nil
}

// recordHubModel writes <prefix>/hub_model.json when uri is a Hub
// reference (resolved from the cache: the model was just loaded).
func (e *Engine) recordHubModel(ctx context.Context, prefix, uri string) error {
	if !hfhub.IsRef(uri) {
		return nil
	}
	snap, err := e.hubModel(ctx, uri)
	if err != nil {
		return err
	}
	pinned := snap.Ref
	pinned.Revision = snap.Commit
	data, err := json.MarshalIndent(HubModelRecord{URI: uri, Repo: snap.Ref.Repo, Revision: snap.Ref.Revision, Commit: snap.Commit, Pinned: pinned.String()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", HubModelFile, err)
	}
	key := path.Join(prefix, HubModelFile)
	if _, err := e.o.Store.PutBytes(ctx, key, append(data, '\n')); err != nil {
		return fmt.Errorf("record hub model commit in %s: %w", key, err)
	}
	return nil
}
