package s3embed_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/clozeloop/clozeloop/store/s3embed"
)

// start runs a server in a fresh folder (dir/s3, so a test can put files
// next to it) and returns it with a signed SDK client.
func start(t *testing.T, dir string) (*s3embed.Server, *s3.Client) {
	t.Helper()
	srv, err := s3embed.Start(context.Background(), "127.0.0.1:0", filepath.Join(dir, "s3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, client(srv)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signed builds a request to srv signed with creds at when, with the given
// payload hash header ("" means the body's SHA-256).
func signed(t *testing.T, srv *s3embed.Server, creds s3embed.Credentials, method, path string, body []byte, payloadHash string, when time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, srv.Endpoint()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if payloadHash == "" {
		payloadHash = sha(body)
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	err = signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
		req, payloadHash, "s3", s3embed.Region, when)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

type response struct {
	status int
	code   string
	header http.Header
	body   []byte
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Code string }
	xml.Unmarshal(b, &e)
	return response{status: resp.StatusCode, code: e.Code, header: resp.Header, body: b}
}

func apiCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestSignedRequestsAreServed(t *testing.T) {
	ctx := context.Background()
	srv, c := start(t, t.TempDir())
	creds := srv.Credentials()
	bucket := aws.String(srv.Bucket())
	now := time.Now()
	big := bytes.Repeat([]byte("0123456789abcdef"), 90_000) // over 1 MiB: checked while streaming

	tests := []struct {
		name, key   string
		body        []byte
		payloadHash string
	}{
		{"signed payload hash", "a/signed.txt", []byte("signed body"), ""},
		{"unsigned payload", "a/unsigned.txt", []byte("unsigned body"), "UNSIGNED-PAYLOAD"},
		{"large signed payload", "a/big.bin", big, ""},
		{"key with spaces and unicode", "a/with space/é+x.txt", []byte("odd key"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/" + srv.Bucket() + "/" + (&url.URL{Path: tc.key}).EscapedPath()
			if r := do(t, signed(t, srv, creds, http.MethodPut, path, tc.body, tc.payloadHash, now)); r.status != http.StatusOK {
				t.Fatalf("PUT: %d %s %s", r.status, r.code, r.body)
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(tc.key)})
			if err != nil {
				t.Fatalf("GetObject: %v", err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, tc.body) {
				t.Fatalf("read back %d bytes, want %d", len(got), len(tc.body))
			}
		})
	}

	// Presigned URLs (query-string authentication) for GET and PUT.
	pc := s3.NewPresignClient(c)
	put, err := pc.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("p/presigned.txt")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(put.Method, put.URL, strings.NewReader("via presigned url"))
	if r := do(t, req); r.status != http.StatusOK {
		t.Fatalf("presigned PUT: %d %s %s", r.status, r.code, r.body)
	}
	get, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("p/presigned.txt")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(get.Method, get.URL, nil)
	if r := do(t, req); r.status != http.StatusOK || string(r.body) != "via presigned url" {
		t.Fatalf("presigned GET: %d %q", r.status, r.body)
	}
}

func TestUnauthenticatedRequestsAreRefused(t *testing.T) {
	ctx := context.Background()
	srv, c := start(t, t.TempDir())
	creds := srv.Credentials()
	bucket := srv.Bucket()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k/obj"), Body: strings.NewReader("content")}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	wrongSecret := creds
	wrongSecret.SecretAccessKey = "not-the-secret-at-all"
	unknownKey := creds
	unknownKey.AccessKeyID = "SOMEONEELSE"
	big := bytes.Repeat([]byte("x"), 2<<20)

	presign := func(t *testing.T, key string, when time.Time, expires time.Duration) string {
		req, _ := http.NewRequest(http.MethodGet, srv.Endpoint()+"/"+bucket+"/"+key, nil)
		q := req.URL.Query()
		q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
		req.URL.RawQuery = q.Encode()
		u, _, err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).PresignHTTP(ctx,
			aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}, req, "UNSIGNED-PAYLOAD", "s3", s3embed.Region, when)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	tests := []struct {
		name       string
		req        func(t *testing.T) *http.Request
		wantStatus int
		wantCode   string
		// stored is the key that must not exist afterwards ("" for none).
		stored string
	}{
		{"anonymous GET", func(t *testing.T) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.Endpoint()+"/"+bucket+"/k/obj", nil)
			return r
		}, 403, "AccessDenied", ""},
		{"anonymous list", func(t *testing.T) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.Endpoint()+"/"+bucket+"?list-type=2", nil)
			return r
		}, 403, "AccessDenied", ""},
		{"browser-like cross-origin PUT without credentials", func(t *testing.T) *http.Request {
			r, _ := http.NewRequest(http.MethodPut, srv.Endpoint()+"/"+bucket+"/k/evil", strings.NewReader("evil"))
			r.Header.Set("Origin", "https://evil.example")
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 403, "AccessDenied", "k/evil"},
		{"anonymous DELETE", func(t *testing.T) *http.Request {
			r, _ := http.NewRequest(http.MethodDelete, srv.Endpoint()+"/"+bucket+"/k/obj", nil)
			return r
		}, 403, "AccessDenied", ""},
		{"wrong secret", func(t *testing.T) *http.Request {
			return signed(t, srv, wrongSecret, http.MethodPut, "/"+bucket+"/k/wrong", []byte("x"), "", now)
		}, 403, "SignatureDoesNotMatch", "k/wrong"},
		{"unknown access key", func(t *testing.T) *http.Request {
			return signed(t, srv, unknownKey, http.MethodGet, "/"+bucket+"/k/obj", nil, "", now)
		}, 403, "InvalidAccessKeyId", ""},
		{"signed 20 minutes ago", func(t *testing.T) *http.Request {
			return signed(t, srv, creds, http.MethodGet, "/"+bucket+"/k/obj", nil, "", now.Add(-20*time.Minute))
		}, 403, "RequestTimeTooSkewed", ""},
		{"signed 20 minutes ahead", func(t *testing.T) *http.Request {
			return signed(t, srv, creds, http.MethodGet, "/"+bucket+"/k/obj", nil, "", now.Add(20*time.Minute))
		}, 403, "RequestTimeTooSkewed", ""},
		{"unsigned metadata header added after signing", func(t *testing.T) *http.Request {
			r := signed(t, srv, creds, http.MethodPut, "/"+bucket+"/k/meta", []byte("x"), "", now)
			r.Header.Set("X-Amz-Meta-Injected", "1")
			return r
		}, 403, "AccessDenied", "k/meta"},
		{"key changed after signing", func(t *testing.T) *http.Request {
			r := signed(t, srv, creds, http.MethodPut, "/"+bucket+"/k/a", []byte("x"), "", now)
			r.URL.Path = "/" + bucket + "/k/b"
			return r
		}, 403, "SignatureDoesNotMatch", "k/b"},
		{"body differs from signed hash", func(t *testing.T) *http.Request {
			r := signed(t, srv, creds, http.MethodPut, "/"+bucket+"/k/tampered", []byte("original"), "", now)
			r.Body = io.NopCloser(strings.NewReader("tampered"))
			return r
		}, 400, "XAmzContentSHA256Mismatch", "k/tampered"},
		{"large body differs from signed hash", func(t *testing.T) *http.Request {
			return signed(t, srv, creds, http.MethodPut, "/"+bucket+"/k/big", big, sha([]byte("something else")), now)
		}, 400, "BadDigest", "k/big"},
		{"signature version 2", func(t *testing.T) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.Endpoint()+"/"+bucket+"/k/obj", nil)
			r.Header.Set("Authorization", "AWS "+creds.AccessKeyID+":c2lnbmF0dXJl")
			return r
		}, 403, "AccessDenied", ""},
		{"aws-chunked upload", func(t *testing.T) *http.Request {
			return signed(t, srv, creds, http.MethodPut, "/"+bucket+"/k/chunked", []byte("x"), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now)
		}, 501, "NotImplemented", "k/chunked"},
		{"expired presigned URL", func(t *testing.T) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, presign(t, "k/obj", now.Add(-10*time.Minute), 5*time.Minute), nil)
			return r
		}, 403, "AccessDenied", ""},
		{"presigned URL for another key", func(t *testing.T) *http.Request {
			u := presign(t, "k/obj", now, 5*time.Minute)
			r, _ := http.NewRequest(http.MethodGet, strings.Replace(u, "/k/obj", "/k/other", 1), nil)
			return r
		}, 403, "SignatureDoesNotMatch", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.req(t))
			if r.status != tc.wantStatus || r.code != tc.wantCode {
				t.Fatalf("got %d %q (%s), want %d %s", r.status, r.code, r.body, tc.wantStatus, tc.wantCode)
			}
			for k := range r.header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("refusal carries CORS header %s", k)
				}
			}
			if tc.stored != "" {
				_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(tc.stored)})
				if apiCode(err) != "NotFound" {
					t.Fatalf("object %s exists after the refused request (HeadObject: %v)", tc.stored, err)
				}
			}
		})
	}
	// The object is intact after the refused DELETE.
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("k/obj")}); err != nil {
		t.Fatalf("object gone after refused requests: %v", err)
	}
}

