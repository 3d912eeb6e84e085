package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/clozeloop/clozeloop/workflows"
)

// Client calls a hook's /api/v1 JSON API over HTTP. It is what scripted
// annotators (such as `clozeloop dev --demo-annotate`) use.
type Client struct {
	// BaseURL is the hook's root, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// HTTP is the client used (default http.DefaultClient).
	HTTP *http.Client
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// Header is added to every request.
	Header http.Header
}

// APIError is a non-2xx answer of the hook.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("hook answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+"/api/v1"+path, body)
	if err != nil {
		return fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if method != http.MethodGet && method != http.MethodHead {
		// The hook refuses state-changing requests that are not JSON.
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e errorBody
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

func runPath(runID string) string { return "/runs/" + url.PathEscape(runID) }

// Runs lists the runs the hook serves.
func (c *Client) Runs(ctx context.Context) ([]RunSummary, error) {
	var out runsResponse
	err := c.do(ctx, http.MethodGet, "/runs", nil, &out)
	return out.Runs, err
}

// Status returns a run's Status query.
func (c *Client) Status(ctx context.Context, runID string) (workflows.Status, error) {
	var st workflows.Status
	err := c.do(ctx, http.MethodGet, runPath(runID)+"/status", nil, &st)
	return st, err
}

// Batch returns a run's Batch query.
func (c *Client) Batch(ctx context.Context, runID string) (workflows.BatchView, error) {
	var v workflows.BatchView
	err := c.do(ctx, http.MethodGet, runPath(runID)+"/batch", nil, &v)
	return v, err
}

// SubmitLabels posts answers and waits for the workflow's verdict.
func (c *Client) SubmitLabels(ctx context.Context, runID string, req LabelsRequest) (workflows.SubmitResult, error) {
	var res workflows.SubmitResult
	err := c.do(ctx, http.MethodPost, runPath(runID)+"/labels", req, &res)
	return res, err
}

// CloseRound closes a round early (round 0: the current one).
func (c *Client) CloseRound(ctx context.Context, runID string, req CloseRequest) (workflows.Status, error) {
	var st workflows.Status
	err := c.do(ctx, http.MethodPost, runPath(runID)+"/close", req, &st)
	return st, err
}

// ExtendRound moves a round's deadline later (round 0: the current one);
// leads only.
func (c *Client) ExtendRound(ctx context.Context, runID string, req ExtendRequest) (workflows.Status, error) {
	var st workflows.Status
	err := c.do(ctx, http.MethodPost, runPath(runID)+"/extend", req, &st)
	return st, err
}

// Skip skips an item: for the caller only (scope "self", the default) or,
// for a lead, for everyone (scope "all").
func (c *Client) Skip(ctx context.Context, runID, itemID string, req NoteRequest) error {
	return c.do(ctx, http.MethodPost, runPath(runID)+"/items/"+url.PathEscape(itemID)+"/skip", req, nil)
}

// Flag flags an item for review.
func (c *Client) Flag(ctx context.Context, runID, itemID string, req NoteRequest) error {
	return c.do(ctx, http.MethodPost, runPath(runID)+"/items/"+url.PathEscape(itemID)+"/flag", req, nil)
}

// Me returns who the hook takes the client for.
func (c *Client) Me(ctx context.Context) (Identity, error) {
	var out SessionResponse
	err := c.do(ctx, http.MethodGet, "/me", nil, &out)
	return out.Identity, err
}
