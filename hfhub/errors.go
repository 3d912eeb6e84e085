package hfhub

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Kinds of failure; test with errors.Is.
var (
	ErrRepoNotFound     = errors.New("repository not found")
	ErrRevisionNotFound = errors.New("revision not found")
	ErrEntryNotFound    = errors.New("file not found in the repository")
	ErrGated            = errors.New("gated repository")
	ErrUnauthorized     = errors.New("not authorised")
	ErrNotCached        = errors.New("not in the cache")
	ErrIntegrity        = errors.New("download does not match the Hub's checksum")
	ErrNotFillMask      = errors.New("not a fill-mask model")
	ErrNotAModel        = errors.New("not a transformers model")
)

// HTTPError is an unsuccessful answer of the Hub.
type HTTPError struct {
	Kind    error  // one of the Err* values, or nil
	Status  int    // HTTP status
	Code    string // X-Error-Code
	Message string // X-Error-Message
	URL     string
	hint    string
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("Hub request failed")
	}
	fmt.Fprintf(&b, " (HTTP %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	b.WriteString(")")
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.hint != "" {
		fmt.Fprintf(&b, "; %s", e.hint)
	}
	return b.String()
}

func (e *HTTPError) Unwrap() error { return e.Kind }

// responseError turns a non-2xx answer into an *HTTPError, reading the
// Hub's X-Error-Code as huggingface_hub does.
func responseError(resp *http.Response, haveToken bool) error {
	e := &HTTPError{
		Status:  resp.StatusCode,
		Code:    resp.Header.Get("X-Error-Code"),
		Message: resp.Header.Get("X-Error-Message"),
		URL:     resp.Request.URL.String(),
	}
	switch {
	case e.Code == "GatedRepo":
		e.Kind = ErrGated
		if haveToken {
			e.hint = "your token has not been granted access: accept the model's conditions on its Hub page with the account of the token"
		} else {
			e.hint = "accept the model's conditions on its Hub page and set HF_TOKEN (or log in with `hf auth login`)"
		}
	case e.Code == "RepoNotFound":
		e.Kind = ErrRepoNotFound
		if !haveToken {
			e.hint = "check the name; for a private repository set HF_TOKEN"
		}
	case e.Code == "RevisionNotFound":
		e.Kind = ErrRevisionNotFound
	case e.Code == "EntryNotFound":
		e.Kind = ErrEntryNotFound
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.Kind = ErrUnauthorized
		if !haveToken {
			e.hint = "set HF_TOKEN"
		}
	case resp.StatusCode == http.StatusNotFound:
		e.Kind = ErrRepoNotFound
	}
	return e
}