func TestNoCORS(t *testing.T) {
	srv, _ := start(t, t.TempDir())
	creds := srv.Credentials()
	preflight := func(method string) *http.Request {
		r, _ := http.NewRequest(http.MethodOptions, srv.Endpoint()+"/"+srv.Bucket()+"/k", nil)
		r.Header.Set("Origin", "https://evil.example")
		r.Header.Set("Access-Control-Request-Method", method)
		r.Header.Set("Access-Control-Request-Headers", "content-type")
		return r
	}
	tests := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"preflight for PUT", preflight(http.MethodPut), 403},
		{"preflight for DELETE", preflight(http.MethodDelete), 403},
		{"preflight for GET", preflight(http.MethodGet), 403},
		{"signed GET with an Origin", func() *http.Request {
			r := signed(t, srv, creds, http.MethodGet, "/"+srv.Bucket()+"?list-type=2", nil, "", time.Now())
			r.Header.Set("Origin", "https://evil.example")
			return r
		}(), 200},
		{"signed PUT with an Origin (empty response body)", func() *http.Request {
			r := signed(t, srv, creds, http.MethodPut, "/"+srv.Bucket()+"/k", []byte("x"), "", time.Now())
			r.Header.Set("Origin", "https://evil.example")
			return r
		}(), 200},
		{"signed HEAD with an Origin", func() *http.Request {
			r := signed(t, srv, creds, http.MethodHead, "/"+srv.Bucket()+"/k", nil, "", time.Now())
			r.Header.Set("Origin", "https://evil.example")
			return r
		}(), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.req)
			if r.status != tc.want {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tc.want)
			}
			for k := range r.header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("response carries %s: %q", k, r.header.Get(k))
				}
			}
		})
	}
}

