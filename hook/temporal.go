package hook

import (
	"context"
	"errors"
	"fmt"
	"slices"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/clozeloop/clozeloop/workflows"
)

// OpenRunsQuery is the visibility query that lists open ActiveLearning runs.
const OpenRunsQuery = "WorkflowType = '" + workflows.ActiveLearningName + "' AND ExecutionStatus = 'Running'"

// maxListedRuns bounds GET /api/v1/runs.
const maxListedRuns = 200

// TemporalClient is the part of the Temporal SDK client the hook uses;
// client.Client implements it.
type TemporalClient interface {
	ListWorkflow(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	UpdateWorkflow(ctx context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
}

// TemporalBackend implements Backend with the Temporal SDK client.
type TemporalBackend struct {
	c         TemporalClient
	namespace string
	runs      []string
}

// NewTemporalBackend returns a Backend over c. namespace is used for
// listing runs. When runIDs is not empty the backend serves only those runs
// (others are ErrUnknownRun) and lists them instead of querying visibility.
func NewTemporalBackend(c TemporalClient, namespace string, runIDs []string) *TemporalBackend {
	return &TemporalBackend{c: c, namespace: namespace, runs: slices.Clone(runIDs)}
}

func (b *TemporalBackend) allowed(runID string) error {
	if len(b.runs) > 0 && !slices.Contains(b.runs, runID) {
		return fmt.Errorf("run %q: %w (this hook serves %d configured runs)", runID, ErrUnknownRun, len(b.runs))
	}
	return nil
}

// ListRuns lists the open ActiveLearning runs (or the configured ones).
func (b *TemporalBackend) ListRuns(ctx context.Context) ([]RunSummary, error) {
	if len(b.runs) > 0 {
		out := make([]RunSummary, 0, len(b.runs))
		for _, id := range b.runs {
			out = append(out, RunSummary{RunID: id})
		}
		return out, nil
	}
	var out []RunSummary
	var token []byte
	for {
		resp, err := b.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: b.namespace, Query: OpenRunsQuery, PageSize: 100, NextPageToken: token,
		})
		if err != nil {
			return nil, classify("list runs", "", "", err)
		}
		for _, e := range resp.GetExecutions() {
			s := RunSummary{
				RunID:       e.GetExecution().GetWorkflowId(),
				ExecutionID: e.GetExecution().GetRunId(),
				Status:      e.GetStatus().String(),
			}
			if e.GetStartTime() != nil {
				s.StartTime = e.GetStartTime().AsTime()
			}
			fields := e.GetMemo().GetFields()
			s.Dataset = memoString(fields, "dataset")
			s.Strategy = memoString(fields, "strategy")
			s.Model = memoString(fields, "model")
			var round int
			if p, ok := fields["round"]; ok && converter.GetDefaultDataConverter().FromPayload(p, &round) == nil {
				s.Round = round
			}
			out = append(out, s)
			if len(out) == maxListedRuns {
				return out, nil
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

func memoString(fields map[string]*commonpb.Payload, key string) string {
	p, ok := fields[key]
	if !ok {
		return ""
	}
	var s string
	if converter.GetDefaultDataConverter().FromPayload(p, &s) != nil {
		return ""
	}
	return s
}

func (b *TemporalBackend) query(ctx context.Context, runID, name string, out any) error {
	if err := b.allowed(runID); err != nil {
		return err
	}
	v, err := b.c.QueryWorkflow(ctx, runID, "", name)
	if err != nil {
		return classify(name+" query", name, runID, err)
	}
	if err := v.Get(out); err != nil {
		return fmt.Errorf("decode %s query result of run %s: %w", name, runID, err)
	}
	return nil
}

// Status runs the Status query.
func (b *TemporalBackend) Status(ctx context.Context, runID string) (workflows.Status, error) {
	var st workflows.Status
	err := b.query(ctx, runID, workflows.QueryStatus, &st)
	return st, err
}

// Batch runs the Batch query.
func (b *TemporalBackend) Batch(ctx context.Context, runID string) (workflows.BatchView, error) {
	var v workflows.BatchView
	err := b.query(ctx, runID, workflows.QueryBatch, &v)
	return v, err
}

func (b *TemporalBackend) update(ctx context.Context, runID, name string, arg, out any) error {
	if err := b.allowed(runID); err != nil {
		return err
	}
	h, err := b.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: runID, UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return classify(name+" update", name, runID, err)
	}
	if err := h.Get(ctx, out); err != nil {
		return classify(name+" update", name, runID, err)
	}
	return nil
}

// SubmitLabels sends the SubmitLabels Update and waits for its result.
func (b *TemporalBackend) SubmitLabels(ctx context.Context, runID string, s workflows.LabelSubmission) (workflows.SubmitResult, error) {
	var res workflows.SubmitResult
	err := b.update(ctx, runID, workflows.UpdateSubmitLabels, s, &res)
	return res, err
}

// CloseRound sends the CloseRound Update and waits for its result.
func (b *TemporalBackend) CloseRound(ctx context.Context, runID string, req workflows.CloseRequest) (workflows.Status, error) {
	var st workflows.Status
	err := b.update(ctx, runID, workflows.CloseRound, req, &st)
	return st, err
}

// ExtendRound sends the ExtendRound Update and waits for its result.
func (b *TemporalBackend) ExtendRound(ctx context.Context, runID string, req workflows.ExtendRequest) (workflows.Status, error) {
	var st workflows.Status
	err := b.update(ctx, runID, workflows.ExtendRound, req, &st)
	return st, err
}

func (b *TemporalBackend) signal(ctx context.Context, runID, name string, arg any) error {
	if err := b.allowed(runID); err != nil {
		return err
	}
	if err := b.c.SignalWorkflow(ctx, runID, "", name, arg); err != nil {
		return classify(name+" signal", name, runID, err)
	}
	return nil
}

// SignalLabels sends the labels Signal.
func (b *TemporalBackend) SignalLabels(ctx context.Context, runID string, s workflows.LabelSubmission) error {
	return b.signal(ctx, runID, workflows.SignalLabels, s)
}

// Skip sends the Skip Signal.
func (b *TemporalBackend) Skip(ctx context.Context, runID string, n workflows.ItemNote) error {
	return b.signal(ctx, runID, workflows.SignalSkip, n)
}

// Flag sends the Flag Signal.
func (b *TemporalBackend) Flag(ctx context.Context, runID string, n workflows.ItemNote) error {
	return b.signal(ctx, runID, workflows.SignalFlag, n)
}

// classify maps SDK errors to ErrUnknownRun, ErrUnavailable and
// *RejectedError, keeping the original error wrapped. what describes the
// call, name is the query, update or signal name.
func classify(what, name, runID string, err error) error {
	target := what
	if runID != "" {
		target = fmt.Sprintf("%s on run %s", what, runID)
	}
	var notFound *serviceerror.NotFound
	var app *temporal.ApplicationError
	var timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	var canceled *serviceerror.Canceled
	switch {
	case errors.As(err, &notFound):
		return fmt.Errorf("%s: %w: %w", target, ErrUnknownRun, err)
	case errors.As(err, &app):
		// The ActiveLearning update handlers never fail, so an application
		// error is the validator's rejection.
		return &RejectedError{Update: name, Reason: app.Message()}
	case errors.As(err, &timeout), errors.As(err, &unavailable), errors.As(err, &deadline), errors.As(err, &canceled),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w: %w", target, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", target, err)
}
