package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/clozeloop/clozeloop/workflows"
)

// Defaults of AuthOptions.
const (
	// DefaultAccountsTTL is how long the hook trusts its copy of the
	// accounts: a new, revoked or rotated token takes effect within it.
	DefaultAccountsTTL = 5 * time.Second
	// DefaultAccountsStale is how long the last good copy keeps serving
	// while the object store cannot be read; past it every authenticated
	// request fails with 503 rather than honour possibly revoked tokens.
	DefaultAccountsStale = time.Minute
	// accountsLoadTimeout bounds one load of the accounts.
	accountsLoadTimeout = 5 * time.Second
	// accountsRetryEvery spaces loads that fail.
	accountsRetryEvery = time.Second
)

// AuthOptions say who may use the hook. Exactly one of these holds:
// Accounts is set (tokens and sessions; TrustedProxies may add proxy
// mode), TrustedProxies alone (proxy mode), or NoAuth.
type AuthOptions struct {
	// Accounts holds the annotator accounts (their token hashes).
	Accounts AccountStore
	// AccountsTTL: see DefaultAccountsTTL.
	AccountsTTL time.Duration
	// AccountsStale: see DefaultAccountsStale.
	AccountsStale time.Duration
	// NoAuth serves without authentication, and then only to loopback
	// peers (the command also refuses to listen elsewhere). Everyone is
	// treated as an admin and names themselves in the body or the
	// annotator header, as before accounts existed.
	NoAuth bool
	// TrustedProxies turns on proxy mode: a request whose peer address is
	// in one of these prefixes and carries Options.AnnotatorHeader is
	// authenticated as that annotator, with the role of the active account
	// of that name (annotator when there is none).
	TrustedProxies []netip.Prefix
	// SessionTTL bounds a sign-in (default DefaultSessionTTL).
	SessionTTL time.Duration
	// SecureCookie marks the session cookie Secure even when the request
	// came over plain HTTP (a TLS-terminating proxy in front).
	SecureCookie bool
	// AllowedOrigins are extra origins ("https://label.example.com")
	// accepted on state-changing browser requests, for a proxy that
	// rewrites the Host header. The request's own host is always accepted.
	AllowedOrigins []string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (a AuthOptions) withDefaults() AuthOptions {
	if a.AccountsTTL <= 0 {
		a.AccountsTTL = DefaultAccountsTTL
	}
	if a.AccountsStale <= 0 {
		a.AccountsStale = DefaultAccountsStale
	}
	if a.AccountsStale < a.AccountsTTL {
		a.AccountsStale = a.AccountsTTL
	}
	if a.SessionTTL <= 0 {
		a.SessionTTL = DefaultSessionTTL
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	return a
}

func (a AuthOptions) validate() error {
	if !a.NoAuth && a.Accounts == nil && len(a.TrustedProxies) == 0 {
		return errors.New("no way to authenticate annotators: give an account store, trusted proxies, or NoAuth (loopback only)")
	}
	if a.NoAuth && (a.Accounts != nil || len(a.TrustedProxies) > 0) {
		return errors.New("NoAuth excludes accounts and trusted proxies")
	}
	for _, o := range a.AllowedOrigins {
		if _, err := parseOrigin(o); err != nil {
			return fmt.Errorf("allowed origin: %w", err)
		}
	}
	return nil
}

// parseOrigin checks an origin "scheme://host[:port]" and returns it
// lower-cased.
func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an origin like https://label.example.com", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// Identity is who a request comes from.
type Identity struct {
	// Name is the account (or proxy-given) name; empty with NoAuth.
	Name string `json:"annotator"`
	Role Role   `json:"role"`
	// Via says how the request was authenticated: "token", "session",
	// "proxy" or "none" (NoAuth on loopback).
	Via string `json:"via"`
}

// How a request was authenticated.
const (
	viaToken   = "token"
	viaSession = "session"
	viaProxy   = "proxy"
	viaNone    = "none"
)

// accountIndex is one loaded copy of the accounts.
type accountIndex struct {
	byHash map[string]Account // active accounts by token hash
	byName map[string]Account // active accounts by name
}

func indexAccounts(f AccountsFile) *accountIndex {
	ix := &accountIndex{byHash: map[string]Account{}, byName: map[string]Account{}}
	for _, a := range f.Accounts {
		if a.Active() {
			ix.byHash[a.TokenHash] = a
			ix.byName[a.Name] = a
		}
	}
	return ix
}

// accountCache keeps the accounts for AccountsTTL.
type accountCache struct {
	st    AccountStore
	ttl   time.Duration
	stale time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu     sync.Mutex
	ix     *accountIndex
	loaded time.Time // of ix
	tried  time.Time // last load attempt
	err    error     // of the last attempt
}

// errAccountsUnavailable is wrapped when the accounts cannot be read and
// the last good copy is too old.
var errAccountsUnavailable = errors.New("annotator accounts unavailable")

// get returns the accounts, reloading them when older than the TTL.
func (c *accountCache) get(ctx context.Context) (*accountIndex, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	fresh := c.ix != nil && now.Sub(c.loaded) < c.ttl
	if !fresh && (c.err == nil || now.Sub(c.tried) >= accountsRetryEvery) {
		c.tried = now
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accountsLoadTimeout)
		f, _, err := c.st.Load(lctx)
		cancel()
		if err == nil {
			c.ix, c.loaded, c.err = indexAccounts(f), now, nil
		} else {
			c.err = err
			c.log.Error("load annotator accounts", "err", err, "serving_copy_age", now.Sub(c.loaded).String())
		}
	}
	if c.ix != nil && now.Sub(c.loaded) < c.stale {
		return c.ix, nil
	}
	return nil, fmt.Errorf("%w: %w", errAccountsUnavailable, c.err)
}

// invalidate makes the next get reload.
func (c *accountCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded, c.err = time.Time{}, nil
}

// authError is a refused request: its status and message.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return e.msg }

func unauthorized(msg string) *authError { return &authError{http.StatusUnauthorized, msg} }
func forbidden(msg string) *authError    { return &authError{http.StatusForbidden, msg} }

// safeMethod reports methods that must not change state.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// peerAddr is the request's TCP peer.
func peerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

func (h *Handler) trustedProxy(r *http.Request) bool {
	ip, ok := peerAddr(r)
	if !ok {
		return false
	}
	for _, p := range h.opts.Auth.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// checkBrowserRequest is the CSRF defence of every state-changing request:
// the body must be declared JSON (an HTML form or a "simple" cross-site
// fetch cannot send application/json without a CORS preflight, which this
// hook never grants), and a request that a browser marks as coming from
// another site is refused whatever its credentials.
func (h *Handler) checkBrowserRequest(r *http.Request) *authError {
	if safeMethod(r.Method) {
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &authError{http.StatusUnsupportedMediaType, "state-changing requests must have Content-Type: application/json"}
	}
	if o := r.Header.Get("Origin"); o != "" && !h.sameOrigin(r, o) {
		return forbidden(fmt.Sprintf("cross-origin request from %q refused", o))
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return forbidden("cross-site request refused (Sec-Fetch-Site)")
	}
	return nil
}

// sameOrigin reports whether origin (an Origin header or a Referer URL) is
// this hook: same host as the request, or one of AllowedOrigins.
func (h *Handler) sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	o := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, a := range h.opts.Auth.AllowedOrigins {
		if p, err := parseOrigin(a); err == nil && p == o {
			return true
		}
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return false
	}
	// Behind a TLS-terminating proxy the hook sees HTTP while the page is
	// HTTPS; the host (with its port) is what must match.
	return r.TLS == nil || u.Scheme == "https"
}

// sessionSameOrigin requires positive evidence that a cookie-authenticated
// state-changing request comes from the hook's own page: SameSite=Strict
// already keeps other sites' requests cookie-less, this is the second
// lock.
func (h *Handler) sessionSameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return h.sameOrigin(r, o)
	}
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return h.sameOrigin(r, ref)
	}
	return false
}