func TestNothingOutsideTheFolder(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	// A sibling data folder with secrets, as in the reported attack: the
	// server's bucket folder is parent/a/s3/buckets/clozeloop, so
	// ../../../../ is parent.
	other := filepath.Join(parent, "b", "data")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"eval.jsonl", "oracle.jsonl"} {
		if err := os.WriteFile(filepath.Join(other, f), []byte("SECRET"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The server's own credentials file sits in its data folder.
	if err := os.MkdirAll(filepath.Join(parent, "a", "s3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "a", "s3", s3embed.CredentialsFile), []byte("SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, c := start(t, filepath.Join(parent, "a"))
	bucket := aws.String(srv.Bucket())
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("inside/ok.txt"), Body: strings.NewReader("ok")}); err != nil {
		t.Fatal(err)
	}

	for _, prefix := range []string{"../../../../", "../../../../b/", "../../../../b/data/", "../../../", "../", "..", "../../", "inside/../../", "/", "/etc/", "..\\..\\", "inside/../", "./", "inside//"} {
		t.Run("list "+prefix, func(t *testing.T) {
			out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String(prefix)})
			if err != nil {
				return // refusing is fine
			}
			for _, o := range out.Contents {
				if !strings.HasPrefix(*o.Key, prefix) || strings.Contains(*o.Key, "..") {
					t.Errorf("listed %q", *o.Key)
				}
			}
			if len(out.Contents) != 0 || len(out.CommonPrefixes) != 0 {
				t.Errorf("prefix %q matched %d keys and %d prefixes; no key can start with it", prefix, len(out.Contents), len(out.CommonPrefixes))
			}
		})
	}
	// Listing through a delimiter never names a folder outside either.
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("../"), Delimiter: aws.String("/")})
	if err == nil && (len(out.Contents) != 0 || len(out.CommonPrefixes) != 0) {
		t.Errorf("delimiter listing of ../ found %d keys, %d prefixes", len(out.Contents), len(out.CommonPrefixes))
	}

	keys := []string{"../../../../b/data/eval.jsonl", "../../../../b/data/oracle.jsonl", "inside/../../../../../b/data/eval.jsonl",
		"..\\..\\..\\..\\b\\data\\eval.jsonl", "/../../../../b/data/eval.jsonl", "../../credentials.json", "a\x00b"}
	for _, key := range keys {
		t.Run("get "+key, func(t *testing.T) {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(key)})
			if err == nil {
				b, _ := io.ReadAll(out.Body)
				out.Body.Close()
				t.Fatalf("GET %q returned %q", key, b)
			}
		})
		t.Run("put "+key, func(t *testing.T) {
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(key), Body: strings.NewReader("overwritten")}); err == nil {
				t.Fatalf("PUT %q succeeded", key)
			}
		})
		t.Run("delete "+key, func(t *testing.T) {
			c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String(key)})
		})
		t.Run("copy from "+key, func(t *testing.T) {
			if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: bucket, Key: aws.String("inside/copy"),
				CopySource: aws.String(srv.Bucket() + "/" + key)}); err == nil {
				t.Fatalf("copy from %q succeeded", key)
			}
		})
		t.Run("multipart "+key, func(t *testing.T) {
			mu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String(key)})
			if err != nil {
				return
			}
			part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String(key), UploadId: mu.UploadId,
				PartNumber: aws.Int32(1), Body: strings.NewReader("overwritten")})
			if err != nil {
				return
			}
			if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: aws.String(key), UploadId: mu.UploadId,
				MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}}); err == nil {
				t.Fatalf("multipart upload to %q succeeded", key)
			}
		})
	}
	for _, f := range []string{"eval.jsonl", "oracle.jsonl"} {
		if b, err := os.ReadFile(filepath.Join(other, f)); err != nil || string(b) != "SECRET" {
			t.Errorf("%s outside the folder changed: %q, %v", f, b, err)
		}
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files appeared next to the data folder: %v", names)
	}
	// The raw request of the report, signed: no key outside.
	r := do(t, signed(t, srv, srv.Credentials(), http.MethodGet, "/"+srv.Bucket()+"?list-type=2&prefix=..%2F..%2F..%2F..%2F", nil, "", time.Now()))
	if r.status != http.StatusOK || bytes.Contains(r.body, []byte("jsonl")) {
		t.Fatalf("list with prefix ../../../../: %d %s", r.status, r.body)
	}
}

