package hook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/workflows"
)

// testAccounts is an account store with one account per role, plus a
// revoked one, and their tokens by name.
func testAccounts(t *testing.T) (*MemAccounts, map[string]string) {
	t.Helper()
	ctx := context.Background()
	st := &MemAccounts{}
	toks := map[string]string{}
	for _, a := range []struct {
		name string
		role Role
	}{{"ann", RoleAnnotator}, {"ann2", RoleAnnotator}, {"boss", RoleLead}, {"root", RoleAdmin}, {"gone", RoleLead}} {
		_, tok, err := AddAccount(ctx, st, a.name, a.role, "test")
		if err != nil {
			t.Fatal(err)
		}
		toks[a.name] = tok
	}
	if _, err := RevokeAccount(ctx, st, "gone", "test"); err != nil {
		t.Fatal(err)
	}
	return st, toks
}

// TestAuth is the table of who may do what: each of the reproduced attacks
// (cross-site close, no token, answering as someone else, skipping for
// everyone) and the legitimate uses next to them. A refused request never
// reaches the backend.
func TestAuth(t *testing.T) {
	accounts, toks := testAccounts(t)
	bearer := func(name string) map[string]string { return map[string]string{"Authorization": "Bearer " + toks[name]} }
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range m {
			out[a] = b
		}
		return out
	}
	const (
		jsonCT  = "application/json"
		tenNet  = "10.1.2.3:5555"
		outside = "192.0.2.1:5555"
	)
	tests := []struct {
		name    string
		proxy   bool // proxy mode: 10.0.0.0/8 trusted
		noAuth  bool
		remote  string
		method  string
		path    string
		ct      string
		header  map[string]string
		body    string
		want    int
		errLike string
		// calls are the backend calls expected (nil: none).
		calls []string
		check func(t *testing.T, f *fakeBackend)
	}{
		// 1. Any web page can end a run.
		{name: "cross-site text/plain close is refused before the backend", method: "POST", path: "/api/v1/runs/run-1/close",
			ct: "text/plain", header: map[string]string{"Origin": "https://evil.example"}, want: 415, errLike: "application/json"},
		{name: "text/plain close even with a lead token", method: "POST", path: "/api/v1/runs/run-1/close",
			ct: "text/plain", header: with(bearer("boss"), "Origin", "https://evil.example"), want: 415},
		{name: "form-encoded close", method: "POST", path: "/api/v1/runs/run-1/close", ct: "application/x-www-form-urlencoded",
			header: bearer("boss"), body: "round=2", want: 415},
		{name: "JSON close from another origin", method: "POST", path: "/api/v1/runs/run-1/close", ct: jsonCT,
			header: with(bearer("boss"), "Origin", "https://evil.example"), body: `{"round":2}`, want: 403, errLike: "cross-origin"},
		{name: "JSON close marked cross-site by the browser", method: "POST", path: "/api/v1/runs/run-1/close", ct: jsonCT,
			header: with(bearer("boss"), "Sec-Fetch-Site", "cross-site"), body: `{"round":2}`, want: 403, errLike: "cross-site"},
		{name: "close without a token", method: "POST", path: "/api/v1/runs/run-1/close", ct: jsonCT, body: `{"round":2}`,
			want: 401, errLike: "sign in"},
		{name: "annotator may not close", method: "POST", path: "/api/v1/runs/run-1/close", ct: jsonCT, header: bearer("ann"),
			body: `{"round":2}`, want: 403, errLike: "needs the lead role"},
		{name: "lead closes", method: "POST", path: "/api/v1/runs/run-1/close", ct: jsonCT,
			header: with(bearer("boss"), "Origin", "http://hook.test"), body: `{"round":2,"reason":"enough"}`, want: 200,
			calls: []string{"close run-1"},
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.closes) != 1 || f.closes[0].Reason != "closed by boss: enough" {
					t.Errorf("closes %+v", f.closes)
				}
			}},
		{name: "admin closes too", method: "POST", path: "/api/v1/runs/run-1/close", ct: jsonCT, header: bearer("root"),
			body: `{"round":2}`, want: 200, calls: []string{"close run-1"}},

		// Extending a round: leads only, JSON only, same origin only.
		{name: "annotator may not extend", method: "POST", path: "/api/v1/runs/run-1/extend", ct: jsonCT, header: bearer("ann"),
			body: `{"round":2,"extend":"24h"}`, want: 403, errLike: "needs the lead role"},
		{name: "extend without a token", method: "POST", path: "/api/v1/runs/run-1/extend", ct: jsonCT,
			body: `{"round":2,"extend":"24h"}`, want: 401},
		{name: "text/plain extend with a lead token", method: "POST", path: "/api/v1/runs/run-1/extend", ct: "text/plain",
			header: bearer("boss"), body: `{"round":2,"extend":"24h"}`, want: 415, errLike: "application/json"},
		{name: "cross-origin extend", method: "POST", path: "/api/v1/runs/run-1/extend", ct: jsonCT,
			header: with(bearer("boss"), "Origin", "https://evil.example"), body: `{"round":2,"extend":"24h"}`, want: 403, errLike: "cross-origin"},
		{name: "lead extends with bad JSON", method: "POST", path: "/api/v1/runs/run-1/extend", ct: jsonCT, header: bearer("boss"),
			body: `{"round":2,"extend":`, want: 400, errLike: "bad JSON"},
		{name: "lead extends", method: "POST", path: "/api/v1/runs/run-1/extend", ct: jsonCT,
			header: with(bearer("boss"), "Origin", "http://hook.test"), body: `{"round":2,"extend":"24h","reason":"holiday"}`, want: 200,
			calls: []string{"extend run-1"},
			check: func(t *testing.T, f *fakeBackend) {
				if len(f.extends) != 1 || f.extends[0].Reason != "extended by boss: holiday" || f.extends[0].Extend.D() != 24*time.Hour {
					t.Errorf("extends %+v", f.extends)
				}
			}},
		{name: "admin extends too", method: "POST", path: "/api/v1/runs/run-1/extend", ct: jsonCT, header: bearer("root"),
			body: `{"round":2,"extend":"1h"}`, want: 200, calls: []string{"extend run-1"}},

		// 2. Anyone is anyone.
		{name: "no token on a read", method: "GET", path: "/api/v1/runs", want: 401},
		{name: "unknown token", method: "GET", path: "/api/v1/runs", header: map[string]string{"Authorization": "Bearer clz_" + strings.Repeat("A", 43)},
			want: 401, errLike: "unknown or revoked"},
		{name: "malformed token", method: "GET", path: "/api/v1/runs", header: map[string]string{"Authorization": "Bearer hunter2"},
			want: 401, errLike: "unknown or revoked"},
		{name: "not a bearer", method: "GET", path: "/api/v1/runs", header: map[string]string{"Authorization": "Basic YTpi"},
			want: 401, errLike: "Bearer"},
		{name: "revoked token", method: "GET", path: "/api/v1/runs", header: bearer("gone"), want: 401, errLike: "unknown or revoked"},
		{name: "token reads", method: "GET", path: "/api/v1/runs", header: bearer("ann"), want: 200, calls: []string{"list run-1"}},
		{name: "annotator reads status", method: "GET", path: "/api/v1/runs/run-1/status", header: bearer("ann"), want: 200,
			errLike: `"phase": "labeling"`, calls: []string{"status run-1"}},
		{name: "answer as oneself", method: "POST", path: "/api/v1/runs/run-1/labels", ct: jsonCT, header: bearer("ann"),
			body: `{"round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`, want: 200, calls: []string{"batch run-1", "submit run-1"},
			check: func(t *testing.T, f *fakeBackend) {
				if f.answers["a"]["ann"] != "dog" {
					t.Errorf("answers %v", f.answers)
				}
			}},
		{name: "body names oneself", method: "POST", path: "/api/v1/runs/run-1/labels", ct: jsonCT, header: bearer("ann"),
			body: `{"annotator":"ann","round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`, want: 200, calls: []string{"batch run-1", "submit run-1"}},
		{name: "answer as someone else (body)", method: "POST", path: "/api/v1/runs/run-1/labels", ct: jsonCT, header: bearer("ann"),
			body: `{"annotator":"ann2","round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`, want: 403, errLike: "not the signed-in"},
		{name: "answer as someone else (header)", method: "POST", path: "/api/v1/runs/run-1/labels", ct: jsonCT,
			header: with(bearer("ann"), "X-Annotator", "ann2"), body: `{"round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`,
			want: 403, errLike: "not the signed-in"},
		{name: "async answer as someone else", method: "POST", path: "/api/v1/runs/run-1/labels?async=1", ct: jsonCT, header: bearer("ann"),
			body: `{"annotator":"boss","round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`, want: 403},
		{name: "skip is for oneself", method: "POST", path: "/api/v1/runs/run-1/items/a/skip", ct: jsonCT, header: bearer("ann"),
			body: `{"round":2}`, want: 202, calls: []string{"skip run-1"},
			check: func(t *testing.T, f *fakeBackend) {
				want := workflows.ItemNote{Round: 2, ItemID: "a", Annotator: "ann", Scope: workflows.ScopeSelf}
				if len(f.skipped) != 1 || f.skipped[0] != want {
					t.Errorf("skipped %+v, want %+v", f.skipped, want)
				}
			}},
		{name: "annotator may not skip for everyone", method: "POST", path: "/api/v1/runs/run-1/items/a/skip", ct: jsonCT,
			header: bearer("ann"), body: `{"round":2,"scope":"all"}`, want: 403, errLike: "lead role"},
		{name: "skip for someone else", method: "POST", path: "/api/v1/runs/run-1/items/a/skip", ct: jsonCT,
			header: bearer("ann"), body: `{"round":2,"annotator":"ann2"}`, want: 403},
		{name: "lead skips for everyone", method: "POST", path: "/api/v1/runs/run-1/items/a/skip", ct: jsonCT,
			header: bearer("boss"), body: `{"round":2,"scope":"all","reason":"broken"}`, want: 202, calls: []string{"skip run-1"},
			check: func(t *testing.T, f *fakeBackend) {
				want := workflows.ItemNote{Round: 2, ItemID: "a", Annotator: "boss", Reason: "broken", Scope: workflows.ScopeAll}
				if len(f.skipped) != 1 || f.skipped[0] != want {
					t.Errorf("skipped %+v, want %+v", f.skipped, want)
				}
			}},
		{name: "flag for everyone makes no sense", method: "POST", path: "/api/v1/runs/run-1/items/a/flag", ct: jsonCT,
			header: bearer("boss"), body: `{"round":2,"scope":"all"}`, want: 400},
		{name: "unknown scope", method: "POST", path: "/api/v1/runs/run-1/items/a/skip", ct: jsonCT,
			header: bearer("boss"), body: `{"round":2,"scope":"team"}`, want: 400},

		// Accounts over the API: admins only.
		{name: "annotator may not list accounts", method: "GET", path: "/api/v1/annotators", header: bearer("ann"), want: 403},
		{name: "lead may not add accounts", method: "POST", path: "/api/v1/annotators", ct: jsonCT, header: bearer("boss"),
			body: `{"name":"x","role":"admin"}`, want: 403},
		{name: "admin lists accounts", method: "GET", path: "/api/v1/annotators", header: bearer("root"), want: 200},
		{name: "me", method: "GET", path: "/api/v1/me", header: bearer("boss"), want: 200},

		// Proxy mode: the header is believed from the proxy's addresses only.
		{name: "proxy header from the proxy", proxy: true, remote: tenNet, method: "POST", path: "/api/v1/runs/run-1/close", ct: jsonCT,
			header: map[string]string{"X-Annotator": "boss"}, body: `{"round":2}`, want: 200, calls: []string{"close run-1"}},
		{name: "proxy user without an account is an annotator", proxy: true, remote: tenNet, method: "POST",
			path: "/api/v1/runs/run-1/labels", ct: jsonCT, header: map[string]string{"X-Annotator": "carol"},
			body: `{"round":2,"labels":[{"item_id":"a","answers":["dog"]}]}`, want: 200, calls: []string{"batch run-1", "submit run-1"},
			check: func(t *testing.T, f *fakeBackend) {
				if f.answers["a"]["carol"] != "dog" {
					t.Errorf("answers %v", f.answers)
				}
			}},
		{name: "proxy user without an account may not close", proxy: true, remote: tenNet, method: "POST",
			path: "/api/v1/runs/run-1/close", ct: jsonCT, header: map[string]string{"X-Annotator": "carol"}, body: `{}`, want: 403},
		{name: "proxy header from elsewhere is not identity", proxy: true, remote: outside, method: "POST", path: "/api/v1/runs/run-1/close",
			ct: jsonCT, header: map[string]string{"X-Annotator": "boss"}, body: `{"round":2}`, want: 401},
		{name: "proxy header from elsewhere must match the token", proxy: true, remote: outside, method: "POST",
			path: "/api/v1/runs/run-1/close", ct: jsonCT, header: with(bearer("ann"), "X-Annotator", "boss"), body: `{"round":2}`, want: 403},
		{name: "tokens still work in proxy mode", proxy: true, remote: outside, method: "POST", path: "/api/v1/runs/run-1/close",
			ct: jsonCT, header: bearer("boss"), body: `{"round":2}`, want: 200, calls: []string{"close run-1"}},

		// No authentication: loopback only.
		{name: "no-auth from a remote address", noAuth: true, remote: outside, method: "GET", path: "/api/v1/runs", want: 403,
			errLike: "loopback"},
		{name: "no-auth from loopback", noAuth: true, remote: "127.0.0.1:999", method: "GET", path: "/api/v1/runs", want: 200,
			calls: []string{"list run-1"}},
		{name: "no-auth over IPv6 loopback", noAuth: true, remote: "[::1]:999", method: "GET", path: "/api/v1/runs", want: 200,
			calls: []string{"list run-1"}},
		{name: "no-auth still needs JSON", noAuth: true, remote: "127.0.0.1:999", method: "POST", path: "/api/v1/runs/run-1/close",
			ct: "text/plain", want: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			auth := AuthOptions{Accounts: accounts}
			switch {
			case tt.noAuth:
				auth = AuthOptions{NoAuth: true}
			case tt.proxy:
				auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			}
			h, logs := newTestHandler(t, f, Options{Auth: auth})
			req := httptest.NewRequest(tt.method, "http://hook.test"+tt.path, strings.NewReader(tt.body))
			if tt.remote != "" {
				req.RemoteAddr = tt.remote
			}
			if tt.ct != "" {
				req.Header.Set("Content-Type", tt.ct)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.errLike != "" && !strings.Contains(rec.Body.String(), tt.errLike) {
				t.Errorf("body %s does not contain %q", rec.Body, tt.errLike)
			}
			if tt.want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if strings.Join(f.calls, ",") != strings.Join(tt.calls, ",") {
				t.Errorf("backend calls %q, want %q", f.calls, tt.calls)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
			for name := range toks {
				if strings.Contains(logs.String(), toks[name]) {
					t.Errorf("the log holds %s's token: %s", name, logs)
				}
			}
			noCORS(t, rec.Header())
		})
	}
}

