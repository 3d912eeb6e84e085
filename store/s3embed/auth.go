package s3embed

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// Signature Version 4 constants (see the AWS documentation "Authenticating
// Requests: Using the Authorization Header" and "Using Query Parameters").
const (
	sigAlgorithm    = "AWS4-HMAC-SHA256"
	sigTerminator   = "aws4_request"
	sigService      = "s3"
	amzDateFormat   = "20060102T150405Z"
	scopeDateFormat = "20060102"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	// MaxClockSkew is how far a request's signing time may be from the
	// server's clock, either way.
	MaxClockSkew = 15 * time.Minute
	// maxPresignExpiry is the longest validity of a presigned URL (7 days).
	maxPresignExpiry = 7 * 24 * time.Hour
	// bufferedBodyLimit is the largest body whose signed SHA-256 is checked
	// before the request reaches the S3 handler; larger bodies are checked
	// while they stream, and a mismatch fails the upload at its end.
	bufferedBodyLimit = 1 << 20
	emptySHA256       = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// authError is a refused request, answered with an S3 XML error document.
type authError struct {
	status  int
	code    string
	message string
}

func (e *authError) Error() string { return e.code + ": " + e.message }

func denied(code, format string, args ...any) *authError {
	return &authError{status: http.StatusForbidden, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *authError {
	return &authError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

// authenticator verifies AWS Signature Version 4 on every request (the
// Authorization header or a presigned URL's query parameters) against one
// key pair, refuses anonymous requests and CORS preflights, and removes any
// Access-Control-* header the S3 handler would add.
type authenticator struct {
	creds Credentials
	now   func() time.Time
	log   *slog.Logger
}

func (a *authenticator) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			// No cross-origin access: browsers get no Access-Control-Allow-*.
			writeError(w, r, denied("AccessDenied", "CORS is not enabled on this server: cross-origin requests are refused"))
			return
		}
		if err := a.verify(r); err != nil {
			a.log.Debug("s3embed: request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "code", err.code, "reason", err.message)
			writeError(w, r, err)
			return
		}
		nw := &noCORSWriter{ResponseWriter: w}
		next.ServeHTTP(nw, r)
		nw.strip() // a handler that wrote nothing: headers go out after it returns
	})
}

// verify checks r's signature and, for a signed payload hash, arranges for
// the body to be checked against it.
func (a *authenticator) verify(r *http.Request) *authError {
	q := r.URL.Query()
	auth := r.Header.Get("Authorization")
	switch {
	case auth != "":
		return a.verifyHeader(r, auth)
	case q.Has("X-Amz-Signature") || q.Has("X-Amz-Algorithm") || q.Has("X-Amz-Credential"):
		return a.verifyPresigned(r, q)
	case q.Has("Signature") || q.Has("AWSAccessKeyId"):
		return denied("AccessDenied", "signature version 2 is not supported: sign requests with AWS Signature Version 4")
	}
	return denied("AccessDenied", "anonymous requests are not allowed: sign requests with AWS Signature Version 4 and the server's access key")
}

// signedRequest is what both kinds of authentication extract.
type signedRequest struct {
	accessKey     string
	scopeDate     string
	region        string
	signedHeaders []string
	signature     string
	when          time.Time
	amzDate       string // the timestamp exactly as signed
	payloadHash   string
	query         url.Values // canonical query parameters
}

func (a *authenticator) verifyHeader(r *http.Request, auth string) *authError {
	if strings.HasPrefix(auth, "AWS ") {
		return denied("AccessDenied", "signature version 2 is not supported: sign requests with AWS Signature Version 4")
	}
	rest, ok := strings.CutPrefix(auth, sigAlgorithm+" ")
	if !ok {
		return badRequest("AuthorizationHeaderMalformed", "the authorization header must use the %s algorithm", sigAlgorithm)
	}
	var sr signedRequest
	var cred, signed string
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sr.signature = v
		}
	}
	if cred == "" || signed == "" || sr.signature == "" {
		return badRequest("AuthorizationHeaderMalformed", "the authorization header needs Credential, SignedHeaders and Signature")
	}
	if err := sr.parseCredential(cred, "AuthorizationHeaderMalformed"); err != nil {
		return err
	}
	if err := sr.parseSignedHeaders(signed, "AuthorizationHeaderMalformed"); err != nil {
		return err
	}
	switch d := r.Header.Get("X-Amz-Date"); {
	case d != "":
		t, err := time.Parse(amzDateFormat, d)
		if err != nil {
			return denied("AccessDenied", "X-Amz-Date %q is not in the form %s", d, amzDateFormat)
		}
		sr.when, sr.amzDate = t, d
	case r.Header.Get("Date") != "":
		t, err := http.ParseTime(r.Header.Get("Date"))
		if err != nil {
			return denied("AccessDenied", "the Date header is not an HTTP date")
		}
		sr.when, sr.amzDate = t.UTC(), t.UTC().Format(amzDateFormat)
	default:
		return denied("AccessDenied", "a signed request needs an X-Amz-Date or Date header")
	}
	if skew := a.now().Sub(sr.when); skew > MaxClockSkew || skew < -MaxClockSkew {
		return denied("RequestTimeTooSkewed", "the request was signed at %s, more than %s from the server's time %s",
			sr.when.Format(time.RFC3339), MaxClockSkew, a.now().UTC().Format(time.RFC3339))
	}
	sr.payloadHash = r.Header.Get("X-Amz-Content-Sha256")
	if sr.payloadHash == "" {
		return badRequest("InvalidRequest", "missing required header for this request: x-amz-content-sha256")
	}
	if !sr.signs("x-amz-content-sha256") {
		return denied("AccessDenied", "the x-amz-content-sha256 header must be signed")
	}
	sr.query = r.URL.Query()
	return a.check(r, &sr)
}

