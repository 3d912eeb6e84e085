package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
)

// MetaSHA256 is the user-metadata key (header x-amz-meta-sha256) under which
// every upload records the hex SHA-256 of its content.
const MetaSHA256 = "sha256"

// Store is a blob store in one S3 bucket (AWS S3, an S3-compatible server or
// the embedded s3embed server), with every key under Config.Prefix. It is
// safe for concurrent use.
type Store struct {
	cfg    Config
	client *s3.Client
	up     *manager.Uploader
	down   *manager.Downloader
	log    *slog.Logger
}

// ObjectInfo describes a stored object. Keys are relative to Config.Prefix.
type ObjectInfo struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	LastModified time.Time `json:"last_modified,omitzero"`
}

// PutResult reports one upload.
type PutResult struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Skipped is true when an identical object (same size and SHA-256) was
	// already stored, so nothing was sent.
	Skipped bool `json:"skipped"`
}

// Open returns a Store for cfg. It loads credentials through the SDK's
// default chain unless cfg carries static credentials; it does not contact
// the server (use CheckBucket for that). log may be nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sdkLog := log
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			sdkLog.Debug("aws sdk: "+fmt.Sprintf(format, v...), "class", string(c))
		})),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config for %s: %w", cfg, err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("open %s: no region: set %s or AWS_REGION", cfg, EnvRegion)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		if cfg.HTTPClient != nil {
			// Set here rather than in LoadDefaultConfig, which refuses a
			// plain *http.Client when AWS_CA_BUNDLE is set.
			o.HTTPClient = cfg.HTTPClient
		}
	})
	s := &Store{cfg: cfg, client: client, log: log}
	s.up = manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.Concurrency
	})
	s.down = manager.NewDownloader(client, func(d *manager.Downloader) {
		d.PartSize = cfg.PartSize
		d.Concurrency = cfg.Concurrency
	})
	log.Debug("store opened", "store", cfg)
	return s, nil
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// Client returns the underlying S3 client, for operations Store lacks.
func (s *Store) Client() *s3.Client { return s.client }

// fullKey validates key and prepends the configured prefix.
func (s *Store) fullKey(key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", err
	}
	if s.cfg.Prefix == "" {
		return key, nil
	}
	return s.cfg.Prefix + "/" + key, nil
}

// relKey strips the configured prefix from a full key.
func (s *Store) relKey(full string) string {
	if s.cfg.Prefix == "" {
		return full
	}
	return strings.TrimPrefix(full, s.cfg.Prefix+"/")
}

// fail wraps err from operation op on key, attaching its sentinel and making
// sure a context error stays visible to errors.Is.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	return &Error{Op: op, Bucket: s.cfg.Bucket, Key: key, Kind: classify(err), Err: err}
}

// CheckBucket verifies that the bucket exists and is reachable with the
// configured credentials.
func (s *Store) CheckBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		e := s.fail(ctx, "head-bucket", "", err)
		if errors.Is(e, ErrNotFound) {
			e.(*Error).Kind = ErrBucketNotFound
		}
		return e
	}
	return nil
}

// notFoundKind tells a missing key from a missing bucket after a bodiless
// 404 (HEAD responses carry no error code).
func (s *Store) notFoundKind(ctx context.Context, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if berr := s.CheckBucket(ctx); errors.Is(berr, ErrBucketNotFound) {
		err.(*Error).Kind = ErrBucketNotFound
	}
	return err
}

// Head returns the object's size, checksum and modification time.
func (s *Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	return s.head(ctx, key, true)
}

// head is Head; with refine false a 404 is not checked against the bucket.
func (s *Store) head(ctx context.Context, key string, refine bool) (ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return ObjectInfo{}, &Error{Op: "head", Bucket: s.cfg.Bucket, Key: key, Kind: ErrInvalidKey, Err: err}
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(full)})
	if err != nil {
		err = s.fail(ctx, "head", full, err)
		if refine {
			err = s.notFoundKind(ctx, err)
		}
		return ObjectInfo{}, err
	}
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		SHA256:       metaSHA(out.Metadata),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

