package hook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Session cookie names. With TLS (or Options.Auth.SecureCookie) the cookie
// carries the __Host- prefix, which browsers accept only with Secure, Path=/
// and no Domain: no other host or plain-HTTP page can set or shadow it.
const (
	sessionCookie       = "clozeloop_session"
	sessionCookieSecure = "__Host-clozeloop_session"
)

// Session bounds.
const (
	// DefaultSessionTTL is how long a sign-in lasts (absolute, not sliding).
	DefaultSessionTTL = 12 * time.Hour
	// maxSessionsPerAccount: an account's oldest sessions end beyond this.
	maxSessionsPerAccount = 32
	// maxSessions bounds the table; only valid tokens create sessions.
	maxSessions = 100000
)

// errSessionsFull is returned when the session table is full of unexpired
// sessions.
var errSessionsFull = errors.New("too many open sessions: try again later")

// session is a signed-in browser. The cookie holds a random id; the table
// is keyed by the id's SHA-256, so the table itself holds no usable secret.
type session struct {
	tokenHash string
	created   time.Time
	expires   time.Time
}

// sessions is the hook's in-memory session table. Sessions end when the
// hook restarts (annotators sign in again).
type sessions struct {
	mu sync.Mutex
	m  map[string]session
}

func newSessions() *sessions { return &sessions{m: map[string]session{}} }

func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// create opens a session for the account with tokenHash and returns the
// cookie value.
func (s *sessions) create(tokenHash string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, fmt.Errorf("generate session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	exp := now.Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	var mine []string
	for k, v := range s.m {
		switch {
		case !now.Before(v.expires):
			delete(s.m, k)
		case v.tokenHash == tokenHash:
			mine = append(mine, k)
		}
	}
	for len(mine) >= maxSessionsPerAccount {
		oldest := 0
		for i, k := range mine {
			if s.m[k].created.Before(s.m[mine[oldest]].created) {
				oldest = i
			}
		}
		delete(s.m, mine[oldest])
		mine = append(mine[:oldest], mine[oldest+1:]...)
	}
	if len(s.m) >= maxSessions {
		return "", time.Time{}, errSessionsFull
	}
	s.m[sessionKey(id)] = session{tokenHash: tokenHash, created: now, expires: exp}
	return id, exp, nil
}

// lookup returns the unexpired session with cookie value id.
func (s *sessions) lookup(id string, now time.Time) (session, bool) {
	k := sessionKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if ok && !now.Before(v.expires) {
		delete(s.m, k)
		return session{}, false
	}
	return v, ok
}

// end removes the session with cookie value id.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sessionKey(id))
}

// sessionCookieValue returns the session cookie of r, if any.
func sessionCookieValue(r *http.Request) (string, bool) {
	for _, name := range []string{sessionCookieSecure, sessionCookie} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value, true
		}
	}
	return "", false
}

// setSessionCookie sets (or, with maxAge < 0, clears) the session cookie:
// HttpOnly (no script reads it), SameSite=Strict (no other site's page
// sends it), Secure when the hook is reached over TLS.
func (h *Handler) setSessionCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time) {
	secure := r.TLS != nil || h.opts.Auth.SecureCookie
	name := sessionCookie
	if secure {
		name = sessionCookieSecure
	}
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
	}
	http.SetCookie(w, c)
}
