package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/workflows"
)

// fakeBackend is an in-memory ActiveLearning run: one open round with
// items "a" and "b", validated like the workflow's validator.
type fakeBackend struct {
	mu      sync.Mutex
	runID   string
	round   int
	open    bool
	answers map[string]map[string]string // item -> annotator -> answer
	calls   []string
	skipped []workflows.ItemNote
	flagged []workflows.ItemNote
	signals []workflows.LabelSubmission
	closes  []workflows.CloseRequest
	extends []workflows.ExtendRequest
	// fail, when set, is returned by every call.
	fail error
}

func newFake() *fakeBackend {
	return &fakeBackend{runID: "run-1", round: 2, open: true, answers: map[string]map[string]string{}}
}

func (f *fakeBackend) record(name, runID string) error {
	f.calls = append(f.calls, name+" "+runID)
	if f.fail != nil {
		return f.fail
	}
	if runID != f.runID {
		return fmt.Errorf("query on %s: %w", runID, ErrUnknownRun)
	}
	return nil
}

func (f *fakeBackend) ListRuns(ctx context.Context) ([]RunSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list", f.runID); err != nil {
		return nil, err
	}
	return []RunSummary{{RunID: f.runID, Dataset: "wordnet", Round: f.round}}, nil
}

func (f *fakeBackend) Status(ctx context.Context, runID string) (workflows.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("status", runID); err != nil {
		return workflows.Status{}, err
	}
	return workflows.Status{RunID: runID, Phase: workflows.PhaseLabeling, Round: f.round, Items: 2}, nil
}

var fakeItems = []string{"a", "b", "two"}

// fakeText is item "two"'s two blanks or the others' one.
func fakeText(id string) string {
	if id == "two" {
		return "the [MASK] [MASK] barked"
	}
	return "the [MASK] barked"
}

func (f *fakeBackend) Batch(ctx context.Context, runID string) (workflows.BatchView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("batch", runID); err != nil {
		return workflows.BatchView{}, err
	}
	v := workflows.BatchView{Round: f.round, Open: f.open}
	for _, id := range fakeItems {
		v.Items = append(v.Items, workflows.BatchItem{ItemID: id, Text: fakeText(id), Quorum: 1,
			Suggestions: []workflows.Suggestion{{Token: "dog", Prob: 0.7}, {Token: "cat", Prob: 0.1}}})
	}
	return v, nil
}

func (f *fakeBackend) SubmitLabels(ctx context.Context, runID string, s workflows.LabelSubmission) (workflows.SubmitResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("submit", runID); err != nil {
		return workflows.SubmitResult{}, err
	}
	reject := func(format string, args ...any) (workflows.SubmitResult, error) {
		return workflows.SubmitResult{}, &RejectedError{Update: workflows.UpdateSubmitLabels, Reason: fmt.Sprintf(format, args...)}
	}
	if s.Round != f.round {
		return reject("wrong round: the submission is for round %d, the current round is %d", s.Round, f.round)
	}
	for _, a := range s.Answers {
		if !slices.Contains(fakeItems, a.ItemID) {
			return reject("unknown item id %q in round %d", a.ItemID, f.round)
		}
		if _, dup := f.answers[a.ItemID][s.Annotator]; dup {
			return reject("annotator %q already answered item %q", s.Annotator, a.ItemID)
		}
	}
	for _, a := range s.Answers {
		if f.answers[a.ItemID] == nil {
			f.answers[a.ItemID] = map[string]string{}
		}
		f.answers[a.ItemID][s.Annotator] = strings.Join(a.Answers, AnswerSeparator)
	}
	return workflows.SubmitResult{Round: s.Round, Counted: len(s.Answers), ItemsComplete: len(f.answers), ItemsNeeded: 2,
		RoundComplete: len(f.answers) >= 2}, nil
}

func (f *fakeBackend) SignalLabels(ctx context.Context, runID string, s workflows.LabelSubmission) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("signal", runID); err != nil {
		return err
	}
	f.signals = append(f.signals, s)
	return nil
}

func (f *fakeBackend) Skip(ctx context.Context, runID string, n workflows.ItemNote) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("skip", runID); err != nil {
		return err
	}
	f.skipped = append(f.skipped, n)
	return nil
}

func (f *fakeBackend) Flag(ctx context.Context, runID string, n workflows.ItemNote) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("flag", runID); err != nil {
		return err
	}
	f.flagged = append(f.flagged, n)
	return nil
}

