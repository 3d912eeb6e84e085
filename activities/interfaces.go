// Package activities implements the steps of clozeloop's workflows as
// Temporal activities: scoring pool shards, persisting labels, fine-tuning,
// evaluating and uploading checkpoints.
//
// The activities are thin: they heartbeat progress, make retries resume and
// keep every write idempotent, and delegate the work to small interfaces
// defined here (Blobs, Scorer, Trainer, Evaluator) that the model engine
// (mlm/) and the object store (store/) implement. Keys and URIs are object
// store keys as the Blobs implementation understands them.
package activities

import (
	"context"
	"errors"
	"time"

	"github.com/clozeloop/clozeloop/workflows"
)

// ErrNotFound is wrapped by Blobs.Get when the key does not exist.
var ErrNotFound = errors.New("not found")

// ErrPreconditionFailed is wrapped by Blobs.PutIf when the object changed
// (or exists, or is gone) since the version the caller read.
var ErrPreconditionFailed = errors.New("precondition failed")

// ErrBadData is wrapped by engine implementations when the input data is
// malformed; the activity fails without retrying.
var ErrBadData = errors.New("bad data")

// ErrBadCheckpoint is wrapped by engine implementations when a model
// checkpoint cannot be loaded; the activity fails without retrying.
var ErrBadCheckpoint = errors.New("bad checkpoint")

// Blobs is the part of the object store the activities use.
type Blobs interface {
	// Get returns the object's bytes, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put writes (or overwrites) an object.
	Put(ctx context.Context, key string, data []byte) error
	// Exists reports whether the object exists.
	Exists(ctx context.Context, key string) (bool, error)
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Copy copies one object (overwriting dst).
	Copy(ctx context.Context, srcKey, dstKey string) error
	// GetVersioned returns the object's bytes and its version tag (the S3
	// ETag), or an error wrapping ErrNotFound.
	GetVersioned(ctx context.Context, key string) ([]byte, string, error)
	// PutIf writes data only if the object still has version tag version
	// or, with version "", only if no object exists; otherwise it returns
	// an error wrapping ErrPreconditionFailed. Check and write are atomic
	// (S3 conditional writes), so of two racing writers one loses.
	PutIf(ctx context.Context, key string, data []byte, version string) error
}

// ScoreRequest asks a Scorer for one shard of the pool.
type ScoreRequest struct {
	ModelURI string
	PoolURI  string
	// Shard and NumShards select the pool items whose 0-based position p in
	// the pool satisfies p % NumShards == Shard.
	Shard, NumShards int
	// Strategies are the acquisition strategies to score (see
	// workflows.Strategies).
	Strategies []string
	Seed       int64
	// Skip reports items to leave out (labelled or in flight).
	Skip func(itemID string) bool
	// TargetURI is the target sample of the "target" strategy (JSONL
	// records with a "text"); empty without one.
	TargetURI string
}

// ScoredItem is one pool item's scores.
type ScoredItem struct {
	ItemID string `json:"item_id"`
	Text   string `json:"text"`
	// Scores holds one acquisition score per strategy; higher is picked
	// first.
	Scores map[string]float64 `json:"scores"`
	// Suggestions are the model's top fillers of each blank (Mask tells
	// which), at most workflows.ClipSuggestions keeps.
	Suggestions []workflows.Suggestion `json:"suggestions,omitempty"`
}

// Scorer scores pool items with a model. progress is called with the items
// done so far and the shard's total (total may be -1 when unknown).
type Scorer interface {
	ScoreShard(ctx context.Context, req ScoreRequest, progress func(done, total int)) ([]ScoredItem, error)
}

// ShardResult is what a StreamingScorer keeps of a shard: how many items it
// scored and, per strategy, the best candidates (see TopCollector).
type ShardResult struct {
	Scored int
	Top    map[string][]workflows.Candidate
}

// StreamingScorer is a Scorer that does not hold a shard's scores in
// memory: ScoreShardTo writes every scored item to the object store at
// scoresKey as it goes (JSONL, one ScoredItem a line, in the layout
// ScoreShard's results are written in) and keeps only the topM best
// candidates per strategy. The ScoreShard activity prefers it when the
// Scorer implements it, so that memory stays flat however large the pool.
type StreamingScorer interface {
	Scorer
	ScoreShardTo(ctx context.Context, req ScoreRequest, scoresKey string, topM int, progress func(done, total int)) (ShardResult, error)
}

