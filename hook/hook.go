package hook

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/clozeloop/clozeloop/workflows"
)

//go:embed static/index.html
var static embed.FS

// AnswerSeparator is how the blanks of one answer are shown joined (the
// workflow's labels and vote keys, " | "); the API itself takes and sends
// one string per blank.
const AnswerSeparator = " " + workflows.AnswerSeparator + " "

// Defaults of Options.
const (
	DefaultAnnotatorHeader = "X-Annotator"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultQueryTimeout    = 15 * time.Second
	DefaultUpdateTimeout   = 60 * time.Second
)

// Limits on request fields.
const (
	maxIDLen        = 256
	maxAnnotatorLen = 128
	maxReasonLen    = 2000
	maxAnswerLen    = workflows.MaxAnswerBytes
	maxLabels       = 1000
)

// Options configure a Handler.
type Options struct {
	// AnnotatorHeader is the request header that names the annotator.
	// From a trusted proxy (Auth.TrustedProxies) it authenticates the
	// request; from anyone else it is only a claim, refused (403) when it
	// differs from the authenticated annotator. Default "X-Annotator".
	AnnotatorHeader string
	// Auth says who may use the hook (see AuthOptions); New refuses a
	// hook with no way to authenticate.
	Auth AuthOptions
	// MaxBodyBytes bounds request bodies (default 1 MiB); larger bodies get
	// 413.
	MaxBodyBytes int64
	// QueryTimeout bounds queries and signals (default 15s).
	QueryTimeout time.Duration
	// UpdateTimeout bounds Updates, which wait for the workflow's verdict
	// (default 60s).
	UpdateTimeout time.Duration
	// Logger receives one structured line per request (default
	// slog.Default()).
	Logger *slog.Logger
	// Metrics, when set, counts label submissions: accepted, or refused
	// with the reason RefusalReason gives.
	Metrics LabelObserver
}

// LabelObserver counts label submissions (metrics.Registry implements it).
type LabelObserver interface {
	LabelSubmission(accepted bool, reason string)
}

// RefusalReason names why a label submission answered with status was
// refused, as one of a few fixed words (the metric's label values).
func RefusalReason(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "unknown_run"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "not_json"
	case http.StatusUnprocessableEntity:
		return "invalid"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "backend_error"
	}
	return "other"
}