// authenticate finds who r comes from.
func (h *Handler) authenticate(r *http.Request) (Identity, *authError) {
	a := h.opts.Auth
	if len(a.TrustedProxies) > 0 && h.trustedProxy(r) {
		if name := strings.TrimSpace(r.Header.Get(h.opts.AnnotatorHeader)); name != "" {
			if err := checkText(h.opts.AnnotatorHeader+" header", name, maxAnnotatorLen, true); err != nil {
				return Identity{}, &authError{http.StatusBadRequest, err.Error()}
			}
			role := RoleAnnotator
			if h.accounts != nil {
				ix, err := h.accounts.get(r.Context())
				if err != nil {
					return Identity{}, &authError{http.StatusServiceUnavailable, err.Error()}
				}
				if acc, ok := ix.byName[name]; ok {
					role = acc.Role
				}
			}
			return Identity{Name: name, Role: role, Via: viaProxy}, nil
		}
	}
	if authz := r.Header.Get("Authorization"); authz != "" {
		scheme, tok, ok := strings.Cut(authz, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Identity{}, unauthorized("Authorization must be \"Bearer <token>\"")
		}
		acc, err := h.accountByToken(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			return Identity{}, err
		}
		return Identity{Name: acc.Name, Role: acc.Role, Via: viaToken}, nil
	}
	if id, ok := sessionCookieValue(r); ok && h.accounts != nil {
		s, ok := h.sessions.lookup(id, a.Now())
		if !ok {
			return Identity{}, unauthorized("session expired or unknown: sign in again")
		}
		ix, err := h.accounts.get(r.Context())
		if err != nil {
			return Identity{}, &authError{http.StatusServiceUnavailable, err.Error()}
		}
		acc, ok := ix.byHash[s.tokenHash]
		if !ok {
			h.sessions.end(id)
			return Identity{}, unauthorized("the account of this session was revoked or its token replaced: sign in again")
		}
		if !safeMethod(r.Method) && !h.sessionSameOrigin(r) {
			return Identity{}, forbidden("cookie-authenticated request without same-origin evidence (Origin, Sec-Fetch-Site or Referer) refused")
		}
		return Identity{Name: acc.Name, Role: acc.Role, Via: viaSession}, nil
	}
	if a.NoAuth {
		if ip, ok := peerAddr(r); !ok || !ip.IsLoopback() {
			return Identity{}, forbidden("this hook runs without authentication and serves loopback clients only")
		}
		return Identity{Role: RoleAdmin, Via: viaNone}, nil
	}
	return Identity{}, unauthorized("sign in: send Authorization: Bearer <token> or use the page's sign-in")
}