func (f *fakeBackend) CloseRound(ctx context.Context, runID string, req workflows.CloseRequest) (workflows.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("close", runID); err != nil {
		return workflows.Status{}, err
	}
	if !f.open {
		return workflows.Status{}, &RejectedError{Update: workflows.CloseRound, Reason: fmt.Sprintf("round %d is already closed", f.round)}
	}
	if req.Round != f.round {
		return workflows.Status{}, &RejectedError{Update: workflows.CloseRound,
			Reason: fmt.Sprintf("wrong round: asked to close round %d, the current round is %d", req.Round, f.round)}
	}
	f.open = false
	f.closes = append(f.closes, req)
	return workflows.Status{RunID: runID, Round: f.round, Phase: workflows.PhasePersist}, nil
}

func (f *fakeBackend) ExtendRound(ctx context.Context, runID string, req workflows.ExtendRequest) (workflows.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("extend", runID); err != nil {
		return workflows.Status{}, err
	}
	if !f.open {
		return workflows.Status{}, &RejectedError{Update: workflows.ExtendRound, Reason: fmt.Sprintf("round %d is already closed", f.round)}
	}
	if req.Round != f.round {
		return workflows.Status{}, &RejectedError{Update: workflows.ExtendRound,
			Reason: fmt.Sprintf("wrong round: asked to extend round %d, the current round is %d", req.Round, f.round)}
	}
	if len(f.extends) == workflows.MaxLeadExtensionsPerRound {
		return workflows.Status{}, &RejectedError{Update: workflows.ExtendRound,
			Reason: fmt.Sprintf("round %d was already extended %d times, the most a round allows", f.round, len(f.extends))}
	}
	f.extends = append(f.extends, req)
	return workflows.Status{RunID: runID, Round: f.round, Phase: workflows.PhaseLabeling, Extensions: len(f.extends), LeadExtensions: len(f.extends)}, nil
}