func (o Options) withDefaults() Options {
	if o.AnnotatorHeader == "" {
		o.AnnotatorHeader = DefaultAnnotatorHeader
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.UpdateTimeout <= 0 {
		o.UpdateTimeout = DefaultUpdateTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Auth = o.Auth.withDefaults()
	return o
}

// Handler serves the annotation page and the /api/v1 JSON API.
type Handler struct {
	backend  Backend
	opts     Options
	mux      *http.ServeMux
	page     []byte
	accounts *accountCache // nil without an account store
	sessions *sessions
}

// New returns the hook's http.Handler over backend.
func New(backend Backend, opts Options) (*Handler, error) {
	if backend == nil {
		return nil, errors.New("hook: backend is nil")
	}
	page, err := static.ReadFile("static/index.html")
	if err != nil {
		return nil, fmt.Errorf("hook: read embedded page: %w", err)
	}
	o := opts.withDefaults()
	if err := o.Auth.validate(); err != nil {
		return nil, fmt.Errorf("hook: %w", err)
	}
	h := &Handler{backend: backend, opts: o, mux: http.NewServeMux(), page: page, sessions: newSessions()}
	if o.Auth.Accounts != nil {
		h.accounts = &accountCache{st: o.Auth.Accounts, ttl: o.Auth.AccountsTTL, stale: o.Auth.AccountsStale,
			now: o.Auth.Now, log: o.Logger}
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET /healthz", h.healthz)
	m.HandleFunc("GET /{$}", h.servePage)
	m.HandleFunc("GET /signin", h.servePage)
	m.HandleFunc("GET /runs/{run}", h.servePage)
	m.HandleFunc("POST /api/v1/session", h.signIn)
	m.HandleFunc("DELETE /api/v1/session", h.signOut)
	m.HandleFunc("GET /api/v1/me", h.protect(RoleAnnotator, h.me))
	m.HandleFunc("GET /api/v1/runs", h.protect(RoleAnnotator, h.listRuns))
	m.HandleFunc("GET /api/v1/runs/{run}/status", h.protect(RoleAnnotator, h.status))
	m.HandleFunc("GET /api/v1/runs/{run}/batch", h.protect(RoleAnnotator, h.batch))
	m.HandleFunc("POST /api/v1/runs/{run}/labels", h.protect(RoleAnnotator, h.labels))
	m.HandleFunc("POST /api/v1/runs/{run}/items/{item}/skip", h.protect(RoleAnnotator, h.note(true)))
	m.HandleFunc("POST /api/v1/runs/{run}/items/{item}/flag", h.protect(RoleAnnotator, h.note(false)))
	m.HandleFunc("POST /api/v1/runs/{run}/close", h.protect(RoleLead, h.closeRound))
	m.HandleFunc("POST /api/v1/runs/{run}/extend", h.protect(RoleLead, h.extendRound))
	m.HandleFunc("GET /api/v1/annotators", h.protect(RoleAdmin, h.listAccounts))
	m.HandleFunc("POST /api/v1/annotators", h.protect(RoleAdmin, h.addAccount))
	m.HandleFunc("POST /api/v1/annotators/{name}/revoke", h.protect(RoleAdmin, h.revokeAccount))
	m.HandleFunc("/api/", h.protect(RoleAnnotator, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path))
	}))
}

// ServeHTTP logs every request and dispatches it: requests that change
// state (POST, …) at Info, successful reads (GET, HEAD: the page and its
// batch polls) at Debug so that polling does not flood the log, client
// errors at Warn and server errors at Error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	r.Body = http.MaxBytesReader(rec, r.Body, h.opts.MaxBodyBytes)
	h.mux.ServeHTTP(rec, r)
	if h.opts.Metrics != nil && r.Method == http.MethodPost && isLabelsPath(r.URL.Path) {
		ok := rec.status < 300
		reason := ""
		if !ok {
			reason = RefusalReason(rec.status)
		}
		h.opts.Metrics.LabelSubmission(ok, reason)
	}
	level := slog.LevelInfo
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		level = slog.LevelDebug
	}
	if rec.status >= 500 {
		level = slog.LevelError
	} else if rec.status >= 400 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes), slog.Duration("duration", time.Since(start)), slog.String("remote", r.RemoteAddr),
	}
	if rec.who != "" {
		attrs = append(attrs, slog.String("annotator", rec.who))
	}
	if rec.errMsg != "" {
		attrs = append(attrs, slog.String("error", rec.errMsg))
	}
	h.opts.Logger.LogAttrs(r.Context(), level, "hook request", attrs...)
}

// isLabelsPath reports whether path is POST /api/v1/runs/{run}/labels's.
func isLabelsPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/api/v1/runs/")
	if !ok {
		return false
	}
	run, ok := strings.CutSuffix(rest, "/labels")
	return ok && run != "" && !strings.Contains(run, "/")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	errMsg string
	wrote  bool
	// who is the authenticated annotator (set by protect), for the log.
	who string
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, status int, msg string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.errMsg = msg
	}
	writeJSON(w, status, errorBody{Error: msg})
}

// writeBackendError maps a Backend error to a status code.
func writeBackendError(w http.ResponseWriter, err error) {
	var rej *RejectedError
	switch {
	case errors.As(err, &rej):
		writeError(w, rejectionStatus(rej.Reason), rej.Reason)
	case errors.Is(err, ErrUnknownRun):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusBadGateway, err.Error())
	}
}

