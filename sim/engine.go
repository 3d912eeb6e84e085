package sim

import (
	"context"

	"github.com/clozeloop/clozeloop/acquire"
)

// Item is one pool item: a text with one or more [MASK] blanks.
type Item struct {
	ID   string
	Text string
}

// Example is one answered item for fine-tuning: one answer per mask.
type Example struct {
	ID      string
	Text    string
	Answers []string
}

// EvalItem is one evaluation item with its gold answer per mask.
type EvalItem struct {
	ID   string
	Text string
	Gold []string
}

// ScoreOptions says what a strategy needs from scoring.
type ScoreOptions struct {
	// Embeddings asks for the hidden state at the masks (kcenter, hybrid).
	Embeddings bool
	// MCDropout is the number of dropout samples for BALD (0: none).
	MCDropout int
	// Seed seeds the dropout masks.
	Seed int64
}

// FineTuneOptions are the fine-tune settings of every round.
type FineTuneOptions struct {
	// Steps, when positive, is the number of optimizer steps; otherwise
	// Epochs passes are made over the examples.
	Steps  int     `json:"steps"`
	Epochs int     `json:"epochs"`
	LR     float64 `json:"lr"`
	// BatchSize is the number of examples per step.
	BatchSize int `json:"batch_size"`
	// Seed fixes data order and dropout.
	Seed int64 `json:"seed"`
}

// FineTuneStats reports one fine-tune.
type FineTuneStats struct {
	Steps     int     `json:"steps"`
	Trained   int     `json:"trained"`
	Skipped   int     `json:"skipped"`
	FinalLoss float64 `json:"final_loss"`
}

// Accuracy is the result of an evaluation: the share of eval masks whose gold
// answer is the model's top prediction (Top1) or among its five best (Top5).
type Accuracy struct {
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	// Masks is the number of masks evaluated.
	Masks int `json:"masks"`
}

// Engine makes models from the simulation's starting checkpoint.
type Engine interface {
	// Start returns a fresh copy of the starting model. Every call returns
	// a model in the same state.
	Start(ctx context.Context) (Model, error)
}

// Model is what a simulation does with a model.
type Model interface {
	// Score computes the acquisition measures of items, in order.
	// Candidate IDs are the item IDs; Surprisal is left zero. Items the
	// model cannot score are left out (they are then never selected by a
	// strategy that needs scores).
	Score(ctx context.Context, items []Item, opts ScoreOptions) ([]acquire.Candidate, error)
	// Surprisal returns the model's MLM surprisal of each item (higher is
	// more surprising), for ALPS-style cold-start seeding.
	Surprisal(ctx context.Context, items []Item) ([]float64, error)
	// FineTune trains the model in place on examples.
	FineTune(ctx context.Context, examples []Example, opts FineTuneOptions) (FineTuneStats, error)
	// Evaluate returns top-1 and top-5 accuracy on the eval items.
	Evaluate(ctx context.Context, items []EvalItem) (Accuracy, error)
	// Close frees the model.
	Close() error
}