func newTestHandler(t *testing.T, f *fakeBackend, opts Options) (*Handler, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := New(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h, &logs
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		body    string
		want    int
		inBody  string // substring of the response body
		errLike string // substring of the JSON error
		check   func(t *testing.T, f *fakeBackend)
		setup   func(f *fakeBackend)
	}{
		{name: "healthz", method: "GET", path: "/healthz", want: 200, inBody: `"ok"`},
		{name: "page", method: "GET", path: "/", want: 200, inBody: "clozeloop annotation"},
		{name: "page for a run", method: "GET", path: "/runs/run-1", want: 200, inBody: "<script>"},
		{name: "list runs", method: "GET", path: "/api/v1/runs", want: 200, inBody: `"run_id": "run-1"`},
		{name: "status", method: "GET", path: "/api/v1/runs/run-1/status", want: 200, inBody: `"phase": "labeling"`},
		{name: "status unknown run", method: "GET", path: "/api/v1/runs/nope/status", want: 404, errLike: "unknown run"},
		{name: "batch", method: "GET", path: "/api/v1/runs/run-1/batch", want: 200, inBody: `"token": "dog"`},
		{name: "batch unknown run", method: "GET", path: "/api/v1/runs/nope/batch", want: 404, errLike: "unknown run"},
		{name: "temporal down", method: "GET", path: "/api/v1/runs/run-1/batch", want: 503, errLike: "temporal unavailable",
			setup: func(f *fakeBackend) { f.fail = fmt.Errorf("query: %w", ErrUnavailable) }},
		{name: "other backend error", method: "GET", path: "/api/v1/runs", want: 502, errLike: "boom",
			setup: func(f *fakeBackend) { f.fail = errors.New("boom") }},
		{
			name: "labels", method: "POST", path: "/api/v1/runs/run-1/labels", want: 200,
			body:   `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["dog"]},{"item_id":"b","answer":"cat"}]}`,
			inBody: `"round_complete": true`,
			check: func(t *testing.T, f *fakeBackend) {
				if f.answers["a"]["ann"] != "dog" || f.answers["b"]["ann"] != "cat" {
					t.Errorf("answers = %v", f.answers)
				}
			},
		},
		{
			name: "labels with several blanks", method: "POST", path: "/api/v1/runs/run-1/labels", want: 200,
			body: `{"annotator":"ann","round":2,"labels":[{"item_id":"two","answers":["big"," dog "]}]}`,
			check: func(t *testing.T, f *fakeBackend) {
				if got := f.answers["two"]["ann"]; got != "big | dog" {
					t.Errorf("answer = %q, want %q", got, "big | dog")
				}
			},
		},
		{
			name: "annotator from header", method: "POST", path: "/api/v1/runs/run-1/labels", want: 200,
			header: map[string]string{"X-Annotator": "proxy-user"},
			body:   `{"round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`,
			check: func(t *testing.T, f *fakeBackend) {
				if f.answers["a"]["proxy-user"] != "dog" {
					t.Errorf("answers = %v", f.answers)
				}
			},
		},
		{
			name: "annotator header and body differ", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400,
			header: map[string]string{"X-Annotator": "proxy-user"}, errLike: "differs",
			body: `{"annotator":"mallory","round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`,
		},
		{name: "labels without annotator", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "annotator is required",
			body: `{"round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`},
		{name: "labels bad JSON", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "bad JSON",
			body: `{"annotator":"ann","round":2,"labels":[`},
		{name: "labels unknown field", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "unknown field",
			body: `{"annotator":"ann","round":2,"labelz":[]}`},
		{name: "labels trailing data", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "bad JSON",
			body: `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["dog"]}]} {}`},
		{name: "labels empty body", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "empty body"},
		{name: "labels empty list", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "labels is empty",
			body: `{"annotator":"ann","round":2,"labels":[]}`},
		{name: "labels empty answer", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "answers[0] is required",
			body: `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["  "]}]}`},
		{name: "labels no round", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "round must be",
			body: `{"annotator":"ann","labels":[{"item_id":"a","answers":["dog"]}]}`},
		{name: "labels answer and answers", method: "POST", path: "/api/v1/runs/run-1/labels", want: 400, errLike: "not both",
			body: `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answer":"x","answers":["dog"]}]}`},
		{
			name: "validator rejects unknown item: 422 with the reason", method: "POST", path: "/api/v1/runs/run-1/labels", want: 422,
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"zzz","answers":["dog"]}]}`,
			errLike: `unknown item id "zzz" in round 2`,
		},
		{
			name: "validator rejects wrong round: 409", method: "POST", path: "/api/v1/runs/run-1/labels", want: 409,
			body:    `{"annotator":"ann","round":1,"labels":[{"item_id":"a","answers":["dog"]}]}`,
			errLike: "wrong round",
		},
		{
			name: "validator rejects a second answer: 409", method: "POST", path: "/api/v1/runs/run-1/labels", want: 409,
			setup:   func(f *fakeBackend) { f.answers["a"] = map[string]string{"ann": "dog"} },
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["cat"]}]}`,
			errLike: `annotator "ann" already answered item "a"`,
		},
		{name: "three answers for one blank: 422", method: "POST", path: "/api/v1/runs/run-1/labels", want: 422,
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["a","b","c"]}]}`,
			errLike: `item "a" has 1 blank(s) ([MASK]) but the answer has 3`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.answers) != 0 {
					t.Errorf("a mismatched answer reached the workflow: %v", f.answers)
				}
			}},
		{name: "one answer for two blanks, async: 422", method: "POST", path: "/api/v1/runs/run-1/labels?async=1", want: 422,
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"two","answers":["dog"]}]}`,
			errLike: `item "two" has 2 blank(s) ([MASK]) but the answer has 1`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.signals) != 0 {
					t.Errorf("a mismatched answer was signalled: %+v", f.signals)
				}
			}},
		{name: "unknown item, async: 422 before any signal", method: "POST", path: "/api/v1/runs/run-1/labels?async=1", want: 422,
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"zzz","answers":["dog"]}]}`,
			errLike: `unknown item id "zzz" in round 2`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.signals) != 0 {
					t.Errorf("signalled: %+v", f.signals)
				}
			}},
		{name: "item twice, async: 422", method: "POST", path: "/api/v1/runs/run-1/labels?async=1", want: 422,
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["dog"]},{"item_id":"a","answers":["cat"]}]}`,
			errLike: `appears twice`},
		{name: "zero-width space: 422", method: "POST", path: "/api/v1/runs/run-1/labels", want: 422,
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["dog​"]}]}`,
			errLike: "U+200B (zero-width space)"},
		{name: "separator in a two-blank answer: 422", method: "POST", path: "/api/v1/runs/run-1/labels", want: 422,
			body:    `{"annotator":"ann","round":2,"labels":[{"item_id":"two","answers":["a|b","c"]}]}`,
			errLike: "separates the blanks"},
		{name: "labels unknown run", method: "POST", path: "/api/v1/runs/nope/labels", want: 404, errLike: "unknown run",
			body: `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`},
		{
			name: "labels async signal", method: "POST", path: "/api/v1/runs/run-1/labels?async=1", want: 202,
			body:   `{"annotator":"ann","round":2,"labels":[{"item_id":"b","answers":["dog"]}]}`,
			inBody: `"signal": "labels"`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.signals) != 1 || f.signals[0].Answers[0].ItemID != "b" || f.signals[0].Annotator != "ann" {
					t.Errorf("signals = %+v", f.signals)
				}
				if len(f.answers) != 0 {
					t.Errorf("the async path used the update: %v", f.answers)
				}
			},
		},
		{name: "labels body too large", method: "POST", path: "/api/v1/runs/run-1/labels", want: 413, errLike: "larger than",
			body: `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["` + strings.Repeat("x", 5000) + `"]}]}`},
		{
			name: "skip", method: "POST", path: "/api/v1/runs/run-1/items/a/skip", want: 202,
			body: `{"round":2,"annotator":"ann"}`, inBody: `"signal": "Skip"`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.skipped) != 1 || f.skipped[0] != (workflows.ItemNote{Round: 2, ItemID: "a", Annotator: "ann", Scope: workflows.ScopeSelf}) {
					t.Errorf("skipped = %+v", f.skipped)
				}
			},
		},
		{
			name: "flag", method: "POST", path: "/api/v1/runs/run-1/items/b/flag", want: 202,
			body: `{"round":2,"annotator":"ann","reason":" ambiguous "}`, inBody: `"signal": "Flag"`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.flagged) != 1 || f.flagged[0] != (workflows.ItemNote{Round: 2, ItemID: "b", Annotator: "ann", Reason: "ambiguous", Scope: workflows.ScopeSelf}) {
					t.Errorf("flagged = %+v", f.flagged)
				}
			},
		},
		{name: "flag without round", method: "POST", path: "/api/v1/runs/run-1/items/b/flag", want: 400, errLike: "round must be",
			body: `{"annotator":"ann"}`},
		{name: "skip bad JSON", method: "POST", path: "/api/v1/runs/run-1/items/a/skip", want: 400, errLike: "bad JSON", body: `nope`},
		{name: "skip unknown run", method: "POST", path: "/api/v1/runs/nope/items/a/skip", want: 404, errLike: "unknown run",
			body: `{"round":2,"annotator":"ann"}`},
		{
			name: "close", method: "POST", path: "/api/v1/runs/run-1/close", want: 200, body: `{"round":2,"reason":"enough"}`,
			inBody: `"phase": "persisting"`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.closes) != 1 || f.closes[0] != (workflows.CloseRequest{Round: 2, Reason: "enough"}) {
					t.Errorf("closes = %+v", f.closes)
				}
			},
		},
		{
			name: "close and end the run", method: "POST", path: "/api/v1/runs/run-1/close", want: 200, body: `{"round":2,"end_run":true}`,
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.closes) != 1 || f.closes[0] != (workflows.CloseRequest{Round: 2, EndRun: true}) {
					t.Errorf("closes = %+v", f.closes)
				}
			},
		},
		{
			name: "close current round with an empty body", method: "POST", path: "/api/v1/runs/run-1/close", want: 200,
			header: map[string]string{"X-Annotator": "lead"},
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.closes) != 1 || f.closes[0].Round != 2 || f.closes[0].Reason != "closed by lead:" {
					t.Errorf("closes = %+v", f.closes)
				}
			},
		},
		{name: "close wrong round", method: "POST", path: "/api/v1/runs/run-1/close", want: 409, errLike: "wrong round", body: `{"round":7}`},
		{name: "close closed round", method: "POST", path: "/api/v1/runs/run-1/close", want: 409, errLike: "already closed",
			body: `{"round":2}`, setup: func(f *fakeBackend) { f.open = false }},
		{
			name: "extend", method: "POST", path: "/api/v1/runs/run-1/extend", want: 200, body: `{"round":2,"extend":"24h","reason":"holiday"}`,
			header: map[string]string{"X-Annotator": "lead"}, inBody: `"lead_extensions": 1`,
			check: func(t *testing.T, f *fakeBackend) {
				want := workflows.ExtendRequest{Round: 2, Extend: workflows.Duration(24 * time.Hour), Reason: "extended by lead: holiday"}
				if len(f.extends) != 1 || f.extends[0] != want {
					t.Errorf("extends = %+v, want %+v", f.extends, want)
				}
			},
		},
		{
			name: "extend the current round by seconds", method: "POST", path: "/api/v1/runs/run-1/extend", want: 200, body: `{"extend":3600}`,
			check: func(t *testing.T, f *fakeBackend) {
				if strings.Join(f.calls, ",") != "status run-1,extend run-1" || len(f.extends) != 1 ||
					f.extends[0] != (workflows.ExtendRequest{Round: 2, Extend: workflows.Duration(time.Hour)}) {
					t.Errorf("calls %q, extends = %+v", f.calls, f.extends)
				}
			},
		},
		{name: "extend without a duration", method: "POST", path: "/api/v1/runs/run-1/extend", want: 400, errLike: "positive duration",
			body: `{"round":2}`},
		{name: "extend by a negative duration", method: "POST", path: "/api/v1/runs/run-1/extend", want: 400, errLike: "positive duration",
			body: `{"round":2,"extend":"-1h"}`},
		{name: "extend by more than 30 days", method: "POST", path: "/api/v1/runs/run-1/extend", want: 400, errLike: "30 days",
			body: `{"round":2,"extend":"721h"}`},
		{name: "extend by a bad duration", method: "POST", path: "/api/v1/runs/run-1/extend", want: 400, errLike: "bad JSON",
			body: `{"round":2,"extend":"tomorrow"}`},
		{name: "extend bad JSON", method: "POST", path: "/api/v1/runs/run-1/extend", want: 400, errLike: "bad JSON", body: `{"round":`},
		{name: "extend empty body", method: "POST", path: "/api/v1/runs/run-1/extend", want: 400, errLike: "empty body"},
		{name: "extend unknown field", method: "POST", path: "/api/v1/runs/run-1/extend", want: 400, errLike: "unknown field",
			body: `{"round":2,"extend":"1h","deadline":"2030-01-01T00:00:00Z"}`},
		{name: "extend wrong round", method: "POST", path: "/api/v1/runs/run-1/extend", want: 409, errLike: "wrong round",
			body: `{"round":7,"extend":"1h"}`},
		{name: "extend closed round", method: "POST", path: "/api/v1/runs/run-1/extend", want: 409, errLike: "already closed",
			body: `{"round":2,"extend":"1h"}`, setup: func(f *fakeBackend) { f.open = false }},
		{name: "extend too often", method: "POST", path: "/api/v1/runs/run-1/extend", want: 409, errLike: "already extended",
			body: `{"round":2,"extend":"1h"}`, setup: func(f *fakeBackend) {
				f.extends = make([]workflows.ExtendRequest, workflows.MaxLeadExtensionsPerRound)
			}},
		{name: "extend unknown run", method: "POST", path: "/api/v1/runs/nope/extend", want: 404, errLike: "unknown run",
			body: `{"round":2,"extend":"1h"}`},
		{name: "unknown API path", method: "GET", path: "/api/v1/nothing", want: 404, errLike: "no API endpoint"},
		{name: "wrong method on API", method: "DELETE", path: "/api/v1/runs/run-1/status", want: 404, errLike: "no API endpoint"},
		{name: "control characters in item id", method: "POST", path: "/api/v1/runs/run-1/items/a%01b/skip", want: 400,
			errLike: "control characters", body: `{"round":2,"annotator":"ann"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			if tt.setup != nil {
				tt.setup(f)
			}
			h, logs := newTestHandler(t, f, Options{MaxBodyBytes: 4096, Auth: AuthOptions{NoAuth: true}})
			var body io.Reader = http.NoBody
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := httptest.NewRequest(tt.method, tt.path, body)
			req.RemoteAddr = "127.0.0.1:40000" // NoAuth serves loopback peers only
			if !safeMethod(tt.method) {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Body.String()
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.want, got)
			}
			if tt.inBody != "" && !strings.Contains(got, tt.inBody) {
				t.Errorf("body %s does not contain %s", got, tt.inBody)
			}
			if tt.errLike != "" {
				var e errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
					t.Fatalf("error body is not JSON: %v: %s", err, got)
				}
				if !strings.Contains(e.Error, tt.errLike) {
					t.Errorf("error %q does not contain %q", e.Error, tt.errLike)
				}
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("content type %q", ct)
				}
			}
			if tt.check != nil {
				tt.check(t, f)
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("request log is not one JSON line: %v: %s", err, logs)
			}
			if line["path"] != req.URL.Path || line["status"] != float64(tt.want) {
				t.Errorf("request log %v", line)
			}
			wantLevel := "INFO"
			switch {
			case tt.want >= 500:
				wantLevel = "ERROR"
			case tt.want >= 400:
				wantLevel = "WARN"
			case req.Method == http.MethodGet || req.Method == http.MethodHead:
				wantLevel = "DEBUG"
			}
			if line["level"] != wantLevel {
				t.Errorf("request log level %v, want %s (%s, status %d)", line["level"], wantLevel, req.Method, tt.want)
			}
		})
	}
}