// conflictReasons are fragments of the workflow validator's messages that
// describe the round's state rather than the submission itself; they map to
// 409 Conflict (reload the batch), every other rejection to 422.
var conflictReasons = []string{"wrong round", "is closed", "already closed", "already answered", "no round is open", "was skipped",
	"already has its", "skipped item", "already extended"}

func rejectionStatus(reason string) int {
	for _, c := range conflictReasons {
		if strings.Contains(reason, c) {
			return http.StatusConflict
		}
	}
	return http.StatusUnprocessableEntity
}

// decode reads a JSON body strictly: one object, no unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			writeError(w, http.StatusBadRequest, "bad JSON body: more than one JSON value")
			return false
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "bad JSON body: trailing data after the object")
			return false
		}
		return true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
	case errors.Is(err, io.EOF) && allowEmpty:
		return true
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "empty body: a JSON object is required")
	default:
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
	}
	return false
}

// pathID reads and checks a path value.
func pathID(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	v := r.PathValue(name)
	if err := checkText(name, v, maxIDLen, true); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return v, true
}

// checkText rejects empty (when required), overlong, invalid UTF-8 and
// control-character text.
func checkText(field, v string, limit int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is required", field)
	case len(v) > limit:
		return fmt.Errorf("%s is longer than %d bytes", field, limit)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", field)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%s contains control characters", field)
	}
	return nil
}

// annotator resolves the annotator from the header and the body.
func (h *Handler) annotator(r *http.Request, body string) (string, error) {
	hdr := strings.TrimSpace(r.Header.Get(h.opts.AnnotatorHeader))
	body = strings.TrimSpace(body)
	name := body
	if hdr != "" {
		if body != "" && body != hdr {
			return "", fmt.Errorf("annotator %q in the body differs from %s header %q", body, h.opts.AnnotatorHeader, hdr)
		}
		name = hdr
	}
	if name == "" {
		return "", fmt.Errorf("annotator is required (body field \"annotator\" or header %s)", h.opts.AnnotatorHeader)
	}
	if err := checkText("annotator", name, maxAnnotatorLen, true); err != nil {
		return "", err
	}
	return name, nil
}

func (h *Handler) queryCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.opts.QueryTimeout)
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(h.page)
}

// runsResponse is the body of GET /api/v1/runs.
type runsResponse struct {
	Runs []RunSummary `json:"runs"`
}

func (h *Handler) listRuns(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.queryCtx(r)
	defer cancel()
	runs, err := h.backend.ListRuns(ctx)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	if runs == nil {
		runs = []RunSummary{}
	}
	writeJSON(w, http.StatusOK, runsResponse{Runs: runs})
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	run, ok := pathID(w, r, "run")
	if !ok {
		return
	}
	ctx, cancel := h.queryCtx(r)
	defer cancel()
	st, err := h.backend.Status(ctx, run)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, statusFor(st, identityOf(r.Context()).Role))
}

func (h *Handler) batch(w http.ResponseWriter, r *http.Request) {
	run, ok := pathID(w, r, "run")
	if !ok {
		return
	}
	ctx, cancel := h.queryCtx(r)
	defer cancel()
	v, err := h.backend.Batch(ctx, run)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	if v.Items == nil {
		v.Items = []workflows.BatchItem{}
	}
	writeJSON(w, http.StatusOK, v)
}

// LabelsRequest is the body of POST /api/v1/runs/{run}/labels.
type LabelsRequest struct {
	// Annotator names who answers; the AnnotatorHeader, when set, wins.
	Annotator string `json:"annotator"`
	// Round is the round the answers are for (from the batch).
	Round  int         `json:"round"`
	Labels []ItemLabel `json:"labels"`
}

// ItemLabel is the answer for one item: one string per [MASK], in order,
// or Answer for a single-blank item.
type ItemLabel struct {
	ItemID  string   `json:"item_id"`
	Answers []string `json:"answers,omitempty"`
	Answer  string   `json:"answer,omitempty"`
}