// Example is one labelled item for fine-tuning.
type Example struct {
	ItemID string `json:"item_id"`
	Text   string `json:"text"`
	// Label is the label as one string (the blanks joined with " | ").
	Label string `json:"label"`
	// Answers is the label as a list, one entry per [MASK]; nil for labels
	// persisted before lists, whose Label the trainer splits.
	Answers []string `json:"answers,omitempty"`
}

// TrainProgress is what a fine-tune reports; it is also the heartbeat
// detail a retried FineTune resumes from.
type TrainProgress struct {
	Step       int     `json:"step"`
	TotalSteps int     `json:"total_steps"`
	Loss       float64 `json:"loss"`
	// Tokens is the number of input tokens this attempt has trained on,
	// TokensPerSec its throughput (for metrics; not used to resume).
	Tokens       int64   `json:"tokens,omitempty"`
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
	// CheckpointURI and CheckpointStep name the last saved, resumable
	// checkpoint ("" and 0 until one is saved).
	CheckpointURI  string `json:"checkpoint_uri,omitempty"`
	CheckpointStep int    `json:"checkpoint_step,omitempty"`
}

// TrainRequest asks a Trainer for one fine-tune.
type TrainRequest struct {
	BaseModelURI string
	Examples     []Example
	// OutputPrefix is where intermediate and final checkpoints go.
	OutputPrefix string
	Settings     workflows.FineTuneSettings
	// Resume, when set, is the last saved checkpoint of an earlier attempt:
	// continue from Resume.CheckpointStep with Resume.CheckpointURI.
	Resume *TrainProgress
}

// TrainResult names the final checkpoint.
type TrainResult struct {
	CheckpointURI string
	Steps         int
	FinalLoss     float64
	// ResumedFrom is the step training continued from (0: from the start).
	ResumedFrom int
}

// Trainer fine-tunes a model; progress is called at least at every saved
// checkpoint.
type Trainer interface {
	FineTune(ctx context.Context, req TrainRequest, progress func(TrainProgress)) (TrainResult, error)
}

// Evaluator computes metrics (e.g. "accuracy", "top5", "loss") of a model
// on an evaluation set.
type Evaluator interface {
	Evaluate(ctx context.Context, modelURI, evalURI string, progress func(done, total int)) (map[string]float64, error)
}

// AdaptRequest asks an Adapter for the adaptation phase: continued
// masked-LM pretraining of BaseModelURI on the texts of the pool at PoolURI
// (their [MASK] blanks kept as input, never predicted) or, when
// Settings.TextURI is set, on that plain-text corpus (one text a line).
type AdaptRequest struct {
	BaseModelURI string
	PoolURI      string
	// OutputPrefix is where intermediate checkpoints and the adapted
	// model go.
	OutputPrefix string
	Settings     workflows.AdaptSettings
	// TargetURI is the target sample (JSONL items) that
	// Settings.TargetShare chooses the corpus by.
	TargetURI string
	// Resume, when set, is the last saved checkpoint of an earlier attempt.
	Resume *TrainProgress
}

// AdaptResult names the adapted model.
type AdaptResult struct {
	CheckpointURI string
	Steps         int
	FinalLoss     float64
	// ResumedFrom is the step training continued from (0: from the start).
	ResumedFrom int
	// Texts is the number of corpus texts used, Sequences the training
	// sequences made of them.
	Texts, Sequences int
}

// Observer receives measurements of the activities' work for metrics
// (metrics.Registry implements it). Activities with a nil Observer record
// nothing.
type Observer interface {
	// Scored reports a shard of items scored in d.
	Scored(items int, d time.Duration)
	// Trained reports training progress of kind "finetune" or "adapt":
	// steps and tokens since the last report, the step's loss and the
	// attempt's throughput.
	Trained(kind string, steps int, tokens int64, loss, tokensPerSec float64)
	// Evaluated reports an evaluation's metrics on set "eval" or
	// "forgetting".
	Evaluated(set string, metrics map[string]float64)
}

// Adapter runs the adaptation phase; progress is called after every step,
// naming the last uploaded checkpoint.
type Adapter interface {
	Adapt(ctx context.Context, req AdaptRequest, progress func(TrainProgress)) (AdaptResult, error)
}
