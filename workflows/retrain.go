package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// RetrainConfig is the one input of the Retrain workflow.
type RetrainConfig struct {
	// RunID is the active-learning run whose labels are used.
	RunID string `json:"run_id"`
	// OutputPrefix is that run's prefix (default "runs/<run_id>").
	OutputPrefix string `json:"output_prefix,omitempty"`
	// From is "base" (start from BaseModelURI) or "current" (continue from
	// the run's current model; the default).
	From string `json:"from,omitempty"`
	// BaseModelURI is the pretrained model for From="base".
	BaseModelURI      string           `json:"base_model_uri,omitempty"`
	EvalURI           string           `json:"eval_uri"`
	ForgettingEvalURI string           `json:"forgetting_eval_uri,omitempty"`
	FineTune          FineTuneSettings `json:"fine_tune,omitempty"`
	Promotion         PromotionRule    `json:"promotion,omitempty"`
}

// RetrainResult says what a retrain did.
type RetrainResult struct {
	Skipped       string             `json:"skipped,omitempty"`
	Name          string             `json:"name,omitempty"`
	BaseModelURI  string             `json:"base_model_uri,omitempty"`
	CandidateURI  string             `json:"candidate_uri,omitempty"`
	ModelURI      string             `json:"model_uri,omitempty"`
	Promoted      bool               `json:"promoted"`
	PromotionNote string             `json:"promotion_note,omitempty"`
	Metrics       map[string]float64 `json:"metrics,omitempty"`
	Steps         int                `json:"steps"`
}

// Validate checks a RetrainConfig.
func (c *RetrainConfig) Validate() error {
	switch {
	case c.RunID == "":
		return fmt.Errorf("run_id is required")
	case c.EvalURI == "":
		return fmt.Errorf("eval_uri is required")
	case c.From != "" && c.From != "base" && c.From != "current":
		return fmt.Errorf("from must be \"base\" or \"current\", got %q", c.From)
	case c.From == "base" && c.BaseModelURI == "":
		return fmt.Errorf("base_model_uri is required with from=base")
	}
	return nil
}

// Retrain fine-tunes on every label of a run so far (from the base model or
// the current one), evaluates the result against the current model and
// promotes it by the same rule as ActiveLearning. A Temporal Schedule starts
// it nightly.
func Retrain(ctx workflow.Context, cfg RetrainConfig) (*RetrainResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("invalid retrain config: "+err.Error(), "InvalidRetrainConfig", nil)
	}
	if cfg.OutputPrefix == "" {
		cfg.OutputPrefix = "runs/" + cfg.RunID
	}
	if cfg.From == "" {
		cfg.From = "current"
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{"run": cfg.RunID, "from": cfg.From}); err != nil {
		return nil, fmt.Errorf("upsert memo: %w", err)
	}

	var run ResolveRunOutput
	if err := workflow.ExecuteActivity(storeOptions(ctx), ActivityResolveRun, ResolveRunInput{OutputPrefix: cfg.OutputPrefix}).Get(ctx, &run); err != nil {
		return nil, fmt.Errorf("resolve run %s: %w", cfg.RunID, err)
	}
	if run.LabelSetURI == "" {
		return &RetrainResult{Skipped: "run " + cfg.RunID + " has no labels yet"}, nil
	}
	base := run.ModelURI
	if cfg.From == "base" || base == "" {
		base = cfg.BaseModelURI
	}
	if base == "" {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("run %s has no current model and no base_model_uri is set", cfg.RunID), "InvalidRetrainConfig", nil)
	}
	name := "retrain-" + workflow.Now(ctx).UTC().Format("20060102T150405")
	res := &RetrainResult{Name: name, BaseModelURI: base}

	var trained FineTuneOutput
	if err := workflow.ExecuteActivity(trainOptions(ctx, cfg.FineTune.HeartbeatTimeout), ActivityFineTune, FineTuneInput{
		RunID: cfg.RunID, BaseModelURI: base, LabelSetURI: run.LabelSetURI,
		OutputPrefix: cfg.OutputPrefix + "/" + name + "/train", Settings: cfg.FineTune,
	}).Get(ctx, &trained); err != nil {
		return nil, fmt.Errorf("retrain %s: fine-tune: %w", name, err)
	}
	res.CandidateURI, res.Steps = trained.CheckpointURI, trained.Steps

	var cand, cur EvaluateOutput
	if err := workflow.ExecuteActivity(evalOptions(ctx), ActivityEvaluate, EvaluateInput{
		ModelURI: trained.CheckpointURI, EvalURI: cfg.EvalURI, ForgettingEvalURI: cfg.ForgettingEvalURI,
	}).Get(ctx, &cand); err != nil {
		return nil, fmt.Errorf("retrain %s: evaluate candidate: %w", name, err)
	}
	if run.ModelURI != "" {
		if err := workflow.ExecuteActivity(evalOptions(ctx), ActivityEvaluate, EvaluateInput{
			ModelURI: run.ModelURI, EvalURI: cfg.EvalURI, ForgettingEvalURI: cfg.ForgettingEvalURI,
		}).Get(ctx, &cur); err != nil {
			return nil, fmt.Errorf("retrain %s: evaluate current model: %w", name, err)
		}
	}
	res.Metrics = cand.Metrics
	res.Promoted, res.PromotionNote = Decide(cfg.Promotion, cand, cur)

	var up UploadCheckpointOutput
	if err := workflow.ExecuteActivity(storeOptions(ctx), ActivityUploadCheckpoint, UploadCheckpointInput{
		RunID: cfg.RunID, CheckpointURI: trained.CheckpointURI, OutputPrefix: cfg.OutputPrefix,
		Name: name, Promote: res.Promoted, Metrics: cand.Metrics,
		CheckCurrent: true, ExpectedCurrentURI: run.ModelURI,
	}).Get(ctx, &up); err != nil {
		return nil, fmt.Errorf("retrain %s: upload checkpoint: %w", name, err)
	}
	if res.Promoted && !up.Promoted {
		// The run's current model moved since ResolveRun (the active
		// learning loop promoted a round): it was not overwritten.
		res.Promoted = false
		res.PromotionNote += "; not promoted: " + up.Conflict
	}
	res.ModelURI = up.ModelURI
	return res, nil
}