// AcceptedResponse is the body of the 202 answers (signals).
type AcceptedResponse struct {
	Accepted bool   `json:"accepted"`
	Signal   string `json:"signal"`
	RunID    string `json:"run_id"`
}

// submission turns a LabelsRequest into the workflow's LabelSubmission.
func submission(req LabelsRequest, annotator string) (workflows.LabelSubmission, error) {
	s := workflows.LabelSubmission{Round: req.Round, Annotator: annotator}
	if req.Round < 1 {
		return s, fmt.Errorf("round must be a positive round number, got %d", req.Round)
	}
	if len(req.Labels) == 0 {
		return s, errors.New("labels is empty: give at least one {item_id, answers}")
	}
	if len(req.Labels) > maxLabels {
		return s, fmt.Errorf("too many labels in one request: %d (at most %d)", len(req.Labels), maxLabels)
	}
	for i, l := range req.Labels {
		if err := checkText(fmt.Sprintf("labels[%d].item_id", i), l.ItemID, maxIDLen, true); err != nil {
			return s, err
		}
		answers := l.Answers
		if l.Answer != "" {
			if len(answers) > 0 {
				return s, fmt.Errorf("labels[%d] (item %s): give answers or answer, not both", i, l.ItemID)
			}
			answers = []string{l.Answer}
		}
		if len(answers) == 0 {
			return s, fmt.Errorf("labels[%d] (item %s): no answer", i, l.ItemID)
		}
		clean := make([]string, len(answers))
		for j, a := range answers {
			a = strings.TrimSpace(a)
			if err := checkText(fmt.Sprintf("labels[%d].answers[%d]", i, j), a, maxAnswerLen, true); err != nil {
				return s, fmt.Errorf("item %s: %w", l.ItemID, err)
			}
			clean[j] = a
		}
		s.Answers = append(s.Answers, workflows.Answer{ItemID: l.ItemID, Answers: clean})
	}
	return s, nil
}

func (h *Handler) labels(w http.ResponseWriter, r *http.Request) {
	run, ok := pathID(w, r, "run")
	if !ok {
		return
	}
	var req LabelsRequest
	if !decode(w, r, &req, false) {
		return
	}
	who, ok := h.who(w, r, req.Annotator)
	if !ok {
		return
	}
	sub, err := submission(req, who)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !h.checkBlanks(w, r, run, sub) {
		return
	}
	if isTrue(r.URL.Query().Get("async")) {
		ctx, cancel := h.queryCtx(r)
		defer cancel()
		if err := h.backend.SignalLabels(ctx, run, sub); err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, AcceptedResponse{Accepted: true, Signal: workflows.SignalLabels, RunID: run})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.UpdateTimeout)
	defer cancel()
	res, err := h.backend.SubmitLabels(ctx, run, sub)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// NoteRequest is the body of the skip and flag endpoints.