func noCORS(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("CORS header %s: %s", k, h.Get(k))
		}
	}
}

// TestNoCORS sends other sites' preflights: no Access-Control-Allow-*
// header ever comes back, so a browser lets no other origin send JSON or
// credentials to the hook.
func TestNoCORS(t *testing.T) {
	accounts, toks := testAccounts(t)
	f := newFake()
	h, _ := newTestHandler(t, f, Options{Auth: AuthOptions{Accounts: accounts}})
	for _, path := range []string{"/api/v1/runs/run-1/close", "/api/v1/runs/run-1/labels", "/api/v1/session", "/api/v1/runs", "/"} {
		req := httptest.NewRequest(http.MethodOptions, path, nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,authorization")
		req.Header.Set("Authorization", "Bearer "+toks["boss"])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code/100 == 2 {
			t.Errorf("OPTIONS %s: %d, want an error status", path, rec.Code)
		}
		noCORS(t, rec.Header())
	}
	if len(f.calls) != 0 {
		t.Errorf("preflights reached the backend: %q", f.calls)
	}
}

// TestRevocationTTL checks that a revoked token stops working once the
// cached accounts are older than the TTL, and not before a reload.
func TestRevocationTTL(t *testing.T) {
	accounts, toks := testAccounts(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h, _ := newTestHandler(t, newFake(), Options{Auth: AuthOptions{Accounts: accounts, AccountsTTL: 5 * time.Second, Now: clock}})
	get := func() int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+toks["ann"])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if c := get(); c != 200 {
		t.Fatalf("before revocation: %d", c)
	}
	if _, err := RevokeAccount(context.Background(), accounts, "ann", "test"); err != nil {
		t.Fatal(err)
	}
	advance(4 * time.Second)
	if c := get(); c != 200 {
		t.Fatalf("within the TTL the cached accounts serve: %d", c)
	}
	advance(2 * time.Second)
	if c := get(); c != 401 {
		t.Fatalf("after the TTL a revoked token must be refused: %d", c)
	}
}

// failingAccounts is an account store that fails after the first load.
type failingAccounts struct {
	AccountStore
	mu    sync.Mutex
	loads int
}

func (f *failingAccounts) Load(ctx context.Context) (AccountsFile, string, error) {
	f.mu.Lock()
	f.loads++
	n := f.loads
	f.mu.Unlock()
	if n > 1 {
		return AccountsFile{}, "", io.ErrUnexpectedEOF
	}
	return f.AccountStore.Load(ctx)
}

// TestAccountsUnavailable: while the store cannot be read the last copy
// serves for AccountsStale, then requests fail with 503 rather than trust
// possibly revoked tokens.
func TestAccountsUnavailable(t *testing.T) {
	accounts, toks := testAccounts(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h, _ := newTestHandler(t, newFake(), Options{Auth: AuthOptions{Accounts: &failingAccounts{AccountStore: accounts},
		AccountsTTL: 5 * time.Second, AccountsStale: time.Minute, Now: clock}})
	get := func() int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+toks["ann"])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, step := range []struct {
		advance time.Duration
		want    int
	}{{0, 200}, {10 * time.Second, 200}, {40 * time.Second, 200}, {15 * time.Second, 503}} {
		advance(step.advance)
		if c := get(); c != step.want {
			t.Fatalf("after +%s: %d, want %d", step.advance, c, step.want)
		}
	}
}

// TestSessionFlow signs in with a token over a real server: HttpOnly,
// SameSite=Strict cookie; same-origin requests work with it, others are
// refused; sign-out and revocation end it.
func TestSessionFlow(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "http"
		if useTLS {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			accounts, toks := testAccounts(t)
			f := newFake()
			var mu sync.Mutex
			now := time.Now() // the cookie jar expires cookies by the real clock
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			h, logs := newTestHandler(t, f, Options{Auth: AuthOptions{Accounts: accounts, AccountsTTL: time.Second, Now: clock}})
			srv := httptest.NewUnstartedServer(h)
			if useTLS {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			jar, err := cookiejar.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			hc := srv.Client()
			hc.Jar = jar
			do := func(method, path, body string, hdr map[string]string) (*http.Response, string) {
				t.Helper()
				req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if method != http.MethodGet {
					req.Header.Set("Content-Type", "application/json")
				}
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}
			same := map[string]string{"Origin": srv.URL}

			if resp, body := do("GET", "/api/v1/me", "", nil); resp.StatusCode != 401 {
				t.Fatalf("me before sign-in: %d %s", resp.StatusCode, body)
			}
			if resp, _ := do("POST", "/api/v1/session", `{"token":"`+toks["gone"]+`"}`, same); resp.StatusCode != 401 {
				t.Fatalf("sign-in with a revoked token: %d", resp.StatusCode)
			}
			if resp, _ := do("POST", "/api/v1/session", `{"token":"`+toks["ann"]+`"}`, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != 403 {
				t.Fatalf("sign-in from another origin: %d", resp.StatusCode)
			}
			resp, body := do("POST", "/api/v1/session", `{"token":"`+toks["ann"]+`"}`, same)
			if resp.StatusCode != 200 {
				t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
			}
			var sc *http.Cookie
			for _, c := range resp.Cookies() {
				sc = c
			}
			wantName := sessionCookie
			if useTLS {
				wantName = sessionCookieSecure
			}
			if sc == nil || sc.Name != wantName || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure != useTLS || sc.Path != "/" {
				t.Fatalf("session cookie %+v; want %s, HttpOnly, SameSite=Strict, Secure=%v", sc, wantName, useTLS)
			}
			if strings.Contains(sc.Value, toks["ann"]) || strings.Contains(body, toks["ann"]) {
				t.Fatal("the session cookie or the answer carries the token")
			}
			var me SessionResponse
			resp, body = do("GET", "/api/v1/me", "", nil)
			if err := json.Unmarshal([]byte(body), &me); err != nil || resp.StatusCode != 200 || me.Name != "ann" || me.Role != RoleAnnotator || me.Via != viaSession {
				t.Fatalf("me: %d %s", resp.StatusCode, body)
			}

			labels := func(item string) string {
				return `{"round":2,"labels":[{"item_id":"` + item + `","answers":["dog"]}]}`
			}
			for _, c := range []struct {
				name string
				hdr  map[string]string
				want int
			}{
				{"no origin evidence", nil, 403},
				{"other origin", map[string]string{"Origin": "https://evil.example"}, 403},
				{"same-site but other origin", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
				{"referer of another site", map[string]string{"Referer": "https://evil.example/page"}, 403},
				{"other annotator in the header", map[string]string{"Origin": srv.URL, "X-Annotator": "ann2"}, 403},
			} {
				if resp, body := do("POST", "/api/v1/runs/run-1/labels", labels("a"), c.hdr); resp.StatusCode != c.want {
					t.Errorf("%s: %d, want %d: %s", c.name, resp.StatusCode, c.want, body)
				}
			}
			if len(f.answers) != 0 {
				t.Fatalf("a refused request reached the backend: %v", f.answers)
			}
			if resp, body := do("POST", "/api/v1/runs/run-1/labels", labels("a"), same); resp.StatusCode != 200 {
				t.Fatalf("same-origin answer: %d %s", resp.StatusCode, body)
			}
			if resp, body := do("POST", "/api/v1/runs/run-1/labels", labels("b"), map[string]string{"Sec-Fetch-Site": "same-origin"}); resp.StatusCode != 200 {
				t.Fatalf("Sec-Fetch-Site same-origin answer: %d %s", resp.StatusCode, body)
			}
			if f.answers["a"]["ann"] != "dog" || f.answers["b"]["ann"] != "dog" {
				t.Fatalf("answers %v", f.answers)
			}
			if resp, _ := do("POST", "/api/v1/runs/run-1/close", `{}`, same); resp.StatusCode != 403 {
				t.Fatalf("annotator session closing: %d", resp.StatusCode)
			}

			// Sign-out ends the session on the server, not only in the jar.
			if resp, _ := do("DELETE", "/api/v1/session", "", same); resp.StatusCode != 200 {
				t.Fatalf("sign-out: %d", resp.StatusCode)
			}
			replay := func() int {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/me", nil)
				req.AddCookie(&http.Cookie{Name: sc.Name, Value: sc.Value})
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if c := replay(); c != 401 {
				t.Fatalf("old session cookie after sign-out: %d", c)
			}

			// Revoking the account ends its sessions.
			if resp, _ := do("POST", "/api/v1/session", `{"token":"`+toks["ann"]+`"}`, same); resp.StatusCode != 200 {
				t.Fatal("second sign-in failed")
			}
			if resp, _ := do("GET", "/api/v1/me", "", nil); resp.StatusCode != 200 {
				t.Fatal("second session does not work")
			}
			if _, err := RevokeAccount(context.Background(), accounts, "ann", "test"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			now = now.Add(2 * time.Second) // past the accounts TTL
			mu.Unlock()
			if resp, body := do("GET", "/api/v1/me", "", nil); resp.StatusCode != 401 {
				t.Fatalf("session of a revoked account: %d %s", resp.StatusCode, body)
			}

			// A session ends after SessionTTL (12 h by default).
			if resp, _ := do("POST", "/api/v1/session", `{"token":"`+toks["boss"]+`"}`, same); resp.StatusCode != 200 {
				t.Fatal("sign-in as boss failed")
			}
			mu.Lock()
			now = now.Add(DefaultSessionTTL - time.Minute)
			mu.Unlock()
			if resp, _ := do("GET", "/api/v1/me", "", nil); resp.StatusCode != 200 {
				t.Fatal("session ended before its TTL")
			}
			mu.Lock()
			now = now.Add(2 * time.Minute)
			mu.Unlock()
			if resp, _ := do("GET", "/api/v1/me", "", nil); resp.StatusCode != 401 {
				t.Fatalf("session after its TTL: %d", resp.StatusCode)
			}
			if strings.Contains(logs.String(), toks["ann"]) {
				t.Error("the log holds the token")
			}
		})
	}
}

// TestAdminAccountsAPI adds and revokes an account through the API.
func TestAdminAccountsAPI(t *testing.T) {
	accounts, toks := testAccounts(t)
	h, _ := newTestHandler(t, newFake(), Options{Auth: AuthOptions{Accounts: accounts}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(tok, path, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(toks["root"], "/api/v1/annotators", `{"name":"dora","role":"lead"}`)
	var created NewTokenResponse
	if err := json.Unmarshal([]byte(body), &created); code != 201 || err != nil || !strings.HasPrefix(created.Token, TokenPrefix) || created.Account.Role != RoleLead {
		t.Fatalf("add: %d %s", code, body)
	}
	if code, _ := post(toks["root"], "/api/v1/annotators", `{"name":"dora"}`); code != 409 {
		t.Errorf("add twice: %d, want 409", code)
	}
	if code, _ := post(toks["root"], "/api/v1/annotators", `{"name":"bad name"}`); code != 400 {
		t.Errorf("bad name: %d, want 400", code)
	}
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client(), Token: created.Token}
	if id, err := c.Me(context.Background()); err != nil || id.Name != "dora" || id.Role != RoleLead {
		t.Fatalf("new token: %+v %v", id, err)
	}
	if code, body := post(toks["root"], "/api/v1/annotators/dora/revoke", `{}`); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if _, err := c.Me(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("revoked token: %v, want 401", err)
	}
	if code, _ := post(toks["root"], "/api/v1/annotators/nobody/revoke", `{}`); code != 404 {
		t.Errorf("revoke unknown: %d, want 404", code)
	}
}

func TestNewNeedsAuth(t *testing.T) {
	tests := []struct {
		name string
		auth AuthOptions
		ok   bool
	}{
		{"nothing", AuthOptions{}, false},
		{"no-auth", AuthOptions{NoAuth: true}, true},
		{"accounts", AuthOptions{Accounts: &MemAccounts{}}, true},
		{"proxy only", AuthOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, true},
		{"no-auth with accounts", AuthOptions{NoAuth: true, Accounts: &MemAccounts{}}, false},
		{"bad origin", AuthOptions{Accounts: &MemAccounts{}, AllowedOrigins: []string{"evil.example"}}, false},
	}
	for _, tt := range tests {
		_, err := New(newFake(), Options{Auth: tt.auth, Logger: slog.New(slog.DiscardHandler)})
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
