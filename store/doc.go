// Package store is clozeloop's blob store: checkpoints, pools, labels and
// round artefacts in one S3 bucket, reached through aws-sdk-go-v2 whether
// the bucket lives on AWS S3, on another S3-compatible server (MinIO, Ceph,
// R2, …) or on the embedded server of package store/s3embed.
//
// # Configuration
//
// Config says where the bucket is. ConfigFromEnv reads:
//
//	CLOZELOOP_S3_ENDPOINT    endpoint URL; empty means AWS S3
//	CLOZELOOP_S3_BUCKET      bucket (required)
//	CLOZELOOP_S3_PREFIX      optional key prefix inside the bucket
//	CLOZELOOP_S3_REGION      signing region (default: AWS_REGION / shared
//	                         config; us-east-1 for a custom endpoint)
//	CLOZELOOP_S3_PATH_STYLE  true for path-style URLs (MinIO and most
//	                         S3-compatible servers)
//	CLOZELOOP_S3_ACCESS_KEY_ID, CLOZELOOP_S3_SECRET_ACCESS_KEY
//	                         static credentials (both or neither), e.g.
//	                         the embedded server's keys
//
// Credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared files, web identity,
// ECS and EC2 instance roles) unless Config carries static credentials.
// Secrets never reach logs.
//
// # Conditional writes
//
// PutBytesIf writes only if the object does not exist yet (If-None-Match: *)
// or still has a given ETag (If-Match), checked atomically by the server;
// a lost race fails with ErrPreconditionFailed. Pointers that several
// workflows move (a run's models/current.json) are written this way.
//
// # Transfers
//
// Uploads and downloads stream through the SDK's transfer manager
// (feature/s3/manager): objects larger than Config.PartSize (16 MiB) go up
// as parallel multipart uploads and come down as parallel ranged GETs. Every
// upload records the content's SHA-256 in the object metadata
// (x-amz-meta-sha256) and every download checks it, failing with
// ErrChecksumMismatch when they differ. Re-uploading identical content is
// skipped. Transient errors (throttling, 5xx, connection resets) are retried
// with exponential backoff and jitter (Config.MaxAttempts,
// Config.MaxBackoff); cancelling the context stops a transfer, aborting any
// multipart upload, and downloads only move a file into place after it is
// complete and verified. Failures match ErrNotFound, ErrBucketNotFound,
// ErrAccessDenied, ErrChecksumMismatch, ErrInvalidKey, ErrIncomplete,
// ErrPreconditionFailed or ErrConflict with errors.Is.
//
// # Layout
//
// All keys below are relative to Config.Prefix. The store builds the keys
// of published models (Model, ModelKeys); a run's keys are the workflows'
// (under its output prefix, default runs/<run-id>), listed here for
// orientation:
//
//	runs/<run-id>/rounds/<NNNN>/scores/…     the scoring shards' scores
//	runs/<run-id>/rounds/<NNNN>/train/…      the fine-tune's resumable checkpoints
//	runs/<run-id>/labels/round-<NNNN>.json   round files (labels, votes, agreement)
//	runs/<run-id>/labels/set-<NNNN>.json     the label set a round fine-tunes on
//	runs/<run-id>/models/round-<NNNN>/…      candidate models, MANIFEST.json last
//	runs/<run-id>/models/current.json        the run's current model (compare-and-swap)
//	models/<name>/<version>/…                published model versions
//	models/<name>/<version>/MANIFEST.json
//	models/<name>/latest                     pointer to the newest version
//
// Large data never travels in Temporal payloads: activities pass these keys
// (claim-check) and read or write the objects themselves.
//
// # Checkpoints
//
// A checkpoint is a folder (a Hugging Face model directory) stored under a
// prefix. UploadDir writes every file first and the manifest last; the
// manifest lists each file's path, size and SHA-256 and carries no
// timestamps, so its own SHA-256 identifies the content. A checkpoint
// without a manifest is incomplete and is reported as not found.
// PublishModel uploads a version and then writes models/<name>/latest;
// SetLatest refuses a version whose manifest is missing or whose files do
// not match it, so a reader of latest never sees half a checkpoint. Versions
// are immutable (ErrConflict).
//
// DownloadDir and DownloadLatest fetch a checkpoint into
// <cache>/<manifest-sha256>/, downloading into a temporary folder and
// renaming it when complete and verified; a worker that already holds that
// folder fetches only the manifest. Beside the folder,
// <manifest-sha256>.verified.json records each file's SHA-256 and identity
// (size, modification time, inode, status-change time) when it was
// hashed; a file whose identity changed since is hashed again before the
// folder is used, and a folder with a file that no longer matches its
// manifest is downloaded again (see cache.go for why not size alone, and
// why not a hash at every use).
package store