// accountByToken looks a token up. Unknown, revoked and malformed tokens
// get the same answer.
func (h *Handler) accountByToken(ctx context.Context, tok string) (Account, *authError) {
	if h.accounts == nil {
		return Account{}, unauthorized("this hook has no accounts (proxy mode)")
	}
	if !wellFormedToken(tok) {
		return Account{}, unauthorized("unknown or revoked token")
	}
	ix, err := h.accounts.get(ctx)
	if err != nil {
		return Account{}, &authError{http.StatusServiceUnavailable, err.Error()}
	}
	acc, ok := ix.byHash[HashToken(tok)]
	if !ok {
		return Account{}, unauthorized("unknown or revoked token")
	}
	return acc, nil
}

type identityKey struct{}

// identityOf returns the identity protect put in ctx.
func identityOf(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// protect wraps an API handler: browser checks, authentication, the role
// need, and the rule that a client-claimed annotator (the annotator header
// outside proxy mode) must be the authenticated one.
func (h *Handler) protect(need Role, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h.checkBrowserRequest(r); err != nil {
			h.refuse(w, err)
			return
		}
		id, err := h.authenticate(r)
		if err != nil {
			h.refuse(w, err)
			return
		}
		if rec, ok := w.(*statusRecorder); ok {
			rec.who = id.Name
		}
		if !id.Role.Allows(need) {
			h.refuse(w, forbidden(fmt.Sprintf("%s %s needs the %s role; %q is %s", r.Method, r.URL.Path, need, id.Name, id.Role)))
			return
		}
		if claim := strings.TrimSpace(r.Header.Get(h.opts.AnnotatorHeader)); claim != "" && id.Via != viaNone && claim != id.Name {
			h.refuse(w, forbidden(fmt.Sprintf("%s header %q is not the signed-in annotator %q", h.opts.AnnotatorHeader, claim, id.Name)))
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	}
}

func (h *Handler) refuse(w http.ResponseWriter, err *authError) {
	if err.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="clozeloop"`)
	}
	writeError(w, err.status, err.msg)
}

// who resolves the annotator of a request from its identity and the
// annotator the body names (which must be the same, or empty). With NoAuth
// the body or the annotator header names them, as before accounts.
func (h *Handler) who(w http.ResponseWriter, r *http.Request, body string) (string, bool) {
	id := identityOf(r.Context())
	body = strings.TrimSpace(body)
	if id.Via != viaNone {
		if body != "" && body != id.Name {
			writeError(w, http.StatusForbidden, fmt.Sprintf("annotator %q in the body is not the signed-in annotator %q", body, id.Name))
			return "", false
		}
		return id.Name, true
	}
	name, err := h.annotator(r, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return name, true
}

// SignInRequest is the body of POST /api/v1/session.
type SignInRequest struct {
	Token string `json:"token"`
}

// SessionResponse answers sign-in and GET /api/v1/me.
type SessionResponse struct {
	Identity
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if err := h.checkBrowserRequest(r); err != nil {
		h.refuse(w, err)
		return
	}
	var req SignInRequest
	if !decode(w, r, &req, false) {
		return
	}
	acc, aerr := h.accountByToken(r.Context(), strings.TrimSpace(req.Token))
	if aerr != nil {
		h.refuse(w, aerr)
		return
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.who = acc.Name
	}
	id, exp, err := h.sessions.create(acc.TokenHash, h.opts.Auth.Now(), h.opts.Auth.SessionTTL)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.setSessionCookie(w, r, id, exp)
	writeJSON(w, http.StatusOK, SessionResponse{Identity: Identity{Name: acc.Name, Role: acc.Role, Via: viaSession}, ExpiresAt: exp})
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	if err := h.checkBrowserRequest(r); err != nil {
		h.refuse(w, err)
		return
	}
	if id, ok := sessionCookieValue(r); ok {
		h.sessions.end(id)
	}
	h.setSessionCookie(w, r, "", time.Time{})
	writeJSON(w, http.StatusOK, map[string]bool{"signed_out": true})
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, SessionResponse{Identity: identityOf(r.Context())})
}

// AddAccountRequest is the body of POST /api/v1/annotators.
type AddAccountRequest struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// NewTokenResponse carries a token, shown this once.
type NewTokenResponse struct {
	Account AccountInfo `json:"account"`
	Token   string      `json:"token"`
}

func (h *Handler) needAccounts(w http.ResponseWriter) bool {
	if h.opts.Auth.Accounts == nil {
		writeError(w, http.StatusNotFound, "this hook has no account store")
		return false
	}
	return true
}

func (h *Handler) listAccounts(w http.ResponseWriter, r *http.Request) {
	if !h.needAccounts(w) {
		return
	}
	list, err := ListAccounts(r.Context(), h.opts.Auth.Accounts)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"annotators": list})
}

func (h *Handler) addAccount(w http.ResponseWriter, r *http.Request) {
	if !h.needAccounts(w) {
		return
	}
	var req AddAccountRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.Role == "" {
		req.Role = RoleAnnotator
	}
	role, err := ParseRole(string(req.Role))
	if err == nil {
		err = CheckAccountName(req.Name)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	info, tok, err := AddAccount(r.Context(), h.opts.Auth.Accounts, req.Name, role, identityOf(r.Context()).Name)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, ErrAccountExists) {
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	h.accounts.invalidate()
	writeJSON(w, http.StatusCreated, NewTokenResponse{Account: info, Token: tok})
}

func (h *Handler) revokeAccount(w http.ResponseWriter, r *http.Request) {
	if !h.needAccounts(w) {
		return
	}
	name, ok := pathID(w, r, "name")
	if !ok {
		return
	}
	var empty struct{}
	if !decode(w, r, &empty, true) {
		return
	}
	info, err := RevokeAccount(r.Context(), h.opts.Auth.Accounts, name, identityOf(r.Context()).Name)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, ErrNoAccount) {
			status = http.StatusNotFound
		}
		writeError(w, status, err.Error())
		return
	}
	h.accounts.invalidate()
	writeJSON(w, http.StatusOK, map[string]any{"account": info})
}

// noteScope checks the scope of a skip or flag against the caller's role:
// an annotator skips and flags for themselves only; a lead may skip an item
// for everyone.
func noteScope(scope string, skip bool, role Role) (string, int, error) {
	switch scope {
	case "", workflows.ScopeSelf:
		return workflows.ScopeSelf, 0, nil
	case workflows.ScopeAll:
		if !skip {
			return "", http.StatusBadRequest, errors.New(`a flag is always the annotator's own: scope "all" is for skips`)
		}
		if !role.Allows(RoleLead) {
			return "", http.StatusForbidden, fmt.Errorf("skipping an item for everyone needs the lead role; you are %s", role)
		}
		return workflows.ScopeAll, 0, nil
	}
	return "", http.StatusBadRequest, fmt.Errorf(`scope %q: want "self" or "all"`, scope)
}

// leadOnlyStatusFields are Status fields only leads see (agreement between
// annotators would tell an annotator what the others answer).
var leadOnlyStatusFields = []string{"agreement"}

// statusFor returns st as the role may see it.
func statusFor(st workflows.Status, role Role) any {
	if role.Allows(RoleLead) {
		return st
	}
	b, err := json.Marshal(st)
	if err != nil {
		return st
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return st
	}
	for _, f := range leadOnlyStatusFields {
		delete(m, f)
	}
	return m
}
