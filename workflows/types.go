// Package workflows holds clozeloop's Temporal workflows: ActiveLearning, one
// active-learning round per run (continuing as new between rounds), and
// Retrain, the nightly retraining on every label so far.
//
// The code here is deterministic workflow code only. It knows the activities
// by name and by their payload types, which are defined here too, so that the
// activities package can implement them without this package linking the
// model engine, S3 or HTTP. Large data never travels in payloads: activities
// exchange object-store keys (URIs).
package workflows

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Task queues.
const (
	// DefaultTaskQueue serves workflows and the CPU activities.
	DefaultTaskQueue = "clozeloop-default"
	// GPUTaskQueue serves FineTune and Adapt.
	GPUTaskQueue = "clozeloop-gpu"
)

// Workflow type names.
const (
	ActiveLearningName = "ActiveLearning"
	RetrainName        = "Retrain"
)

// Message names of the ActiveLearning workflow.
const (
	// UpdateSubmitLabels is the Update that submits answers (validated; the
	// caller gets the reason for a rejection).
	UpdateSubmitLabels = "SubmitLabels"
	// SignalLabels is the fire-and-forget equivalent of UpdateSubmitLabels.
	SignalLabels = "labels"
	// CloseRound is both an Update and a Signal that ends the open round early.
	CloseRound = "CloseRound"
	// ExtendRound is both an Update and a Signal that moves the open
	// round's deadline later (an ExtendRequest).
	ExtendRound = "ExtendRound"
	// SignalSkip removes one item from the open round.
	SignalSkip = "Skip"
	// SignalFlag marks one item for review.
	SignalFlag = "Flag"
	// QueryStatus returns a Status.
	QueryStatus = "Status"
	// QueryBatch returns the open round's BatchView.
	QueryBatch = "Batch"
	// QueryHistory returns []RoundMetrics.
	QueryHistory = "History"
)

// Activity names.
const (
	ActivityScoreShard       = "ScoreShard"
	ActivityPersistLabels    = "PersistLabels"
	ActivityFineTune         = "FineTune"
	ActivityEvaluate         = "Evaluate"
	ActivityUploadCheckpoint = "UploadCheckpoint"
	ActivityResolveRun       = "ResolveRun"
)

// Strategies understood by the scorer. "bald" needs MC dropout, which the
// model engine does (its MCDropout option); it costs that many forward
// passes per item. "density" is information density (entropy × mean cosine
// similarity of the item's mask embedding to the pool shard's items),
// "target" entropy × similarity to the items at RunConfig.TargetURI (see
// package acquire's Density), "target-random" a random draw weighted by
// similarity^16 to those items, without uncertainty (the simulation's
// target(by=random,beta=16); acquire.WeightedDrawKey), "domain" the items
// whose words are most likely under the target items' word frequencies
// rather than the pool's (the log-likelihood ratio; acquire.Domain),
// "domain-random" a random draw weighted by that likelihood ratio (the
// simulation's domain(by=random)).
var Strategies = []string{"entropy", "margin", "least-confidence", "random", "bald", "kcenter", "hybrid", "density", "target", "target-random", "domain", "domain-random"}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("72h", "30m"); a bare number is read as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "72h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "72h" style strings or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want a string like \"72h\" or a number of seconds, got %s", b)
	}
	*d = Duration(time.Duration(secs * float64(time.Second)))
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ExtensionPolicy says what happens when the round deadline passes with
// fewer than MinLabels items labelled.
type ExtensionPolicy struct {
	// Extend is how much longer to wait each time (default: one more round
	// deadline).
	Extend Duration `json:"extend,omitempty"`
	// MaxExtensions bounds the extensions; 0 means keep extending.
	MaxExtensions int `json:"max_extensions,omitempty"`
}

// Budget bounds the whole run; zero fields are unbounded.
type Budget struct {
	MaxRounds int `json:"max_rounds,omitempty"`
	MaxLabels int `json:"max_labels,omitempty"`
}

// StopCriteria end the run early.
type StopCriteria struct {
	// TargetMetric stops the run once the current model's promotion metric
	// reaches it (0: no target).
	TargetMetric float64 `json:"target_metric,omitempty"`
	// Patience stops the run after this many rounds without a promotion
	// (0: never).
	Patience int `json:"patience,omitempty"`
}

// The fine-tune recipe's defaults, used for the zero FineTuneSettings
// fields. They follow the simulations in the README (continued training of
// the current model on all labels so far, 3 epochs, lr 1e-4, 10 % warm-up):
// with them random sampling improves on the starting model on every task
// measured there.
const (
	DefaultFineTuneEpochs       = 3
	DefaultFineTuneLearningRate = 1e-4
	DefaultFineTuneBatchSize    = 16
	DefaultFineTuneWarmupRatio  = 0.1
)

