package activities

import (
	"context"
	"fmt"

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
	resume := resumePoint(ctx)
	if resume != nil {
		out.ResumedFromStep = resume.CheckpointStep
		a.log().Info("adaptation resumes from its last checkpoint", "step", resume.CheckpointStep, "checkpoint", resume.CheckpointURI)
	}
	res, err := a.Adapter.Adapt(ctx, AdaptRequest{
		BaseModelURI: in.BaseModelURI, PoolURI: in.PoolURI, OutputPrefix: in.OutputPrefix,
		Settings: in.Settings, TargetURI: in.TargetURI, Resume: resume,
	}, trainHeartbeat(ctx, resume, "adapt", a.obs()))
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
