package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"mime"
	"net/http"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrPreconditionFailed means a conditional write lost a race: the object
// changed (or appeared) since the caller read it. Read it again and retry.
var ErrPreconditionFailed = errors.New("precondition failed: the object changed since it was read")

// PutBytesIfMatch writes a small object only if it is still the version the
// caller read: etag is the ETag returned by GetBytes or Head (sent as
// If-Match), or "" to create the object only if it does not exist yet (sent
// as If-None-Match: *). A lost race returns an error wrapping
// ErrPreconditionFailed and writes nothing. AWS S3, MinIO, Cloudflare R2 and
// the embedded s3embed server evaluate these headers atomically; a server
// that ignores them makes this a plain write. The returned ETag is the new
// version's.
func (s *Store) PutBytesIfMatch(ctx context.Context, key string, b []byte, etag string) (string, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return "", &Error{Op: "conditional put", Bucket: s.cfg.Bucket, Key: key, Kind: ErrInvalidKey, Err: err}
	}
	sum := sha256.Sum256(b)
	in := &s3.PutObjectInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(full),
		Body:     bytes.NewReader(b),
		Metadata: map[string]string{MetaSHA256: hex.EncodeToString(sum[:])},
	}
	if ct := mime.TypeByExtension(path.Ext(key)); ct != "" {
		in.ContentType = aws.String(ct)
	}
	if etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		if preconditionFailed(err) {
			return "", &Error{Op: "conditional put", Bucket: s.cfg.Bucket, Key: full, Kind: ErrPreconditionFailed, Err: err}
		}
		return "", s.fail(ctx, "conditional put", full, err)
	}
	return aws.ToString(out.ETag), nil
}

// preconditionFailed recognises the 412 (and the 409 that S3 answers to two
// concurrent conditional writes) of a conditional PUT.
func preconditionFailed(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		return resp.HTTPStatusCode() == http.StatusPreconditionFailed
	}
	return false
}
