package store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment variables read by ConfigFromEnv.
const (
	// EnvEndpoint is the S3 endpoint URL; empty means AWS S3.
	EnvEndpoint = "CLOZELOOP_S3_ENDPOINT"
	// EnvBucket is the bucket that holds all clozeloop data.
	EnvBucket = "CLOZELOOP_S3_BUCKET"
	// EnvPrefix is an optional key prefix inside the bucket.
	EnvPrefix = "CLOZELOOP_S3_PREFIX"
	// EnvRegion is the signing region (falls back to AWS_REGION, then us-east-1 for custom endpoints).
	EnvRegion = "CLOZELOOP_S3_REGION"
	// EnvPathStyle selects path-style addressing (true/false); MinIO and most
	// S3-compatible servers need true.
	EnvPathStyle = "CLOZELOOP_S3_PATH_STYLE"
	// EnvAccessKeyID and EnvSecretAccessKey, when both set, are static
	// credentials that replace the AWS SDK's default chain (e.g. the keys
	// `clozeloop dev` or `clozeloop s3 serve` print for the embedded server).
	EnvAccessKeyID     = "CLOZELOOP_S3_ACCESS_KEY_ID"
	EnvSecretAccessKey = "CLOZELOOP_S3_SECRET_ACCESS_KEY"
)

// Defaults for the transfer settings of Config.
const (
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 4
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 20 * time.Second
	minPartSize        = 5 << 20
	defaultCustomRgn   = "us-east-1"
)

// Config says where the blob store lives and how to talk to it.
//
// Credentials come from the AWS SDK's default chain (environment variables
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, the shared config
// and credentials files with AWS_PROFILE, web identity, ECS task roles and EC2
// instance roles) unless AccessKeyID and SecretAccessKey are both set, which
// selects static credentials (CLOZELOOP_S3_ACCESS_KEY_ID and
// CLOZELOOP_S3_SECRET_ACCESS_KEY; used for the embedded server). Secrets are never
// logged: String redacts them.
type Config struct {
	// Endpoint is the base URL of an S3-compatible server, e.g.
	// "http://127.0.0.1:9000". Empty means AWS S3 itself.
	Endpoint string
	// Region is the signing region. Empty means the SDK's default chain
	// (AWS_REGION, shared config), or us-east-1 when Endpoint is set.
	Region string
	// Bucket holds all clozeloop data. Required.
	Bucket string
	// Prefix is prepended (with a "/") to every key, so several deployments
	// can share one bucket. Leading and trailing slashes are ignored.
	Prefix string
	// PathStyle selects path-style URLs (http://host/bucket/key) instead of
	// virtual-hosted ones (http://bucket.host/key).
	PathStyle bool

	// AccessKeyID and SecretAccessKey, when both set, replace the default
	// credential chain with static credentials.
	AccessKeyID     string `json:"-"`
	SecretAccessKey string `json:"-"`

	// PartSize is the multipart part size in bytes (default DefaultPartSize,
	// at least 5 MiB). Objects larger than one part are uploaded in parts.
	PartSize int64
	// Concurrency is the number of parts transferred in parallel (default
	// DefaultConcurrency).
	Concurrency int
	// MaxAttempts is the number of attempts per request, including the first,
	// for transient errors (default DefaultMaxAttempts).
	MaxAttempts int
	// MaxBackoff caps the exponential backoff between attempts (default
	// DefaultMaxBackoff).
	MaxBackoff time.Duration
	// TempDir holds spool files for uploads from non-seekable readers (default
	// os.TempDir()).
	TempDir string
	// HTTPClient, if set, replaces the SDK's HTTP client (custom TLS, proxies,
	// instrumentation).
	HTTPClient *http.Client `json:"-"`
}

// ConfigFromEnv returns a Config filled from the CLOZELOOP_S3_* environment
// variables. Fields not set there stay zero.
func ConfigFromEnv() (Config, error) {
	return configFromLookup(os.LookupEnv)
}

func configFromLookup(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	c.Endpoint = get(EnvEndpoint)
	c.Bucket = get(EnvBucket)
	c.Prefix = get(EnvPrefix)
	c.Region = get(EnvRegion)
	c.AccessKeyID = get(EnvAccessKeyID)
	c.SecretAccessKey = get(EnvSecretAccessKey)
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return Config{}, fmt.Errorf("set both %s and %s, or neither", EnvAccessKeyID, EnvSecretAccessKey)
	}
	if v := get(EnvPathStyle); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("parse %s=%q: want true or false: %w", EnvPathStyle, v, err)
		}
		c.PathStyle = b
	}
	return c, nil
}

// withDefaults returns c with zero transfer settings replaced by defaults.
func (c Config) withDefaults() Config {
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Region == "" && c.Endpoint != "" {
		c.Region = defaultCustomRgn
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	return c
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, fmt.Errorf("bucket is required (set %s or --bucket)", EnvBucket))
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("endpoint %q: %w", c.Endpoint, err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("endpoint %q: scheme must be http or https", c.Endpoint))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("endpoint %q: missing host", c.Endpoint))
		}
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		if err := validateKey(p); err != nil {
			errs = append(errs, fmt.Errorf("prefix: %w", err))
		}
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("static credentials need both an access key id and a secret access key"))
	}
	if c.PartSize != 0 && c.PartSize < minPartSize {
		errs = append(errs, fmt.Errorf("part size %d is below the S3 minimum of %d bytes", c.PartSize, minPartSize))
	}
	if c.Concurrency < 0 || c.MaxAttempts < 0 || c.MaxBackoff < 0 {
		errs = append(errs, errors.New("concurrency, max attempts and max backoff must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid store config: %w", err)
	}
	return nil
}

// String describes c for logs, without secrets.
func (c Config) String() string {
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "aws"
	}
	creds := "default-chain"
	if c.AccessKeyID != "" {
		creds = "static"
	}
	return fmt.Sprintf("s3(endpoint=%s region=%s bucket=%s prefix=%q path_style=%t credentials=%s)",
		endpoint, c.Region, c.Bucket, c.Prefix, c.PathStyle, creds)
}

// LogValue makes slog print c through String, so secrets never reach logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