// FineTuneSettings are passed to the trainer. Zero fields take the
// defaults above (WithDefaults).
type FineTuneSettings struct {
	Epochs       int     `json:"epochs,omitempty"`
	MaxSteps     int     `json:"max_steps,omitempty"`
	LearningRate float64 `json:"learning_rate,omitempty"`
	BatchSize    int     `json:"batch_size,omitempty"`
	// WarmupRatio is the share of the steps spent warming up the learning
	// rate linearly, in [0, 1) (0: the default 0.1; a tiny value such as
	// 1e-9 warms up for a single step).
	WarmupRatio float64 `json:"warmup_ratio,omitempty"`
	// ReplayWeight mixes the labelled items, answers filled in, into each
	// fine-tune as masked-LM replay to limit forgetting, 0..1.
	ReplayWeight float64 `json:"replay_weight,omitempty"`
	Seed         int64   `json:"seed,omitempty"`
	// CheckpointEvery is how many steps between resumable checkpoints.
	CheckpointEvery int `json:"checkpoint_every,omitempty"`
	// HeartbeatTimeout is how long the training activities (FineTune and
	// Adapt) may go without a heartbeat before another GPU worker takes
	// them over from the last checkpoint (default
	// DefaultTrainHeartbeatTimeout, 5m; e.g. "30s").
	HeartbeatTimeout Duration `json:"heartbeat_timeout,omitempty"`
}

// WithDefaults returns s with its zero fields set to the defaults
// (MaxSteps, ReplayWeight, Seed and CheckpointEvery keep their zero).
func (s FineTuneSettings) WithDefaults() FineTuneSettings {
	if s.Epochs == 0 {
		s.Epochs = DefaultFineTuneEpochs
	}
	if s.LearningRate == 0 {
		s.LearningRate = DefaultFineTuneLearningRate
	}
	if s.BatchSize == 0 {
		s.BatchSize = DefaultFineTuneBatchSize
	}
	if s.WarmupRatio == 0 {
		s.WarmupRatio = DefaultFineTuneWarmupRatio
	}
	return s
}

// PromotionRule decides whether a fine-tuned candidate replaces the current
// model.
type PromotionRule struct {
	// Metric is the evaluation metric compared (default "accuracy").
	Metric string `json:"metric,omitempty"`
	// LowerIsBetter is set for metrics like loss or perplexity.
	LowerIsBetter bool `json:"lower_is_better,omitempty"`
	// MinDelta is the least improvement that promotes.
	MinDelta float64 `json:"min_delta,omitempty"`
	// ForgettingTolerance is the largest drop of Metric on the forgetting
	// eval set that still promotes (used when forgetting_eval_uri is set).
	ForgettingTolerance float64 `json:"forgetting_tolerance,omitempty"`
}

// RunConfig is the one input of the ActiveLearning workflow.
type RunConfig struct {
	// RunID names the run; objects go under OutputPrefix ("runs/<run_id>").
	RunID string `json:"run_id"`
	// Dataset is a display name, shown in the Temporal UI memo.
	Dataset string `json:"dataset,omitempty"`
	// PoolURI is the unlabelled pool (JSONL in the object store).
	PoolURI string `json:"pool_uri"`
	// PoolShards is how many parallel ScoreShard activities score the pool
	// (default 1).
	PoolShards int `json:"pool_shards,omitempty"`
	// EvalURI is the evaluation set.
	EvalURI string `json:"eval_uri"`
	// ForgettingEvalURI is an optional general-domain evaluation set that
	// guards against catastrophic forgetting.
	ForgettingEvalURI string `json:"forgetting_eval_uri,omitempty"`
	// TargetURI is an optional sample of the items the model should learn
	// (JSONL records with a "text" holding [MASK], e.g. pool or eval
	// items): the "target" strategy weighs uncertainty by similarity to
	// them, "target-random" draws at random weighted by that similarity,
	// "domain" and "domain-random" pick by how target-like the item's
	// words are.
	// Required by those strategies, unused otherwise.
	TargetURI string `json:"target_uri,omitempty"`
	// ModelURI is the starting model checkpoint.
	ModelURI string `json:"model_uri"`
	// OutputPrefix is where the run writes (default "runs/<run_id>").
	OutputPrefix string `json:"output_prefix,omitempty"`
	// Strategy is one of Strategies, or a mix such as
	// "entropy=0.7,random=0.3".
	Strategy string `json:"strategy"`
	// BatchSize is k, the number of items per round.
	BatchSize int `json:"batch_size"`
	// Quorum is the number of answers each item needs (default 1).
	Quorum int `json:"quorum,omitempty"`
	// RoundDeadline is how long a round waits for labels.
	RoundDeadline Duration `json:"round_deadline"`
	// MinLabels is how many labelled items the round needs at the deadline
	// (default 1).
	// When the batch is smaller than MinLabels (the pool's last items) or
	// skips leave fewer active items, the round needs only what it has.
	MinLabels int              `json:"min_labels,omitempty"`
	Extension ExtensionPolicy  `json:"extension,omitempty"`
	Budget    Budget           `json:"budget,omitempty"`
	Stop      StopCriteria     `json:"stop,omitempty"`
	FineTune  FineTuneSettings `json:"fine_tune,omitempty"`
	Promotion PromotionRule    `json:"promotion,omitempty"`
	// Adapt, when set, adds the adaptation phase before round 1 (see
	// AdaptSettings).
	Adapt *AdaptSettings `json:"adapt,omitempty"`
	// CaseSensitiveVotes keeps the case of answers when votes are counted.
	// The default (false) folds case, right for uncased models (BERT
	// uncased, whose tokenizer lowercases anyway): "Dog" and "dog" are one
	// vote. Set it for cased models. The raw text is always kept.
	CaseSensitiveVotes bool `json:"case_sensitive_votes,omitempty"`
	// Resume is set only by continue-as-new: the small state carried from
	// the previous round.
	Resume *Carry `json:"resume,omitempty"`
}