func (a *authenticator) verifyPresigned(r *http.Request, q url.Values) *authError {
	const code = "AuthorizationQueryParametersError"
	if q.Get("X-Amz-Algorithm") != sigAlgorithm {
		return badRequest(code, "X-Amz-Algorithm must be %s", sigAlgorithm)
	}
	var sr signedRequest
	sr.signature = q.Get("X-Amz-Signature")
	if sr.signature == "" {
		return badRequest(code, "X-Amz-Signature is missing")
	}
	if err := sr.parseCredential(q.Get("X-Amz-Credential"), code); err != nil {
		return err
	}
	if err := sr.parseSignedHeaders(q.Get("X-Amz-SignedHeaders"), code); err != nil {
		return err
	}
	t, err := time.Parse(amzDateFormat, q.Get("X-Amz-Date"))
	if err != nil {
		return badRequest(code, "X-Amz-Date must be in the form %s", amzDateFormat)
	}
	sr.when, sr.amzDate = t, q.Get("X-Amz-Date")
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresignExpiry {
		return badRequest(code, "X-Amz-Expires must be a number of seconds from 1 to %d", int64(maxPresignExpiry/time.Second))
	}
	now := a.now()
	if sr.when.Sub(now) > MaxClockSkew {
		return denied("AccessDenied", "the request was signed at %s, in the future", sr.when.Format(time.RFC3339))
	}
	if now.After(sr.when.Add(time.Duration(secs) * time.Second)) {
		return denied("AccessDenied", "request has expired")
	}
	sr.payloadHash = unsignedPayload
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		sr.payloadHash = h
	} else if h := q.Get("X-Amz-Content-Sha256"); h != "" {
		sr.payloadHash = h
	}
	sr.query = url.Values{}
	for k, v := range q {
		if k != "X-Amz-Signature" {
			sr.query[k] = v
		}
	}
	return a.check(r, &sr)
}

// parseCredential parses "AKID/20240101/us-east-1/s3/aws4_request".
func (sr *signedRequest) parseCredential(cred, code string) *authError {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[3] != sigService || parts[4] != sigTerminator || len(parts[1]) != 8 || parts[2] == "" {
		return badRequest(code, "the credential must be ACCESS_KEY/YYYYMMDD/REGION/s3/aws4_request")
	}
	if _, err := time.Parse(scopeDateFormat, parts[1]); err != nil {
		return badRequest(code, "the credential's date %q is not YYYYMMDD", parts[1])
	}
	sr.accessKey, sr.scopeDate, sr.region = parts[0], parts[1], parts[2]
	return nil
}

