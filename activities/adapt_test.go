package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/clozeloop/clozeloop/workflows"
)

// resumingAdapter saves a checkpoint every 10 steps and can die at a step.
type resumingAdapter struct {
	dieAt   int
	started []int
	reqs    []AdaptRequest
}

func (ad *resumingAdapter) Adapt(ctx context.Context, req AdaptRequest, progress func(TrainProgress)) (AdaptResult, error) {
	start := 0
	if req.Resume != nil {
		start = req.Resume.CheckpointStep
	}
	ad.started = append(ad.started, start)
	ad.reqs = append(ad.reqs, req)
	for step := start + 1; step <= 30; step++ {
		p := TrainProgress{Step: step, TotalSteps: 30, Loss: 3 - float64(step)/10}
		if step%10 == 0 {
			p.CheckpointURI, p.CheckpointStep = fmt.Sprintf("%s/step-%d", req.OutputPrefix, step), step
		}
		progress(p)
		if step == ad.dieAt {
			ad.dieAt = 0
			return AdaptResult{}, errors.New("worker lost the GPU")
		}
	}
	return AdaptResult{CheckpointURI: req.OutputPrefix + "/model", Steps: 30, ResumedFrom: start, Texts: 7, Sequences: 7}, nil
}

func TestAdaptResumesFromHeartbeat(t *testing.T) {
	ad := &resumingAdapter{dieAt: 25}
	env := newEnv(&Activities{Blobs: &MemBlobs{}})
	env.RegisterActivityWithOptions((&Activities{Adapter: ad}).Adapt, activity.RegisterOptions{Name: workflows.ActivityAdapt})
	in := workflows.AdaptInput{RunID: "r", BaseModelURI: "base", PoolURI: "pool", OutputPrefix: "runs/r/adapt",
		Settings: workflows.AdaptSettings{Steps: 30, TextURI: "corpus.txt"}}
	if _, err := env.ExecuteActivity(workflows.ActivityAdapt, in); err == nil || !strings.Contains(err.Error(), "adapt base on corpus.txt") {
		t.Fatalf("first attempt: %v, want a failure naming the model and corpus", err)
	}
	env.SetHeartbeatDetails(TrainProgress{Step: 25, TotalSteps: 30, CheckpointURI: "runs/r/adapt/step-20", CheckpointStep: 20})
	v, err := env.ExecuteActivity(workflows.ActivityAdapt, in)
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.AdaptOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	if out.ResumedFromStep != 20 || ad.started[1] != 20 || out.Steps != 30 || out.Texts != 7 || out.CheckpointURI != "runs/r/adapt/model" {
		t.Fatalf("out = %+v, started = %v", out, ad.started)
	}
	if r := ad.reqs[1]; r.PoolURI != "pool" || r.Settings != in.Settings || r.Resume == nil || r.Resume.CheckpointURI != "runs/r/adapt/step-20" {
		t.Errorf("retry request %+v", r)
	}
}

func TestAdaptWithoutAdapterIsFinal(t *testing.T) {
	env := newEnv(&Activities{Blobs: &MemBlobs{}})
	env.RegisterActivityWithOptions((&Activities{}).Adapt, activity.RegisterOptions{Name: workflows.ActivityAdapt})
	_, err := env.ExecuteActivity(workflows.ActivityAdapt, workflows.AdaptInput{BaseModelURI: "base", Settings: workflows.AdaptSettings{Steps: 1}})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), "no adaptation engine") {
		t.Fatalf("error %v, want a non-retryable error", err)
	}
}
