package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Sentinel errors. Every error returned by a Store that has one of these
// causes matches it with errors.Is; the underlying SDK error stays reachable
// with errors.As.
var (
	// ErrNotFound means the object (or checkpoint manifest, or latest
	// pointer) does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrBucketNotFound means the configured bucket does not exist.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrAccessDenied means the credentials were rejected or lack permission.
	ErrAccessDenied = errors.New("access denied")
	// ErrChecksumMismatch means downloaded content does not match the SHA-256
	// recorded when it was uploaded: the object is corrupt or was replaced
	// by a writer that did not update the checksum.
	ErrChecksumMismatch = errors.New("sha256 checksum mismatch")
	// ErrInvalidKey means a key or key component is malformed.
	ErrInvalidKey = errors.New("invalid key")
	// ErrIncomplete means a checkpoint is missing files its manifest lists.
	ErrIncomplete = errors.New("checkpoint incomplete")
	// ErrPreconditionFailed means a conditional write (PutBytesIf) lost:
	// the object exists although it should not, or its ETag changed.
	ErrPreconditionFailed = errors.New("precondition failed: the object changed")
)

// Error describes a failed store operation.
type Error struct {
	Op     string // operation, e.g. "get"
	Bucket string
	Key    string // key including the configured prefix
	// Kind is one of the sentinel errors above, or nil.
	Kind error
	// Err is the underlying cause.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	msg := fmt.Sprintf("s3 %s s3://%s/%s", e.Op, e.Bucket, e.Key)
	if e.Kind != nil {
		msg += ": " + e.Kind.Error()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause, so errors.Is and errors.As see both.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// classify maps an SDK error to one of the sentinels (nil if none applies).
// sdkChecksumMismatch is the fixed start of the message of the SDK's
// response checksum validation error
// (aws-sdk-go-v2/service/internal/checksum.validationError).
const sdkChecksumMismatch = "checksum did not match: algorithm"

func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	// The SDK checks a response against the checksum the server stored at
	// upload (CRC32 and the like; Versity's gateway and AWS S3 keep one) and
	// fails the read with an unexported error type whose message is fixed:
	// the content changed since upload, as a SHA-256 mismatch says.
	if strings.Contains(err.Error(), sdkChecksumMismatch) {
		return ErrChecksumMismatch
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NoSuchVersion", "NoSuchUpload":
			return ErrNotFound
		case "NoSuchBucket":
			return ErrBucketNotFound
		case "PreconditionFailed", "ConditionalRequestConflict":
			return ErrPreconditionFailed
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
			"AllAccessDisabled", "AccountProblem", "ExpiredToken", "InvalidToken":
			return ErrAccessDenied
		}
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		switch resp.HTTPStatusCode() {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusForbidden:
			return ErrAccessDenied
		case http.StatusPreconditionFailed:
			return ErrPreconditionFailed
		}
	}
	return nil
}