func TestConditionalPuts(t *testing.T) {
	ctx := context.Background()
	srv, c := start(t, t.TempDir())
	bucket := aws.String(srv.Bucket())
	put := func(key, body string, ifMatch, ifNoneMatch *string) (string, error) {
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(key), Body: strings.NewReader(body),
			IfMatch: ifMatch, IfNoneMatch: ifNoneMatch})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.ETag), nil
	}
	first, err := put("ptr", "v1", nil, aws.String("*"))
	if err != nil {
		t.Fatalf("If-None-Match: * on a new key: %v", err)
	}
	second, err := put("ptr", "v2", aws.String(first), nil)
	if err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	tests := []struct {
		name                 string
		key                  string
		ifMatch, ifNoneMatch *string
	}{
		{"If-None-Match: * on an existing key", "ptr", nil, aws.String("*")},
		{"If-Match with a stale ETag", "ptr", aws.String(first), nil},
		{"If-Match with a made-up ETag", "ptr", aws.String(`"00000000000000000000000000000000"`), nil},
		{"If-Match on a missing key", "missing", aws.String(second), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := put(tc.key, "lost", tc.ifMatch, tc.ifNoneMatch)
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusPreconditionFailed {
				t.Fatalf("got %v, want 412 PreconditionFailed", err)
			}
		})
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("ptr")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "v2" || aws.ToString(out.ETag) != second {
		t.Fatalf("after refused writes: %q etag %s, want v2 etag %s", b, aws.ToString(out.ETag), second)
	}

	// Many writers race to create the same key: exactly one wins.
	const writers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := put("race", strconv.Itoa(i), nil, aws.String("*")); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers created the key with If-None-Match: *, want 1", wins)
	}
}
