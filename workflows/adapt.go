package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// adapt runs the adaptation phase when the run config asks for it: once,
// in the run's first execution (never after continue-as-new), before round
// 1. The starting model is trained further as a masked LM on the pool's
// text (activity Adapt, GPU queue, resumable), the starting and the
// adapted model are evaluated, and the adapted model is uploaded as
// <prefix>/models/adapted and made the current model: round 1 scores the
// pool and fine-tunes from it, and its metrics are what round 1's
// candidate must beat. Carry.Adaptation records the outcome.
func (w *activeLearning) adapt(ctx workflow.Context) error {
	cfg := w.cfg
	if cfg.Adapt == nil || cfg.Resume != nil || w.carry.Adaptation != nil {
		return nil
	}
	if workflow.GetVersion(ctx, ChangeAdaptPhase, workflow.DefaultVersion, 1) < 1 {
		return nil
	}
	w.setPhase(ctx, PhaseAdapting)
	base := w.carry.ModelURI
	in := AdaptInput{RunID: cfg.RunID, BaseModelURI: base, PoolURI: cfg.PoolURI,
		OutputPrefix: cfg.OutputPrefix + "/adapt", Settings: *cfg.Adapt}
	if cfg.Adapt.TargetShare > 0 {
		in.TargetURI = cfg.TargetURI
	}
	var out AdaptOutput
	if err := workflow.ExecuteActivity(trainOptions(ctx, cfg.FineTune.HeartbeatTimeout), ActivityAdapt, in).Get(ctx, &out); err != nil {
		return fmt.Errorf("adaptation of %s: %w", base, err)
	}

	forgetting := ""
	if workflow.GetVersion(ctx, ChangeForgettingEval, workflow.DefaultVersion, 1) >= 1 {
		forgetting = cfg.ForgettingEvalURI
	}
	ectx := evalOptions(ctx)
	baseF := workflow.ExecuteActivity(ectx, ActivityEvaluate, EvaluateInput{ModelURI: base, EvalURI: cfg.EvalURI, ForgettingEvalURI: forgetting})
	adaptedF := workflow.ExecuteActivity(ectx, ActivityEvaluate, EvaluateInput{ModelURI: out.CheckpointURI, EvalURI: cfg.EvalURI, ForgettingEvalURI: forgetting})
	var baseEval, adaptedEval EvaluateOutput
	if err := baseF.Get(ctx, &baseEval); err != nil {
		return fmt.Errorf("adaptation: evaluate starting model %s: %w", base, err)
	}
	if err := adaptedF.Get(ctx, &adaptedEval); err != nil {
		return fmt.Errorf("adaptation: evaluate adapted model %s: %w", out.CheckpointURI, err)
	}

	var up UploadCheckpointOutput
	if err := workflow.ExecuteActivity(storeOptions(ctx), ActivityUploadCheckpoint, UploadCheckpointInput{
		RunID: cfg.RunID, CheckpointURI: out.CheckpointURI, OutputPrefix: cfg.OutputPrefix,
		Name: "adapted", Promote: true, Metrics: adaptedEval.Metrics,
	}).Get(ctx, &up); err != nil {
		return fmt.Errorf("adaptation: upload adapted model: %w", err)
	}
	w.carry.Adaptation = &Adaptation{
		BaseModelURI: base, ModelURI: up.ModelURI, Steps: out.Steps, FinalLoss: out.FinalLoss,
		ResumedFromStep: out.ResumedFromStep, Texts: out.Texts,
		BaseMetrics: baseEval.Metrics, Metrics: adaptedEval.Metrics,
		BaseForgetting: baseEval.Forgetting, Forgetting: adaptedEval.Forgetting,
	}
	w.carry.ModelURI = up.ModelURI
	w.carry.CurrentMetrics, w.carry.CurrentForgetting = adaptedEval.Metrics, adaptedEval.Forgetting
	if err := workflow.UpsertMemo(ctx, map[string]any{"model": up.ModelURI}); err != nil {
		return fmt.Errorf("upsert memo: %w", err)
	}
	workflow.GetLogger(ctx).Info("adaptation done", "base", base, "model", up.ModelURI, "steps", out.Steps, "loss", out.FinalLoss,
		"resumed_from", out.ResumedFromStep, "base_metrics", baseEval.Metrics, "metrics", adaptedEval.Metrics)
	return nil
}