// TestRoundTrip submits the whole batch over a real HTTP server, as the page
// does, and checks that a repeated submission is refused.
func TestRoundTrip(t *testing.T) {
	f := newFake()
	h, _ := newTestHandler(t, f, Options{Auth: AuthOptions{NoAuth: true}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()
	runs, err := c.Runs(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	b, err := c.Batch(ctx, runs[0].RunID)
	if err != nil {
		t.Fatal(err)
	}
	req := LabelsRequest{Annotator: "oracle", Round: b.Round}
	for _, it := range b.Items {
		var answers []string
		for range strings.Count(it.Text, "[MASK]") {
			answers = append(answers, it.Suggestions[0].Token)
		}
		req.Labels = append(req.Labels, ItemLabel{ItemID: it.ItemID, Answers: answers})
	}
	res, err := c.SubmitLabels(ctx, runs[0].RunID, req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.RoundComplete || res.Counted != 3 {
		t.Errorf("result %+v", res)
	}
	_, err = c.SubmitLabels(ctx, runs[0].RunID, req)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Message, "already answered") {
		t.Errorf("second submission: %v, want a 409 APIError", err)
	}
}

func TestRejectionStatus(t *testing.T) {
	tests := []struct {
		reason string
		want   int
	}{
		{`unknown item id "x" in round 1`, 422},
		{`empty answer for item "x"`, 422},
		{"the submission has no answers", 422},
		{`item "x" appears twice in the submission`, 422},
		{"wrong round: the submission is for round 1, the current round is 2", 409},
		{"round 3 is closed", 409},
		{`annotator "a" already answered item "x"`, 409},
		{"no round is open for labels yet", 409},
	}
	for _, tt := range tests {
		if got := rejectionStatus(tt.reason); got != tt.want {
			t.Errorf("rejectionStatus(%q) = %d, want %d", tt.reason, got, tt.want)
		}
	}
}

func TestNewNilBackend(t *testing.T) {
	if _, err := New(nil, Options{Auth: AuthOptions{NoAuth: true}}); err == nil {
		t.Fatal("New(nil) did not fail")
	}
}

func TestLabelMetricsClassification(t *testing.T) {
	paths := []struct {
		path string
		want bool
	}{
		{"/api/v1/runs/r1/labels", true},
		{"/api/v1/runs/demo-20261204/labels", true},
		{"/api/v1/runs//labels", false},
		{"/api/v1/runs/r1/items/x/labels", false},
		{"/api/v1/runs/r1/status", false},
		{"/api/v1/runs/r1/labels/extra", false},
	}
	for _, tt := range paths {
		if got := isLabelsPath(tt.path); got != tt.want {
			t.Errorf("isLabelsPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	reasons := []struct {
		status int
		want   string
	}{
		{http.StatusBadRequest, "bad_request"},
		{http.StatusUnauthorized, "unauthenticated"},
		{http.StatusForbidden, "forbidden"},
		{http.StatusNotFound, "unknown_run"},
		{http.StatusConflict, "conflict"},
		{http.StatusRequestEntityTooLarge, "too_large"},
		{http.StatusUnsupportedMediaType, "not_json"},
		{http.StatusUnprocessableEntity, "invalid"},
		{http.StatusTooManyRequests, "rate_limited"},
		{http.StatusServiceUnavailable, "unavailable"},
		{http.StatusBadGateway, "backend_error"},
		{http.StatusTeapot, "other"},
	}
	for _, tt := range reasons {
		if got := RefusalReason(tt.status); got != tt.want {
			t.Errorf("RefusalReason(%d) = %q, want %q", tt.status, got, tt.want)
		}
	}
}