// parseSignedHeaders parses "host;x-amz-date": lower-case names, host
// among them.
func (sr *signedRequest) parseSignedHeaders(s, code string) *authError {
	if s == "" {
		return badRequest(code, "no signed headers")
	}
	sr.signedHeaders = strings.Split(s, ";")
	for _, h := range sr.signedHeaders {
		if h == "" || h != strings.ToLower(h) {
			return badRequest(code, "signed header names must be lower case and non-empty")
		}
	}
	if !sr.signs("host") {
		return badRequest(code, "the host header must be signed")
	}
	return nil
}

func (sr *signedRequest) signs(name string) bool {
	for _, h := range sr.signedHeaders {
		if h == name {
			return true
		}
	}
	return false
}

// check verifies the access key, the scope date, that every x-amz-* header
// is signed, the signature itself, and the payload hash.
func (a *authenticator) check(r *http.Request, sr *signedRequest) *authError {
	if subtle.ConstantTimeCompare([]byte(sr.accessKey), []byte(a.creds.AccessKeyID)) != 1 {
		return denied("InvalidAccessKeyId", "the access key id you provided does not exist in our records")
	}
	if sr.scopeDate != sr.when.UTC().Format(scopeDateFormat) {
		return denied("SignatureDoesNotMatch", "the credential's date %s is not the date of the signing time %s", sr.scopeDate, sr.amzDate)
	}
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-amz-") && !sr.signs(lower) {
			return denied("AccessDenied", "header %s must be signed", lower)
		}
	}
	key := signingKey(a.creds.SecretAccessKey, sr.scopeDate, sr.region)
	scope := sr.scopeDate + "/" + sr.region + "/" + sigService + "/" + sigTerminator
	got := []byte(strings.ToLower(sr.signature))
	// The path is canonically encoded by the signer (SDKs encode every byte
	// but A-Z a-z 0-9 - . _ ~); a client that sent another valid encoding
	// of the same path and signed it as sent is accepted too. Both decode
	// to the same key.
	ok := false
	for _, uri := range canonicalURIs(r) {
		sum := sha256.Sum256([]byte(canonicalRequest(r, sr, uri)))
		toSign := sigAlgorithm + "\n" + sr.amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
		want := hex.EncodeToString(hmacSHA256(key, []byte(toSign)))
		if hmac.Equal([]byte(want), got) {
			ok = true
		}
	}
	if !ok {
		return denied("SignatureDoesNotMatch", "the request signature we calculated does not match the signature you provided: check your secret access key and signing method")
	}
	return checkPayload(r, sr.payloadHash)
}

// checkPayload makes the body match a signed SHA-256: bodies up to
// bufferedBodyLimit are checked now, larger ones at their end (the upload
// then fails and stores nothing).
func checkPayload(r *http.Request, payloadHash string) *authError {
	switch {
	case payloadHash == unsignedPayload:
		return nil
	case strings.HasPrefix(payloadHash, "STREAMING-"):
		return &authError{status: http.StatusNotImplemented, code: "NotImplemented",
			message: "aws-chunked uploads (" + payloadHash + ") are not supported by the embedded server: sign the payload's SHA-256 or send UNSIGNED-PAYLOAD"}
	}
	want, err := hex.DecodeString(payloadHash)
	if err != nil || len(want) != sha256.Size {
		return badRequest("InvalidArgument", "x-amz-content-sha256 must be the hex SHA-256 of the body or UNSIGNED-PAYLOAD")
	}
	if r.Body == nil || r.Body == http.NoBody {
		if payloadHash != emptySHA256 {
			return badRequest("XAmzContentSHA256Mismatch", "the provided x-amz-content-sha256 header does not match what was computed")
		}
		return nil
	}
	if r.ContentLength >= 0 && r.ContentLength <= bufferedBodyLimit {
		b, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength+1))
		if err != nil {
			return badRequest("IncompleteBody", "read request body: %v", err)
		}
		r.Body.Close()
		got := sha256.Sum256(b)
		if !hmac.Equal(got[:], want) {
			return badRequest("XAmzContentSHA256Mismatch", "the provided x-amz-content-sha256 header does not match what was computed")
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		return nil
	}
	r.Body = &payloadVerifier{body: r.Body, h: sha256.New(), want: want}
	return nil
}

