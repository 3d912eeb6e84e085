package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/clozeloop/clozeloop/workflows"
)

// Adapt runs the adaptation phase (continued masked-LM pretraining on the
// pool's text). Like FineTune, it heartbeats its progress with the last
// uploaded checkpoint, and a retried attempt, on this or another worker,
// reads the last heartbeat and resumes from that checkpoint.
func (a *Activities) Adapt(ctx context.Context, in workflows.AdaptInput) (workflows.AdaptOutput, error) {
	var out workflows.AdaptOutput
	if a.Adapter == nil {
		return out, temporal.NewNonRetryableApplicationError("adapt: this worker has no adaptation engine", "NoAdapter", nil)
	}
	var resume *TrainProgress
	if activity.HasHeartbeatDetails(ctx) {
		var p TrainProgress
		if err := activity.GetHeartbeatDetails(ctx, &p); err == nil && p.CheckpointURI != "" {
			resume = &p
			out.ResumedFromStep = p.CheckpointStep
			a.log().Info("adaptation resumes from its last checkpoint", "step", p.CheckpointStep, "checkpoint", p.CheckpointURI)
		}
	}
	last := TrainProgress{}
	if resume != nil {
		last = *resume
	}
	res, err := a.Adapter.Adapt(ctx, AdaptRequest{
		BaseModelURI: in.BaseModelURI, PoolURI: in.PoolURI, OutputPrefix: in.OutputPrefix,
		Settings: in.Settings, Resume: resume,
	}, func(p TrainProgress) {
		if p.CheckpointURI == "" { // keep the last resumable point in every heartbeat
			p.CheckpointURI, p.CheckpointStep = last.CheckpointURI, last.CheckpointStep
		}
		last = p
		activity.RecordHeartbeat(ctx, p)
	})
	if err != nil {
		corpus := in.PoolURI
		if in.Settings.TextURI != "" {
			corpus = in.Settings.TextURI
		}
		return out, nonRetryable(fmt.Sprintf("adapt %s on %s", in.BaseModelURI, corpus), err)
	}
	out.CheckpointURI, out.Steps, out.FinalLoss = res.CheckpointURI, res.Steps, res.FinalLoss
	out.Texts, out.Sequences = res.Texts, res.Sequences
	if res.ResumedFrom != 0 {
		out.ResumedFromStep = res.ResumedFrom
	}
	return out, nil
}