// Carry is the state one ActiveLearning run hands to the next.
type Carry struct {
	// Round is the round the new run starts (1-based).
	Round int `json:"round"`
	// ModelURI is the current (last promoted) model.
	ModelURI string `json:"model_uri"`
	// LabelSetURI is the label-set manifest after the last round.
	LabelSetURI string `json:"label_set_uri,omitempty"`
	LabelsTotal int    `json:"labels_total"`
	// CurrentMetrics and CurrentForgetting are the current model's scores.
	CurrentMetrics    map[string]float64 `json:"current_metrics,omitempty"`
	CurrentForgetting map[string]float64 `json:"current_forgetting,omitempty"`
	// RoundsWithoutPromotion counts towards StopCriteria.Patience.
	RoundsWithoutPromotion int `json:"rounds_without_promotion"`
	// LastBatch holds the previous round's item ids (never re-selected
	// straight away, even before the label set reflects them).
	LastBatch []string `json:"last_batch,omitempty"`
	// History is the per-round summary (the last MaxCarriedHistory rounds).
	History []RoundMetrics `json:"history,omitempty"`
	// Late holds answers that arrived after their round closed; the next
	// PersistLabels stores them (at most MaxLateRecords; LateDropped counts
	// the rest).
	Late        []RawAnswer `json:"late,omitempty"`
	LateDropped int         `json:"late_dropped,omitempty"`
	// Adaptation records the adaptation phase once it has run (nil when
	// the run has none).
	Adaptation *Adaptation `json:"adaptation,omitempty"`
}

// MaxCarriedHistory bounds Carry.History.
const MaxCarriedHistory = 100

// StrategyShare is one part of a strategy mix.
type StrategyShare struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
}

// ParseStrategy reads a single strategy name or a mix
// "name=weight,name=weight" into shares that sum to 1.
func ParseStrategy(s string) ([]StrategyShare, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("strategy is empty; want one of %s or a mix like \"entropy=0.7,random=0.3\"", strings.Join(Strategies, "|"))
	}
	var out []StrategyShare
	total := 0.0
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, weightStr, hasWeight := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		if !knownStrategy(name) {
			return nil, fmt.Errorf("unknown strategy %q; want one of %s", name, strings.Join(Strategies, "|"))
		}
		if seen[name] {
			return nil, fmt.Errorf("strategy %q appears twice in %q", name, s)
		}
		seen[name] = true
		w := 1.0
		if hasWeight {
			if _, err := fmt.Sscanf(strings.TrimSpace(weightStr), "%g", &w); err != nil || w <= 0 {
				return nil, fmt.Errorf("strategy %q: weight %q is not a positive number", name, weightStr)
			}
		}
		total += w
		out = append(out, StrategyShare{Name: name, Weight: w})
	}
	for i := range out {
		out[i].Weight /= total
	}
	return out, nil
}

func knownStrategy(name string) bool {
	for _, s := range Strategies {
		if s == name {
			return true
		}
	}
	return false
}

// Validate checks a RunConfig and returns the first problem found.
func (c *RunConfig) Validate() error {
	switch {
	case c.RunID == "":
		return fmt.Errorf("run_id is required")
	case c.PoolURI == "":
		return fmt.Errorf("pool_uri is required")
	case c.EvalURI == "":
		return fmt.Errorf("eval_uri is required")
	case c.ModelURI == "":
		return fmt.Errorf("model_uri is required")
	case c.BatchSize <= 0:
		return fmt.Errorf("batch_size must be positive, got %d", c.BatchSize)
	case c.Quorum < 0 || c.Quorum > MaxQuorum:
		return fmt.Errorf("quorum must be between 1 and %d, got %d", MaxQuorum, c.Quorum)
	case c.RoundDeadline <= 0:
		return fmt.Errorf("round_deadline must be positive (e.g. \"72h\")")
	case c.MinLabels < 0 || c.MinLabels > c.BatchSize:
		return fmt.Errorf("min_labels must be between 0 and batch_size (%d), got %d", c.BatchSize, c.MinLabels)
	case c.PoolShards < 0 || c.PoolShards > 256:
		return fmt.Errorf("pool_shards must be between 1 and 256, got %d", c.PoolShards)
	case c.Budget.MaxRounds < 0 || c.Budget.MaxLabels < 0:
		return fmt.Errorf("budget values must not be negative")
	case c.Extension.Extend < 0 || c.Extension.MaxExtensions < 0:
		return fmt.Errorf("extension values must not be negative")
	case c.FineTune.ReplayWeight < 0 || c.FineTune.ReplayWeight > 1:
		return fmt.Errorf("fine_tune.replay_weight must be within [0, 1], got %g", c.FineTune.ReplayWeight)
	case c.FineTune.WarmupRatio < 0 || c.FineTune.WarmupRatio >= 1:
		return fmt.Errorf("fine_tune.warmup_ratio must be within [0, 1), got %g", c.FineTune.WarmupRatio)
	case c.FineTune.HeartbeatTimeout != 0 && time.Duration(c.FineTune.HeartbeatTimeout) < MinTrainHeartbeatTimeout:
		return fmt.Errorf("fine_tune.heartbeat_timeout must be at least %s (or unset for %s), got %s",
			MinTrainHeartbeatTimeout, DefaultTrainHeartbeatTimeout, time.Duration(c.FineTune.HeartbeatTimeout))
	}
	shares, err := ParseStrategy(c.Strategy)
	if err != nil {
		return err
	}
	for _, sh := range shares {
		if (sh.Name == "target" || sh.Name == "target-random" || sh.Name == "domain" || sh.Name == "domain-random") && c.TargetURI == "" {
			return fmt.Errorf("strategy %q needs target_uri (a JSONL sample of the items the model should learn)", sh.Name)
		}
	}
	if c.Adapt != nil {
		if err := c.Adapt.Validate(); err != nil {
			return fmt.Errorf("adapt: %w", err)
		}
		if c.Adapt.TargetShare > 0 && c.TargetURI == "" {
			return fmt.Errorf("adapt: target_share needs target_uri (a JSONL sample of the items the model should learn)")
		}
	}
	return nil
}