func metaSHA(m map[string]string) string {
	for k, v := range m {
		if strings.EqualFold(k, MetaSHA256) {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}

// PutBytes stores b under key.
func (s *Store) PutBytes(ctx context.Context, key string, b []byte) (PutResult, error) {
	sum := sha256.Sum256(b)
	return s.putSeekable(ctx, key, bytes.NewReader(b), int64(len(b)), hex.EncodeToString(sum[:]))
}

// PutFile streams the file at localPath to key, in parts when it is larger
// than Config.PartSize. An identical object already at key is not re-sent.
func (s *Store) PutFile(ctx context.Context, key, localPath string) (PutResult, error) {
	f, err := os.Open(localPath)
	if err != nil {
		return PutResult{}, fmt.Errorf("upload %s: %w", localPath, err)
	}
	defer f.Close()
	size, sum, err := hashSeeker(ctx, f)
	if err != nil {
		return PutResult{}, fmt.Errorf("upload %s: hash: %w", localPath, err)
	}
	return s.putSeekable(ctx, key, f, size, sum)
}

// Put streams r to key. A reader that is not an io.ReadSeeker is first
// spooled to a temporary file in Config.TempDir, because the SHA-256 must be
// known before the upload starts and retries need a rewindable body.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (PutResult, error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return PutResult{}, fmt.Errorf("upload %s: seek: %w", key, err)
		}
		size, sum, err := hashSeeker(ctx, rs)
		if err != nil {
			return PutResult{}, fmt.Errorf("upload %s: hash: %w", key, err)
		}
		if start != 0 {
			// The transfer manager assumes seekable bodies start at offset
			// 0; hide Seek so it buffers parts instead.
			return s.putSeekable(ctx, key, io.LimitReader(rs, size), size, sum)
		}
		return s.putSeekable(ctx, key, rs, size, sum)
	}
	tmp, err := os.CreateTemp(s.cfg.TempDir, "clozeloop-upload-*")
	if err != nil {
		return PutResult{}, fmt.Errorf("upload %s: spool file: %w", key, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx: ctx, r: r})
	if err != nil {
		return PutResult{}, s.fail(ctx, "put", key, fmt.Errorf("spool upload: %w", err))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return PutResult{}, fmt.Errorf("upload %s: rewind spool: %w", key, err)
	}
	return s.putSeekable(ctx, key, tmp, size, hex.EncodeToString(h.Sum(nil)))
}

// hashSeeker hashes rs from its current position to EOF and seeks back.
func hashSeeker(ctx context.Context, rs io.ReadSeeker) (int64, string, error) {
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx: ctx, r: rs})
	if err != nil {
		return 0, "", err
	}
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) putSeekable(ctx context.Context, key string, body io.Reader, size int64, sum string) (PutResult, error) {
	res := PutResult{Key: key, Size: size, SHA256: sum}
	full, err := s.fullKey(key)
	if err != nil {
		return res, &Error{Op: "put", Bucket: s.cfg.Bucket, Key: key, Kind: ErrInvalidKey, Err: err}
	}
	info, err := s.head(ctx, key, false)
	switch {
	case err == nil && info.Size == size && info.SHA256 == sum:
		res.Skipped = true
		s.log.Debug("upload skipped: identical object exists", "key", full, "size", size)
		return res, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return res, err
	}
	in := &s3.PutObjectInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(full),
		Body:     body,
		Metadata: map[string]string{MetaSHA256: sum},
	}
	if ct := mime.TypeByExtension(path.Ext(key)); ct != "" {
		in.ContentType = aws.String(ct)
	}
	start := time.Now()
	if _, err := s.up.Upload(ctx, in); err != nil {
		return res, s.fail(ctx, "put", full, err)
	}
	s.log.Debug("uploaded", "key", full, "size", size, "sha256", sum, "elapsed", time.Since(start))
	return res, nil
}

// Condition makes a write conditional, as S3's conditional writes do.
type Condition struct {
	// IfMatch, when set, is the ETag the object must still have (from
	// Head, Get or a List).
	IfMatch string
	// IfNoneMatch, when true, makes the write create the object only if no
	// object exists under the key.
	IfNoneMatch bool
}

// PutBytesIf stores b under key only if cond holds at the moment of the
// write; the server checks and writes atomically (S3 conditional writes,
// which the embedded server implements too). A failed condition gives an
// error wrapping ErrPreconditionFailed, also when IfMatch names an object
// that no longer exists (AWS S3 answers that with 404 NoSuchKey, the
// embedded server with 412). It returns the new ETag. Unlike PutBytes it always
// writes, even identical content, so that the ETag check happens.
func (s *Store) PutBytesIf(ctx context.Context, key string, b []byte, cond Condition) (string, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return "", &Error{Op: "put", Bucket: s.cfg.Bucket, Key: key, Kind: ErrInvalidKey, Err: err}
	}
	if cond.IfMatch == "" && !cond.IfNoneMatch {
		return "", &Error{Op: "put", Bucket: s.cfg.Bucket, Key: full, Err: errors.New("conditional put without a condition")}
	}
	sum := sha256.Sum256(b)
	in := &s3.PutObjectInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(full),
		Body:     bytes.NewReader(b),
		Metadata: map[string]string{MetaSHA256: hex.EncodeToString(sum[:])},
	}
	if cond.IfMatch != "" {
		in.IfMatch = aws.String(cond.IfMatch)
	}
	if cond.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if ct := mime.TypeByExtension(path.Ext(key)); ct != "" {
		in.ContentType = aws.String(ct)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		e := s.fail(ctx, "put", full, err)
		// If-Match on an object that is gone: AWS S3 (and e.g. Versity's
		// gateway) answer 404 NoSuchKey, others 412. Either way the
		// condition failed.
		if cond.IfMatch != "" && errors.Is(e, ErrNotFound) {
			e.(*Error).Kind = ErrPreconditionFailed
		}
		return "", e
	}
	s.log.Debug("conditional put", "key", full, "size", len(b), "if_match", cond.IfMatch, "if_none_match", cond.IfNoneMatch)
	return aws.ToString(out.ETag), nil
}