type NoteRequest struct {
	Round     int    `json:"round"`
	Annotator string `json:"annotator,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Scope of a skip: "self" (default: the annotator will not answer the
	// item) or "all" (leads: nobody answers it). Flags are always "self".
	Scope string `json:"scope,omitempty"`
}

func (h *Handler) note(skip bool) http.HandlerFunc {
	signal := workflows.SignalFlag
	if skip {
		signal = workflows.SignalSkip
	}
	return func(w http.ResponseWriter, r *http.Request) {
		run, ok := pathID(w, r, "run")
		if !ok {
			return
		}
		item, ok := pathID(w, r, "item")
		if !ok {
			return
		}
		var req NoteRequest
		if !decode(w, r, &req, false) {
			return
		}
		if req.Round < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("round must be a positive round number, got %d", req.Round))
			return
		}
		who, ok := h.who(w, r, req.Annotator)
		if !ok {
			return
		}
		if err := checkText("reason", req.Reason, maxReasonLen, false); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		scope, status, err := noteScope(req.Scope, skip, identityOf(r.Context()).Role)
		if err != nil {
			writeError(w, status, err.Error())
			return
		}
		n := workflows.ItemNote{Round: req.Round, ItemID: item, Annotator: who, Reason: strings.TrimSpace(req.Reason), Scope: scope}
		ctx, cancel := h.queryCtx(r)
		defer cancel()
		if skip {
			err = h.backend.Skip(ctx, run, n)
		} else {
			err = h.backend.Flag(ctx, run, n)
		}
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, AcceptedResponse{Accepted: true, Signal: signal, RunID: run})
	}
}

// CloseRequest is the body of POST /api/v1/runs/{run}/close. Round 0 (or
// an empty body) closes the current round.
type CloseRequest struct {
	Round  int    `json:"round"`
	Reason string `json:"reason,omitempty"`
	// EndRun also ends the whole run once the round is persisted (leads
	// only, as every close). Without it a round closed with no labels ends
	// that round only.
	EndRun bool `json:"end_run,omitempty"`
}

func (h *Handler) closeRound(w http.ResponseWriter, r *http.Request) {
	run, ok := pathID(w, r, "run")
	if !ok {
		return
	}
	var req CloseRequest
	if !decode(w, r, &req, true) {
		return
	}
	if req.Round < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("round must not be negative, got %d", req.Round))
		return
	}
	if err := checkText("reason", req.Reason, maxReasonLen, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.UpdateTimeout)
	defer cancel()
	if req.Round == 0 {
		st, err := h.backend.Status(ctx, run)
		if err != nil {
			writeBackendError(w, err)
			return
		}
		req.Round = st.Round
	}
	reason := h.leadReason(r, "closed", req.Reason)
	st, err := h.backend.CloseRound(ctx, run, workflows.CloseRequest{Round: req.Round, Reason: reason, EndRun: req.EndRun})
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// leadReason is the reason of a lead's close or extension, prefixed with
// who asked ("closed by boss: enough").
func (h *Handler) leadReason(r *http.Request, verb, reason string) string {
	reason = strings.TrimSpace(reason)
	id := identityOf(r.Context())
	who := id.Name
	if id.Via == viaNone {
		who = strings.TrimSpace(r.Header.Get(h.opts.AnnotatorHeader))
	}
	if who != "" {
		reason = strings.TrimSpace(verb + " by " + who + ": " + reason)
	}
	return reason
}

// ExtendRequest is the body of POST /api/v1/runs/{run}/extend: the round's
// deadline moves Extend later (a Go duration such as "24h" or "90m", or a
// number of seconds; at most 30 days per request, at most
// workflows.MaxLeadExtensionsPerRound requests per round). Round 0 extends
// the current round.
type ExtendRequest struct {
	Round  int                `json:"round"`
	Extend workflows.Duration `json:"extend"`
	Reason string             `json:"reason,omitempty"`
}

func (h *Handler) extendRound(w http.ResponseWriter, r *http.Request) {
	run, ok := pathID(w, r, "run")
	if !ok {
		return
	}
	var req ExtendRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.Round < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("round must not be negative, got %d", req.Round))
		return
	}
	if err := checkText("reason", req.Reason, maxReasonLen, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The round is checked by the workflow; the duration here too.
	if err := (workflows.ExtendRequest{Round: max(req.Round, 1), Extend: req.Extend}).Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.UpdateTimeout)
	defer cancel()
	if req.Round == 0 {
		st, err := h.backend.Status(ctx, run)
		if err != nil {
			writeBackendError(w, err)
			return
		}
		req.Round = st.Round
	}
	st, err := h.backend.ExtendRound(ctx, run, workflows.ExtendRequest{Round: req.Round, Extend: req.Extend,
		Reason: h.leadReason(r, "extended", req.Reason)})
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