// withDefaults fills the optional fields.
func (c RunConfig) withDefaults() RunConfig {
	if c.Quorum == 0 {
		c.Quorum = 1
	}
	if c.MinLabels == 0 {
		c.MinLabels = 1
	}
	if c.PoolShards == 0 {
		c.PoolShards = 1
	}
	if c.OutputPrefix == "" {
		c.OutputPrefix = "runs/" + c.RunID
	}
	if c.Extension.Extend == 0 {
		c.Extension.Extend = c.RoundDeadline
	}
	if c.Promotion.Metric == "" {
		c.Promotion.Metric = "accuracy"
	}
	return c
}

// Suggestion is one of the model's predictions for a masked token.
type Suggestion struct {
	Token string  `json:"token"`
	Prob  float64 `json:"prob"`
	// Mask is the blank it fills: 0 for the item's first [MASK] (and for
	// every suggestion made before blanks were told apart), 1 for the
	// second, …
	Mask int `json:"mask,omitempty"`
}

// Candidate is a scored pool item proposed for labelling.
type Candidate struct {
	ItemID string  `json:"item_id"`
	Text   string  `json:"text"`
	Score  float64 `json:"score"`
	// Suggestions are the model's top fillers of each blank (see
	// ClipSuggestions), shown to annotators.
	Suggestions []Suggestion `json:"suggestions,omitempty"`
}

// ScoreShardInput asks one activity to score one shard of the pool.
type ScoreShardInput struct {
	RunID      string   `json:"run_id"`
	Round      int      `json:"round"`
	ModelURI   string   `json:"model_uri"`
	PoolURI    string   `json:"pool_uri"`
	Shard      int      `json:"shard"`
	NumShards  int      `json:"num_shards"`
	Strategies []string `json:"strategies"`
	// TopM is how many candidates per strategy the shard returns.
	TopM int   `json:"top_m"`
	Seed int64 `json:"seed"`
	// LabelSetURI lists items already labelled (excluded); may be empty.
	LabelSetURI string `json:"label_set_uri,omitempty"`
	// Exclude are further item ids to leave out (items in flight).
	Exclude []string `json:"exclude,omitempty"`
	// ScoresKey is where the shard's full scores are written.
	ScoresKey string `json:"scores_key"`
	// TargetURI is RunConfig.TargetURI, for the "target", "target-random",
	// "domain" and "domain-random" strategies.
	TargetURI string `json:"target_uri,omitempty"`
}

// ScoreShardOutput is one shard's result: where its scores are, and its best
// candidates per strategy.
type ScoreShardOutput struct {
	Shard     int                    `json:"shard"`
	ScoresKey string                 `json:"scores_key"`
	Scored    int                    `json:"scored"`
	Top       map[string][]Candidate `json:"top"`
}

// Answer is one annotator's answer for one item: one entry in Answers per
// [MASK] of the item's text, in order.
type Answer struct {
	ItemID  string   `json:"item_id"`
	Answers []string `json:"answers,omitempty"`
	// Answer is the old single-string form, still read from signals sent
	// before Answers existed: the whole answer of a one-blank item, or the
	// blanks joined with "|" (AnswerSeparator).
	Answer string `json:"answer,omitempty"`
}

// LabelSubmission is the payload of the SubmitLabels Update and of the
// labels Signal.
type LabelSubmission struct {
	Round     int      `json:"round"`
	Annotator string   `json:"annotator"`
	Answers   []Answer `json:"answers"`
}

// SubmitResult is what SubmitLabels returns.
type SubmitResult struct {
	Round         int  `json:"round"`
	Counted       int  `json:"counted"`
	ItemsComplete int  `json:"items_complete"`
	ItemsNeeded   int  `json:"items_needed"`
	RoundComplete bool `json:"round_complete"`
}