// Get opens key for streaming. The reader verifies the content against the
// object's recorded SHA-256 and returns an error wrapping ErrChecksumMismatch
// at end of stream if they differ; callers must read to io.EOF to get that
// guarantee, and must close the reader. Objects written by other tools (no
// sha256 metadata) are returned unverified.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return nil, ObjectInfo{}, &Error{Op: "get", Bucket: s.cfg.Bucket, Key: key, Kind: ErrInvalidKey, Err: err}
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(full)})
	if err != nil {
		return nil, ObjectInfo{}, s.fail(ctx, "get", full, err)
	}
	info := ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		SHA256:       metaSHA(out.Metadata),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
	}
	return &verifyReader{s: s, ctx: ctx, full: full, body: out.Body, want: info.SHA256, h: sha256.New()}, info, nil
}

// verifyReader hashes what it reads and checks the sum at EOF.
type verifyReader struct {
	s    *Store
	ctx  context.Context
	full string
	body io.ReadCloser
	want string
	h    hash.Hash
	err  error
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.body.Read(p)
	v.h.Write(p[:n])
	switch {
	case err == io.EOF:
		if got := hex.EncodeToString(v.h.Sum(nil)); v.want != "" && got != v.want {
			v.err = &Error{Op: "get", Bucket: v.s.cfg.Bucket, Key: v.full, Kind: ErrChecksumMismatch,
				Err: fmt.Errorf("content sha256 %s, recorded %s", got, v.want)}
			return n, v.err
		}
	case err != nil:
		v.err = v.s.fail(v.ctx, "get", v.full, err)
		return n, v.err
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.body.Close() }

// GetBytes reads a whole (small) object into memory, verifying its checksum.
func (s *Store) GetBytes(ctx context.Context, key string) ([]byte, ObjectInfo, error) {
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, info, err
	}
	return b, info, nil
}

// GetFile downloads key to localPath with parallel ranged GETs, verifies the
// content's SHA-256 against the recorded one and only then moves it into
// place: on any failure localPath is left untouched.
func (s *Store) GetFile(ctx context.Context, key, localPath string) (ObjectInfo, error) {
	info, err := s.Head(ctx, key)
	if err != nil {
		return info, err
	}
	full, _ := s.fullKey(key)
	dir := filepath.Dir(localPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return info, fmt.Errorf("download %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(localPath)+".part-*")
	if err != nil {
		return info, fmt.Errorf("download %s: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(full)}
	if info.ETag != "" {
		in.IfMatch = aws.String(info.ETag)
	}
	start := time.Now()
	n, err := s.down.Download(ctx, tmp, in)
	if err != nil {
		return info, s.fail(ctx, "get", full, err)
	}
	if n != info.Size {
		return info, &Error{Op: "get", Bucket: s.cfg.Bucket, Key: full, Err: fmt.Errorf("got %d bytes, object has %d", n, info.Size)}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return info, fmt.Errorf("download %s: %w", key, err)
	}
	_, got, err := hashSeeker(ctx, tmp)
	if err != nil {
		return info, s.fail(ctx, "get", full, fmt.Errorf("hash download: %w", err))
	}
	if info.SHA256 != "" && got != info.SHA256 {
		return info, &Error{Op: "get", Bucket: s.cfg.Bucket, Key: full, Kind: ErrChecksumMismatch,
			Err: fmt.Errorf("content sha256 %s, recorded %s", got, info.SHA256)}
	}
	if info.SHA256 == "" {
		info.SHA256 = got
	}
	if err := tmp.Sync(); err != nil {
		return info, fmt.Errorf("download %s: sync: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return info, fmt.Errorf("download %s: close: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), localPath); err != nil {
		return info, fmt.Errorf("download %s: %w", key, err)
	}
	done = true
	s.log.Debug("downloaded", "key", full, "size", n, "elapsed", time.Since(start))
	return info, nil
}

// List returns the objects whose keys start with prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	full := s.cfg.Prefix
	if prefix != "" {
		if full != "" {
			full += "/"
		}
		full += prefix
	} else if full != "" {
		full += "/"
	}
	var out []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(full)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail(ctx, "list", full, err)
		}
		for _, o := range page.Contents {
			out = append(out, ObjectInfo{
				Key:          s.relKey(aws.ToString(o.Key)),
				Size:         aws.ToInt64(o.Size),
				ETag:         aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
	}
	return out, nil
}

// Delete removes key. Deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	full, err := s.fullKey(key)
	if err != nil {
		return &Error{Op: "delete", Bucket: s.cfg.Bucket, Key: key, Kind: ErrInvalidKey, Err: err}
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(full)}); err != nil {
		return s.fail(ctx, "delete", full, err)
	}
	return nil
}
