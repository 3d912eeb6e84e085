// Package s3embed runs an S3-compatible server inside the process, storing
// objects as plain files in a local folder. It backs `clozeloop dev`, `clozeloop
// s3 serve` and the store tests, so development and tests use the same
// aws-sdk-go-v2 client code path as production.
//
// The server is github.com/johannesboyne/gofakes3 over a folder backend of
// our own (see below), behind a middleware of our own that requires every
// request to be signed with AWS Signature Version 4 and the server's key
// pair (WithCredentials; Server.Credentials). Anonymous requests, wrong keys,
// signatures older or newer than MaxClockSkew, expired presigned URLs and
// bodies that do not match their signed SHA-256 are refused with S3 XML
// errors (403 AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
// RequestTimeTooSkewed; 400 XAmzContentSHA256Mismatch). The server sends no
// CORS headers and refuses every OPTIONS (preflight) request, so no web page
// can use it. It only listens on loopback addresses.
//
// Conditional writes work as on S3: PUT with If-None-Match: * creates an
// object only if it does not exist, PUT with If-Match: ETAG replaces it only
// if its ETag is still ETAG; otherwise 412 PreconditionFailed. The check and
// the write happen under one lock.
//
// Folder layout under the data folder:
//
//	buckets/<bucket>/<key>          object content, byte for byte
//	meta/<bucket>/<key>.meta.json   size, MD5 (ETag) and user metadata
//	tmp/                            uploads in progress (cleared on start)
//
// Every upload is written to tmp/ and renamed into place when complete, so a
// reader never sees a partial object and a cancelled upload leaves nothing.
// Multipart uploads are assembled in memory by gofakes3 before the final
// write, so the largest object must fit in memory. Keys that cannot be
// represented as relative file paths (empty, "." or ".." segments, NUL or
// backslash) and a key that is also a "folder" of other keys are rejected
// with 400 InvalidArgument; every file path is checked to lie inside the
// bucket's folder, and a list prefix only ever matches keys inside it.
package s3embed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"

	"github.com/clozeloop/clozeloop/internal/listen"
)

const (
	// Region is the region clients should sign for (the server accepts
	// signatures for any region).
	Region = "us-east-1"
	// DefaultBucket is the bucket created when no WithBucket option is given.
	DefaultBucket = "clozeloop"
)

type options struct {
	bucket     string
	creds      *Credentials
	middleware func(http.Handler) http.Handler
	log        *slog.Logger
}

// Option configures Start.
type Option func(*options)

// WithBucket sets the bucket created at start (default DefaultBucket).
func WithBucket(name string) Option { return func(o *options) { o.bucket = name } }

// WithCredentials sets the key pair clients must sign with. Without it,
// Start generates a random pair (NewCredentials), kept only in memory; read
// it with Server.Credentials.
func WithCredentials(c Credentials) Option { return func(o *options) { o.creds = &c } }

// WithMiddleware wraps the server's handler (outside the authentication),
// e.g. to count or fail requests in tests.
func WithMiddleware(m func(http.Handler) http.Handler) Option {
	return func(o *options) { o.middleware = m }
}

// WithLogger sets the logger (default: discard). Request traces are logged
// at debug level.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Server is a running embedded S3 server.
type Server struct {
	dir    string
	bucket string
	creds  Credentials
	ln     net.Listener
	http   *http.Server
	log    *slog.Logger
	done   chan struct{}
	once   sync.Once
	err    error
}

// Start serves an S3-compatible API for the folder dir on addr, which must
// be a loopback address ("127.0.0.1:0" picks a free port; see Endpoint). It
// creates dir and the bucket if needed. The server runs until ctx is done or
// Close is called.
func Start(ctx context.Context, addr, dir string, opts ...Option) (*Server, error) {
	o := options{bucket: DefaultBucket}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	if err := gofakes3.ValidateBucketName(o.bucket); err != nil {
		return nil, fmt.Errorf("s3embed: bucket %q: %w", o.bucket, err)
	}
	if dir == "" {
		return nil, errors.New("s3embed: data folder is required")
	}
	var creds Credentials
	if o.creds != nil {
		creds = *o.creds
	} else {
		c, err := NewCredentials()
		if err != nil {
			return nil, err
		}
		creds = c
	}
	if err := creds.Validate(); err != nil {
		return nil, fmt.Errorf("s3embed: credentials: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("s3embed: data folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("s3embed: create data folder: %w", err)
	}
	backend, err := newFolderBackend(abs)
	if err != nil {
		return nil, err
	}
	if err := backend.CreateBucket(o.bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		return nil, fmt.Errorf("s3embed: create bucket %s: %w", o.bucket, err)
	}
	faker := gofakes3.New(backend,
		gofakes3.WithLogger(slogAdapter{o.log}),
		gofakes3.WithIntegrityCheck(true),
	)
	auth := &authenticator{creds: creds, now: time.Now, log: o.log}
	h := auth.wrap(faker.Server())
	if o.middleware != nil {
		h = o.middleware(h)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3embed: listen on %s: %w", addr, err)
	}
	s := &Server{
		dir:    abs,
		bucket: o.bucket,
		creds:  creds,
		ln:     ln,
		http:   &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second},
		log:    o.log,
		done:   make(chan struct{}),
	}
	go func() {
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.finish(err)
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	o.log.Info("embedded s3 server started", "endpoint", s.Endpoint(), "bucket", s.bucket, "dir", abs, "access_key_id", creds.AccessKeyID)
	return s, nil
}

func (s *Server) finish(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

func checkLoopback(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("s3embed: listen address %q: %w", addr, err)
	}
	if !listen.Loopback(addr) {
		return fmt.Errorf("s3embed: listen address %q is not loopback: the embedded server is for one machine (no TLS)", addr)
	}
	return nil
}

// Endpoint returns the server's base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Endpoint() string { return "http://" + s.ln.Addr().String() }

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Credentials returns the key pair clients must sign requests with.
func (s *Server) Credentials() Credentials { return s.creds }

// Bucket returns the bucket created at start.
func (s *Server) Bucket() string { return s.bucket }

// Dir returns the absolute data folder.
func (s *Server) Dir() string { return s.dir }

// ObjectPath returns the file holding key's content in bucket (for
// inspection and tests).
func (s *Server) ObjectPath(bucket, key string) string {
	return filepath.Join(s.dir, "buckets", bucket, filepath.FromSlash(key))
}

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server, waiting up to 5 seconds for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// A request still running after the grace period (a client that
		// stalled mid-upload, say) is cut off: the server stops either way,
		// and the client sees a broken connection, not lost data.
		s.log.Warn("embedded s3 server: requests still running after 5 s were cut off", "endpoint", s.Endpoint())
		err = s.http.Close()
	} else if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	s.finish(nil)
	<-s.done
	if err != nil {
		return fmt.Errorf("s3embed: close: %w", err)
	}
	s.log.Info("embedded s3 server stopped", "endpoint", s.Endpoint())
	return s.err
}

// slogAdapter sends gofakes3 logs to slog; request traces go to debug.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Print(level gofakes3.LogLevel, v ...any) {
	msg := fmt.Sprint(v...)
	switch level {
	case gofakes3.LogErr:
		a.log.Error("s3embed", "msg", msg)
	case gofakes3.LogWarn:
		a.log.Warn("s3embed", "msg", msg)
	default:
		a.log.Debug("s3embed", "msg", msg)
	}
}