// ItemNote is the payload of the Skip and Flag signals.
type ItemNote struct {
	Round     int    `json:"round"`
	ItemID    string `json:"item_id"`
	Annotator string `json:"annotator,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Scope of a skip: ScopeSelf (the default) excludes only Annotator from
	// the item, every answer stays; ScopeAll (leads) removes the item from
	// the round for everyone. The hook sets it from the caller's role.
	Scope string `json:"scope,omitempty"`
}

// Skip scopes (ItemNote.Scope).
const (
	ScopeSelf = "self"
	ScopeAll  = "all"
)

// CloseRequest is the payload of CloseRound.
type CloseRequest struct {
	Round  int    `json:"round"`
	Reason string `json:"reason,omitempty"`
	// EndRun ends the whole run once this round is persisted (and trained
	// when it has labels). Without it a round closed with no labels only
	// ends that round. The hook allows it to leads only.
	EndRun bool `json:"end_run,omitempty"`
}

// ExtendRequest is the payload of ExtendRound: the open round's deadline
// moves Extend later (at most MaxExtendPerRequest, at most
// MaxLeadExtensionsPerRound times per round).
type ExtendRequest struct {
	Round  int      `json:"round"`
	Extend Duration `json:"extend"`
	Reason string   `json:"reason,omitempty"`
}

// Validate checks the request on its own (not against the round).
func (r ExtendRequest) Validate() error {
	switch {
	case r.Round < 1:
		return fmt.Errorf("round must be a positive round number, got %d", r.Round)
	case r.Extend <= 0:
		return fmt.Errorf("extend must be a positive duration such as \"24h\", got %s", r.Extend.D())
	case r.Extend.D() > MaxExtendPerRequest:
		return fmt.Errorf("extend %s is longer than %s (30 days), the most one request may add", r.Extend.D(), MaxExtendPerRequest)
	}
	return nil
}

// RawAnswer is every answer received, counted or not, as it was sent (cut
// to the bounds of bounds.go when it was too long to count anyway).
type RawAnswer struct {
	Round     int    `json:"round"`
	ItemID    string `json:"item_id"`
	Annotator string `json:"annotator"`
	// Answers are the raw texts, one per blank.
	Answers []string `json:"answers,omitempty"`
	// Answer is the reason of a skip or flag, and the answer of records
	// written before Answers existed.
	Answer   string    `json:"answer,omitempty"`
	At       time.Time `json:"at"`
	Via      string    `json:"via"` // "update", "signal", "skip" or "flag"
	Counted  bool      `json:"counted"`
	Rejected string    `json:"rejected,omitempty"`
	// Scope is the scope of a skip.
	Scope string `json:"scope,omitempty"`
}

// LabelDecision is the outcome for one item of a round.
type LabelDecision struct {
	ItemID string `json:"item_id"`
	// Text is the item's cloze text (with the mask), kept so the label set
	// is self-contained for training.
	Text string `json:"text,omitempty"`
	// Labels is the majority answer, one normalised entry per [MASK]
	// (empty when the item got no answer or was skipped).
	Labels []string `json:"labels,omitempty"`
	// Label is Labels joined with " | " (the only form in label files
	// written before Labels existed).
	Label string `json:"label,omitempty"`
	// Votes counts the normalised answers, keyed by their " | " join.
	Votes   map[string]int `json:"votes,omitempty"`
	Answers int            `json:"answers"`
	// Tie is set when several answers share the top vote; Label is then the
	// smallest of them and the item needs review.
	Tie         bool     `json:"tie,omitempty"`
	Skipped     bool     `json:"skipped,omitempty"`
	Flagged     bool     `json:"flagged,omitempty"`
	FlagReasons []string `json:"flag_reasons,omitempty"`
	// SkippedBy are the annotators who skipped the item for themselves.
	SkippedBy []string `json:"skipped_by,omitempty"`
}

// PersistLabelsInput stores one round's labels and raw answers.
type PersistLabelsInput struct {
	RunID        string          `json:"run_id"`
	Round        int             `json:"round"`
	OutputPrefix string          `json:"output_prefix"`
	PrevLabelSet string          `json:"prev_label_set,omitempty"`
	Decisions    []LabelDecision `json:"decisions"`
	Raw          []RawAnswer     `json:"raw"`
	Late         []RawAnswer     `json:"late,omitempty"`
	// Dropped counts records left out by the bounds (rejected answers and
	// notes beyond the per-round caps, late answers beyond MaxLateRecords).
	Dropped int `json:"dropped,omitempty"`
	// Agreement is the round's inter-annotator agreement.
	Agreement *Agreement `json:"agreement,omitempty"`
}

// PersistLabelsOutput names the new label-set manifest.
type PersistLabelsOutput struct {
	LabelSetURI string `json:"label_set_uri"`
	// Labeled is the number of labelled items in the whole set.
	Labeled int `json:"labeled"`
}

// FineTuneInput asks the GPU worker for one fine-tune.
type FineTuneInput struct {
	RunID        string           `json:"run_id"`
	Round        int              `json:"round"`
	BaseModelURI string           `json:"base_model_uri"`
	LabelSetURI  string           `json:"label_set_uri"`
	OutputPrefix string           `json:"output_prefix"`
	Settings     FineTuneSettings `json:"settings"`
}

// FineTuneOutput names the trained checkpoint.
type FineTuneOutput struct {
	CheckpointURI string  `json:"checkpoint_uri"`
	Steps         int     `json:"steps"`
	FinalLoss     float64 `json:"final_loss"`
	// ResumedFromStep is the step the last attempt started from (0: fresh).
	ResumedFromStep int `json:"resumed_from_step"`
	Examples        int `json:"examples"`
}

// EvaluateInput evaluates one model.
type EvaluateInput struct {
	ModelURI          string `json:"model_uri"`
	EvalURI           string `json:"eval_uri"`
	ForgettingEvalURI string `json:"forgetting_eval_uri,omitempty"`
}

// EvaluateOutput holds the metrics on the eval set and, when asked, on the
// forgetting set.
type EvaluateOutput struct {
	Metrics    map[string]float64 `json:"metrics"`
	Forgetting map[string]float64 `json:"forgetting,omitempty"`
}

// UploadCheckpointInput copies a trained checkpoint to its permanent place
// and, when promoted, moves the run's current-model pointer to it.
type UploadCheckpointInput struct {
	RunID         string             `json:"run_id"`
	Round         int                `json:"round"`
	CheckpointURI string             `json:"checkpoint_uri"`
	OutputPrefix  string             `json:"output_prefix"`
	Name          string             `json:"name"`
	Promote       bool               `json:"promote"`
	Metrics       map[string]float64 `json:"metrics,omitempty"`
	// CheckCurrent makes the promotion a compare-and-swap: the activity
	// moves models/current.json only if it is missing, already names this
	// checkpoint, or still names ExpectedCurrentURI (the model the workflow
	// last knew as current); otherwise another workflow moved it, and the
	// pointer is left alone (UploadCheckpointOutput.Conflict). The write
	// itself is conditional on the ETag read (If-Match / If-None-Match), so
	// two racing writers cannot both win. Without CheckCurrent (inputs
	// scheduled by older workflow code) any current value is replaced, still
	// with a conditional write.
	CheckCurrent       bool   `json:"check_current,omitempty"`
	ExpectedCurrentURI string `json:"expected_current_uri,omitempty"`
}

// UploadCheckpointOutput names the permanent checkpoint.
type UploadCheckpointOutput struct {
	ModelURI string `json:"model_uri"`
	Promoted bool   `json:"promoted"`
	// Conflict is set when a promotion was asked for but current.json
	// names a model the workflow did not know (another workflow promoted
	// it); CurrentModelURI is that model. The checkpoint is stored either
	// way.
	Conflict        string `json:"conflict,omitempty"`
	CurrentModelURI string `json:"current_model_uri,omitempty"`
}

// ResolveRunInput asks where a run's current model and label set are.
type ResolveRunInput struct {
	OutputPrefix string `json:"output_prefix"`
	// ModelURI, when set, is the run's configured starting model: a Hugging
	// Face Hub reference (hf://org/name[@revision]) is resolved to the
	// commit it names now and recorded in the run's output prefix.
	ModelURI string `json:"model_uri,omitempty"`
}

// ResolveRunOutput answers ResolveRunInput ("" where nothing exists yet).
type ResolveRunOutput struct {
	ModelURI    string             `json:"model_uri"`
	LabelSetURI string             `json:"label_set_uri"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	// PinnedModelURI is the input's Hub model pinned to its commit
	// (hf://org/name@<commit>); empty for other models. The run uses it
	// from then on, so that its rounds are reproducible when the Hub
	// repository moves on.
	PinnedModelURI string `json:"pinned_model_uri,omitempty"`
}

