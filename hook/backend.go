// Package hook is clozeloop's annotation hook: a small HTTP service that
// shows annotators the open round of an ActiveLearning run (a self-contained
// web page, embedded in the binary) and turns their answers into the
// workflow's Updates and Signals through a JSON API under /api/v1/.
//
// Every API request is authenticated (auth.go): by an annotator account's
// token (Authorization: Bearer, accounts.go), by the page's session cookie
// (session.go), or, in proxy mode, by the identity header of a trusted
// reverse proxy. The account's role (annotator, lead, admin) decides what it
// may do, and the annotator of an answer, skip or flag is always the
// authenticated one. Only a hook reached over loopback may run without
// authentication (AuthOptions.NoAuth).
package hook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clozeloop/clozeloop/workflows"
)

// ErrUnknownRun is wrapped by a Backend when the run does not exist (or is
// not served by this hook).
var ErrUnknownRun = errors.New("unknown run")

// ErrUnavailable is wrapped by a Backend when Temporal (or the worker that
// answers queries) did not answer in time.
var ErrUnavailable = errors.New("temporal unavailable")

// RejectedError is returned by a Backend when the workflow rejected an
// Update: its validator refused the submission, and Reason says why.
type RejectedError struct {
	// Update is the Update's name.
	Update string
	// Reason is the validator's message, shown to the annotator as is.
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s rejected: %s", e.Update, e.Reason)
}

// RunSummary is one ActiveLearning run as listed by GET /api/v1/runs.
type RunSummary struct {
	// RunID is the workflow id, which is the run id of the RunConfig.
	RunID string `json:"run_id"`
	// ExecutionID is Temporal's id of the current execution (it changes at
	// each continue-as-new, i.e. each round).
	ExecutionID string    `json:"execution_id,omitempty"`
	Status      string    `json:"status,omitempty"`
	StartTime   time.Time `json:"start_time,omitzero"`
	// Dataset, Strategy, Model and Round come from the workflow's memo.
	Dataset  string `json:"dataset,omitempty"`
	Strategy string `json:"strategy,omitempty"`
	Model    string `json:"model,omitempty"`
	Round    int    `json:"round,omitempty"`
}

// Backend is what the hook needs from Temporal: the ActiveLearning
// workflow's queries, Updates and Signals, addressed by run (workflow) id.
// NewTemporalBackend implements it over the Temporal SDK client; tests use a
// fake.
type Backend interface {
	// ListRuns lists the open ActiveLearning runs.
	ListRuns(ctx context.Context) ([]RunSummary, error)
	// Status runs the Status query.
	Status(ctx context.Context, runID string) (workflows.Status, error)
	// Batch runs the Batch query.
	Batch(ctx context.Context, runID string) (workflows.BatchView, error)
	// SubmitLabels sends the SubmitLabels Update and waits for its result;
	// a validator rejection is a *RejectedError.
	SubmitLabels(ctx context.Context, runID string, s workflows.LabelSubmission) (workflows.SubmitResult, error)
	// SignalLabels sends the labels Signal (no validation, no result).
	SignalLabels(ctx context.Context, runID string, s workflows.LabelSubmission) error
	// Skip sends the Skip Signal for one item.
	Skip(ctx context.Context, runID string, n workflows.ItemNote) error
	// Flag sends the Flag Signal for one item.
	Flag(ctx context.Context, runID string, n workflows.ItemNote) error
	// CloseRound sends the CloseRound Update and waits for its result; a
	// validator rejection is a *RejectedError.
	CloseRound(ctx context.Context, runID string, req workflows.CloseRequest) (workflows.Status, error)
	// ExtendRound sends the ExtendRound Update and waits for its result; a
	// validator rejection is a *RejectedError.
	ExtendRound(ctx context.Context, runID string, req workflows.ExtendRequest) (workflows.Status, error)
}
