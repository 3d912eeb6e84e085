package sim

import (
	"context"

	"github.com/clozeloop/clozeloop/acquire"
)

// Item is one pool item: a text with one or more [MASK] blanks.
type Item struct {
	ID   string
	Text string
	// Source is the item's origin as the pool record's source field (or,
	// failing that, its meta.source) names it ("wordnet", a corpus name;
	// "" when the record has none).
	Source string
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
	// Answers, when set, restricts the uncertainty measures to a closed
	// answer set (Config.Answers).
	Answers []string
}

// FineTuneOptions are the fine-tune settings of every round: the fields of
// the run config's fine_tune (workflows.FineTuneSettings), passed to
// mlm.FineTune the way the workflow's FineTune activity passes them.
type FineTuneOptions struct {
	// Steps, when positive, is the number of optimizer steps; otherwise
	// Epochs passes are made over the examples.
	Steps  int     `json:"steps"`
	Epochs int     `json:"epochs"`
	LR     float64 `json:"lr"`
	// BatchSize is the number of examples per step.
	BatchSize int `json:"batch_size"`
	// WarmupRatio is the share of the steps spent warming up the learning
	// rate linearly (0: none).
	WarmupRatio float64 `json:"warmup_ratio"`
	// ReplayWeight, in [0, 1], enables masked-LM replay against forgetting
	// when positive: the replay texts' MLM loss, weighted by it, joins
	// every step (see mlm.FineTuneOptions.ReplayWeight).
	ReplayWeight float64 `json:"replay_weight"`
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

// Accuracy is the result of an evaluation, the metrics of mlm.EvalMetrics
// (those of the workflow's Evaluate activity): per gold answer, whether it
// is the model's top prediction (Top1) or among its five best (Top5), the
// mean reciprocal rank of its first piece (MRR) and its mean negative
// log-likelihood in nats (NLL). A gold answer of several word pieces is
// scored over as many masks.
type Accuracy struct {
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	MRR  float64 `json:"mrr"`
	NLL  float64 `json:"nll"`
	// Masks is the number of gold answers (original masks) evaluated.
	Masks int `json:"masks"`
	// Skipped is the number of eval items the model could not evaluate
	// (see mlm.EvalMetrics.Skipped); they are not in the metrics.
	Skipped int `json:"skipped"`
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
	// FineTune trains the model in place on examples; when
	// opts.ReplayWeight > 0, replay holds the unlabelled texts of masked-LM
	// replay.
	FineTune(ctx context.Context, examples []Example, replay []string, opts FineTuneOptions) (FineTuneStats, error)
	// Evaluate returns the metrics on the eval items.
	Evaluate(ctx context.Context, items []EvalItem) (Accuracy, error)
	// AnswerPieces returns the number of tokens the model's tokenizer
	// splits each answer into when it fills the corresponding mask of text
	// (the i-th answer the i-th mask), as fine-tuning and evaluation split
	// it: for byte-level BPE the form of a word depends on the space before
	// its mask. An answer that cannot be encoded counts 0.
	AnswerPieces(text string, answers []string) []int
	// Close frees the model.
	Close() error
}