// MetricRoundPhase is the name of the timer, in the Temporal SDK's metrics,
// that records how long each phase of a round took (tag "phase"); with the
// Prometheus naming of package metrics it is clozeloop_round_phase_seconds.
const MetricRoundPhase = "clozeloop_round_phase"

// Phase is what the ActiveLearning workflow is doing.
type Phase string

// Phases.
const (
	PhaseScoring   Phase = "scoring"
	PhaseLabeling  Phase = "labeling"
	PhasePersist   Phase = "persisting"
	PhaseTraining  Phase = "training"
	PhaseEvaluate  Phase = "evaluating"
	PhaseUploading Phase = "uploading"
	PhaseDone      Phase = "done"
)

// Status is the answer of the Status query.
type Status struct {
	RunID          string    `json:"run_id"`
	Phase          Phase     `json:"phase"`
	Round          int       `json:"round"`
	Items          int       `json:"items"`
	ItemsComplete  int       `json:"items_complete"`
	LabelsReceived int       `json:"labels_received"`
	LabelsNeeded   int       `json:"labels_needed"`
	Deadline       time.Time `json:"deadline,omitzero"`
	// Extensions counts the times the open round's deadline moved: by the
	// extension policy (too few labels at the deadline) and by leads
	// (ExtendRound); LeadExtensions counts the latter.
	Extensions     int                `json:"extensions"`
	LeadExtensions int                `json:"lead_extensions,omitempty"`
	LastMetrics    map[string]float64 `json:"last_metrics,omitempty"`
	ModelURI       string             `json:"model_uri"`
	LabelSetURI    string             `json:"label_set_uri,omitempty"`
	LabelsTotal    int                `json:"labels_total"`
	// Adaptation is the adaptation phase's record once it has run.
	Adaptation *Adaptation `json:"adaptation,omitempty"`
	// Agreement is the open round's inter-annotator agreement so far.
	Agreement *Agreement `json:"agreement,omitempty"`
}