// payloadVerifier hashes a streamed body and fails at its end when the
// SHA-256 differs from the signed one. The error is an S3 error, so the
// client gets a 400, not a 500 it would retry.
type payloadVerifier struct {
	body io.ReadCloser
	h    hash.Hash
	want []byte
}

func (p *payloadVerifier) Read(b []byte) (int, error) {
	n, err := p.body.Read(b)
	p.h.Write(b[:n])
	if err == io.EOF && !hmac.Equal(p.h.Sum(nil), p.want) {
		return n, gofakes3.ErrorMessage(gofakes3.ErrBadDigest, "the body does not match the signed x-amz-content-sha256")
	}
	return n, err
}

func (p *payloadVerifier) Close() error { return p.body.Close() }

// canonicalRequest builds the SigV4 canonical request of r for the
// canonical path uri.
func canonicalRequest(r *http.Request, sr *signedRequest, uri string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(sr.query))
	b.WriteByte('\n')
	for _, name := range sr.signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(sr.signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(sr.payloadHash)
	return b.String()
}

// canonicalURIs returns the request path with each segment decoded and
// URI-encoded once (S3 does not encode twice and does not normalise the
// path) and, when it differs, the path exactly as sent.
func canonicalURIs(r *http.Request) []string {
	raw := r.URL.EscapedPath()
	if raw == "" {
		return []string{"/"}
	}
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		if d, err := url.PathUnescape(s); err == nil {
			s = d
		}
		segs[i] = uriEncode(s)
	}
	canonical := strings.Join(segs, "/")
	if canonical == raw {
		return []string{canonical}
	}
	return []string{canonical, raw}
}

// canonicalQuery encodes every name and value, sorted by name then value.
func canonicalQuery(q url.Values) string {
	type param struct{ k, v string }
	var ps []param
	for k, vs := range q {
		for _, v := range vs {
			ps = append(ps, param{uriEncode(k), uriEncode(v)})
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].k != ps[j].k {
			return ps[i].k < ps[j].k
		}
		return ps[i].v < ps[j].v
	})
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// canonicalHeaderValue joins a header's values with commas, each trimmed
// and with runs of spaces collapsed.
func canonicalHeaderValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	default:
		vals = r.Header.Values(name)
		if len(vals) == 0 && name == "content-length" && r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

// uriEncode percent-encodes every byte except A-Z a-z 0-9 - . _ ~ (upper-case hex).
func uriEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// signingKey derives the SigV4 key for a date and region.
func signingKey(secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(sigService))
	return hmacSHA256(k, []byte(sigTerminator))
}

// s3Error is the XML body of an S3 error response.
type s3Error struct {
	XMLName  xml.Name `xml:"Error"`
	Code     string   `xml:"Code"`
	Message  string   `xml:"Message"`
	Resource string   `xml:"Resource,omitempty"`
}

func writeError(w http.ResponseWriter, r *http.Request, e *authError) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	if r.Method == http.MethodHead {
		return
	}
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(s3Error{Code: e.code, Message: e.message, Resource: r.URL.Path})
}

// noCORSWriter drops every Access-Control-* header the wrapped handler sets
// (gofakes3 allows every origin).
type noCORSWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *noCORSWriter) strip() {
	if w.wrote {
		return
	}
	w.wrote = true
	h := w.ResponseWriter.Header()
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
}

func (w *noCORSWriter) WriteHeader(code int) {
	w.strip()
	w.ResponseWriter.WriteHeader(code)
}

func (w *noCORSWriter) Write(b []byte) (int, error) {
	w.strip()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *noCORSWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