// BatchItem is one item of the open round, for annotators.
type BatchItem struct {
	ItemID      string       `json:"item_id"`
	Text        string       `json:"text"`
	Suggestions []Suggestion `json:"suggestions,omitempty"`
	// Answers is how many answers are counted; Quorum how many are needed.
	Answers int  `json:"answers"`
	Quorum  int  `json:"quorum"`
	Skipped bool `json:"skipped,omitempty"`
	Flagged bool `json:"flagged,omitempty"`
	// Annotators who already answered (they may not answer again).
	Annotators []string `json:"annotators,omitempty"`
	// SkippedBy are the annotators who skipped the item for themselves
	// (they may not answer it; others still do).
	SkippedBy []string `json:"skipped_by,omitempty"`
	// Masks is the number of [MASK] blanks: an answer has that many
	// entries.
	Masks int `json:"masks"`
}

// BatchView is the answer of the Batch query.
type BatchView struct {
	Round    int         `json:"round"`
	Open     bool        `json:"open"`
	Deadline time.Time   `json:"deadline,omitzero"`
	Items    []BatchItem `json:"items"`
}

// RoundMetrics summarises one finished round.
type RoundMetrics struct {
	Round      int    `json:"round"`
	EndedBy    string `json:"ended_by"`
	Items      int    `json:"items"`
	Labeled    int    `json:"labeled"`
	Answers    int    `json:"answers"`
	Ties       int    `json:"ties,omitempty"`
	Flagged    int    `json:"flagged,omitempty"`
	Skipped    int    `json:"skipped,omitempty"`
	Extensions int    `json:"extensions,omitempty"`
	// LeadExtensions counts the extensions leads asked for (ExtendRound);
	// they are included in Extensions.
	LeadExtensions int                `json:"lead_extensions,omitempty"`
	Steps          int                `json:"steps"`
	FinalLoss      float64            `json:"final_loss"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	Forgetting     map[string]float64 `json:"forgetting,omitempty"`
	Promoted       bool               `json:"promoted"`
	CandidateURI   string             `json:"candidate_uri"`
	ModelURI       string             `json:"model_uri"`
	LabelSetURI    string             `json:"label_set_uri"`
	PromotionNote  string             `json:"promotion_note,omitempty"`
	// Dropped counts records the bounds left out.
	Dropped   int        `json:"dropped,omitempty"`
	Agreement *Agreement `json:"agreement,omitempty"`
}

// Result is what a finished ActiveLearning workflow returns.
type Result struct {
	RunID       string         `json:"run_id"`
	Rounds      int            `json:"rounds"`
	ModelURI    string         `json:"model_uri"`
	LabelSetURI string         `json:"label_set_uri"`
	LabelsTotal int            `json:"labels_total"`
	StopReason  string         `json:"stop_reason"`
	History     []RoundMetrics `json:"history"`
	// Adaptation is the adaptation phase's record (nil without one).
	Adaptation *Adaptation `json:"adaptation,omitempty"`
}

// The adaptation phase: continued masked-LM pretraining of the starting
// model on the pool's own text, once, before round 1.

// ActivityAdapt is the adaptation activity (on GPUTaskQueue).
const ActivityAdapt = "Adapt"

// ChangeAdaptPhase is the GetVersion change id of the adaptation phase:
// version 1 runs it when RunConfig.Adapt is set. A run recorded before the
// change replays with DefaultVersion and never adapts.
const ChangeAdaptPhase = "adapt-phase"

// PhaseAdapting is the phase of the adaptation (before round 1's scoring).
const PhaseAdapting Phase = "adapting"

// Packings of the adaptation corpus (see mlm.Packing).
const (
	// AdaptPackLines makes every text its own training sequence (the
	// default: pool items are short, unrelated texts).
	AdaptPackLines = "lines"
	// AdaptPackSequences packs texts into full-length sequences.
	AdaptPackSequences = "pack"
)

// AdaptSettings configure the adaptation phase. The corpus is the pool's
// item texts with their [MASK] blanks left in place: a blank is input the
// model sees (as at scoring and evaluation) but never a prediction target,
// and the pool's answers are never used. TextURI replaces the pool by a
// corpus of the user's (plain text, one text a line). Zero values take the
// defaults noted.
type AdaptSettings struct {
	// Steps is the number of optimizer steps (required).
	Steps int `json:"steps"`
	// LearningRate is the peak learning rate (default 5e-4, 6 % warm-up,
	// linear decay).
	LearningRate float64 `json:"learning_rate,omitempty"`
	// BatchSize is the number of sequences per step (default 32).
	BatchSize int `json:"batch_size,omitempty"`
	// SeqLen is the longest training sequence in tokens, [CLS] and [SEP]
	// included (default: the model's maximum).
	SeqLen int `json:"seq_len,omitempty"`
	// MaskProb is the share of tokens predicted (default 0.15).
	MaskProb float64 `json:"mask_prob,omitempty"`
	// Packing is AdaptPackLines (default) or AdaptPackSequences.
	Packing string `json:"packing,omitempty"`
	Seed    int64  `json:"seed,omitempty"`
	// CheckpointEvery is how many steps between resumable checkpoints
	// (default: the worker's, 100).
	CheckpointEvery int `json:"checkpoint_every,omitempty"`
	// TextURI, when set, is the corpus instead of the pool.
	TextURI string `json:"text_uri,omitempty"`
	// TargetShare, when positive (at most 1), trains on that share of the
	// corpus only: the texts most like the run's target sample
	// (RunConfig.TargetURI, required then) by the cross-entropy difference
	// of word unigram models (dataset.DomainScorer), for a pool that is
	// mostly off-target. 0 trains on the whole corpus.
	TargetShare float64 `json:"target_share,omitempty"`
}

// maxAdaptSteps bounds AdaptSettings.Steps (a typo guard: a million steps
// is days of training).
const maxAdaptSteps = 1_000_000

// Validate checks the settings and returns the first problem found.
func (a *AdaptSettings) Validate() error {
	switch {
	case a.Steps <= 0 || a.Steps > maxAdaptSteps:
		return fmt.Errorf("steps must be between 1 and %d, got %d", maxAdaptSteps, a.Steps)
	case !(a.LearningRate >= 0 && a.LearningRate < 1):
		return fmt.Errorf("learning_rate must be within [0, 1) (0: default 5e-4), got %g", a.LearningRate)
	case a.BatchSize < 0 || a.BatchSize > 4096:
		return fmt.Errorf("batch_size must be between 0 (default) and 4096, got %d", a.BatchSize)
	case a.SeqLen != 0 && (a.SeqLen < 3 || a.SeqLen > 8192):
		return fmt.Errorf("seq_len must be 0 (the model's maximum) or between 3 and 8192, got %d", a.SeqLen)
	case !(a.MaskProb >= 0 && a.MaskProb < 1):
		return fmt.Errorf("mask_prob must be within (0, 1) (0: default 0.15), got %g", a.MaskProb)
	case a.Packing != "" && a.Packing != AdaptPackLines && a.Packing != AdaptPackSequences:
		return fmt.Errorf("packing must be %q or %q, got %q", AdaptPackLines, AdaptPackSequences, a.Packing)
	case a.CheckpointEvery < 0:
		return fmt.Errorf("checkpoint_every must not be negative, got %d", a.CheckpointEvery)
	case strings.TrimSpace(a.TextURI) != a.TextURI:
		return fmt.Errorf("text_uri %q has leading or trailing spaces", a.TextURI)
	case !(a.TargetShare >= 0 && a.TargetShare <= 1):
		return fmt.Errorf("target_share must be within [0, 1] (0: the whole corpus), got %g", a.TargetShare)
	}
	return nil
}

// AdaptInput asks the GPU worker for the adaptation.
type AdaptInput struct {
	RunID        string `json:"run_id"`
	BaseModelURI string `json:"base_model_uri"`
	// PoolURI is the pool whose texts are the corpus (unless
	// Settings.TextURI is set).
	PoolURI string `json:"pool_uri"`
	// OutputPrefix is where checkpoints and the adapted model go.
	OutputPrefix string        `json:"output_prefix"`
	Settings     AdaptSettings `json:"settings"`
	// TargetURI is RunConfig.TargetURI when Settings.TargetShare is set.
	TargetURI string `json:"target_uri,omitempty"`
}

// AdaptOutput names the adapted model.
type AdaptOutput struct {
	CheckpointURI string  `json:"checkpoint_uri"`
	Steps         int     `json:"steps"`
	FinalLoss     float64 `json:"final_loss"`
	// ResumedFromStep is the step the last attempt started from (0: fresh).
	ResumedFromStep int `json:"resumed_from_step"`
	// Texts is the number of corpus texts trained on, Sequences the
	// training sequences made of them.
	Texts     int `json:"texts"`
	Sequences int `json:"sequences"`
}

// Adaptation is what the run records of its adaptation phase.
type Adaptation struct {
	// BaseModelURI is the starting model, ModelURI the adapted one (its
	// permanent copy, <prefix>/models/adapted), which is round 1's model
	// and the current model that round 1's candidate must beat.
	BaseModelURI    string  `json:"base_model_uri"`
	ModelURI        string  `json:"model_uri"`
	Steps           int     `json:"steps"`
	FinalLoss       float64 `json:"final_loss"`
	ResumedFromStep int     `json:"resumed_from_step,omitempty"`
	Texts           int     `json:"texts"`
	// BaseMetrics and Metrics are the starting and the adapted model's
	// evaluations (and the forgetting set's, when the run has one).
	BaseMetrics    map[string]float64 `json:"base_metrics,omitempty"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	BaseForgetting map[string]float64 `json:"base_forgetting,omitempty"`
	Forgetting     map[string]float64 `json:"forgetting,omitempty"`
}
