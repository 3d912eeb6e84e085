package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clozeloop/clozeloop/store"
)

func TestMultipartRoundTrip(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	data := randomBytes(1, 20<<20+123) // > 16 MiB default part size: 2 parts
	src := filepath.Join(t.TempDir(), "model.safetensors")
	writeFile(t, src, data)

	res, err := e.st.PutFile(ctx, "runs/r1/round-0/checkpoint/model.safetensors", src)
	if err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	if res.Skipped || res.Size != int64(len(data)) {
		t.Fatalf("PutFile result %+v", res)
	}
	if n := e.rec.count("PUT", isPartUpload); n < 2 {
		t.Fatalf("want a multipart upload (>= 2 UploadPart requests), got %d", n)
	}
	info, err := e.st.Head(ctx, res.Key)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if info.SHA256 != res.SHA256 || info.Size != res.Size {
		t.Fatalf("Head %+v does not match upload %+v", info, res)
	}

	dst := filepath.Join(t.TempDir(), "sub", "copy.bin")
	if _, err := e.st.GetFile(ctx, res.Key, dst); err != nil {
		t.Fatalf("GetFile: %v", err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetFile content differs (err %v, %d bytes)", err, len(got))
	}
	if n := e.rec.count("GET", nil); n < 2 {
		t.Errorf("want a ranged parallel download (>= 2 GETs), got %d", n)
	}
	got, _, err = e.st.GetBytes(ctx, res.Key)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBytes content differs (err %v, %d bytes)", err, len(got))
	}

	// Idempotent: the same content again sends nothing.
	e.rec.reset()
	again, err := e.st.PutFile(ctx, res.Key, src)
	if err != nil {
		t.Fatalf("second PutFile: %v", err)
	}
	if !again.Skipped || e.rec.count("PUT", nil)+e.rec.count("POST", nil) != 0 {
		t.Fatalf("identical re-upload not skipped: %+v, %d PUTs", again, e.rec.count("PUT", nil))
	}
}

func TestPutStreamAndOffsetReader(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	data := randomBytes(2, 1<<20)
	tests := []struct {
		name string
		r    func() io.Reader
		want []byte
	}{
		{"non-seekable stream", func() io.Reader { return io.MultiReader(bytes.NewReader(data)) }, data},
		{"seeker at offset", func() io.Reader {
			r := bytes.NewReader(data)
			r.Seek(1000, io.SeekStart)
			return r
		}, data[1000:]},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "streams/" + string(rune('a'+i))
			res, err := e.st.Put(ctx, key, tc.r())
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if res.Size != int64(len(tc.want)) {
				t.Fatalf("size %d, want %d", res.Size, len(tc.want))
			}
			got, _, err := e.st.GetBytes(ctx, key)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("round trip differs: %v", err)
			}
		})
	}
}

func TestCorruptionDetected(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(3, 6<<20)
	tests := []struct {
		name    string
		corrupt func(t *testing.T, e *env, key string)
	}{
		{"byte flipped on disk", func(t *testing.T, e *env, key string) {
			p := e.objectPath(e.cfg.Bucket, key)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, 4<<20)
			b[0] ^= 0xff
			if _, err := f.WriteAt(b, 4<<20); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated on disk", func(t *testing.T, e *env, key string) {
			if err := os.Truncate(e.objectPath(e.cfg.Bucket, key), 1<<20); err != nil {
				t.Fatal(err)
			}
		}},
		{"overwritten by a client keeping the old checksum", func(t *testing.T, e *env, key string) {
			info, err := e.st.Head(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.st.Client().PutObject(ctx, &s3.PutObjectInput{
				Bucket:   aws.String(e.cfg.Bucket),
				Key:      aws.String(key),
				Body:     bytes.NewReader(randomBytes(4, len(data))),
				Metadata: map[string]string{store.MetaSHA256: info.SHA256},
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			const key = "runs/r1/round-1/checkpoint/model.safetensors"
			if _, err := e.st.PutBytes(ctx, key, data); err != nil {
				t.Fatal(err)
			}
			tc.corrupt(t, e, key)

			dst := filepath.Join(t.TempDir(), "out.bin")
			_, err := e.st.GetFile(ctx, key, dst)
			if !errors.Is(err, store.ErrChecksumMismatch) {
				t.Fatalf("GetFile error = %v, want ErrChecksumMismatch", err)
			}
			if _, serr := os.Stat(dst); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("corrupt download left %s behind (stat: %v)", dst, serr)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), "*")); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
			if _, _, err := e.st.GetBytes(ctx, key); !errors.Is(err, store.ErrChecksumMismatch) {
				t.Fatalf("GetBytes error = %v, want ErrChecksumMismatch", err)
			}
		})
	}
}

// s3Error answers every request with an S3 XML error.
func s3Error(status int, code string) func(http.Handler) http.Handler {
	return func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			if r.Method != http.MethodHead {
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>denied by test</Message></Error>`)
			}
		})
	}
}

func TestDocumentedErrors(t *testing.T) {
	ctx := context.Background()
	ok := newEnv(t, nil, nil)
	noBucket := newEnv(t, nil, func(c *store.Config) { c.Bucket = "no-such-bucket" })
	denied := newEnv(t, s3Error(http.StatusForbidden, "AccessDenied"), nil)
	dst := filepath.Join(t.TempDir(), "x")
	ops := map[string]func(st *store.Store) error{
		"head":     func(st *store.Store) error { _, err := st.Head(ctx, "missing/key"); return err },
		"get":      func(st *store.Store) error { _, _, err := st.GetBytes(ctx, "missing/key"); return err },
		"get-file": func(st *store.Store) error { _, err := st.GetFile(ctx, "missing/key", dst); return err },
		"latest":   func(st *store.Store) error { _, err := st.Latest(ctx, "bert"); return err },
		"download": func(st *store.Store) error {
			_, _, err := st.DownloadDir(ctx, "models/bert/v1/", t.TempDir())
			return err
		},
		"put":   func(st *store.Store) error { _, err := st.PutBytes(ctx, "k", []byte("x")); return err },
		"list":  func(st *store.Store) error { _, err := st.List(ctx, "runs/"); return err },
		"check": func(st *store.Store) error { return st.CheckBucket(ctx) },
	}
	tests := []struct {
		env  *env
		name string
		ops  []string
		want error
	}{
		{ok, "missing object", []string{"head", "get", "get-file", "latest", "download"}, store.ErrNotFound},
		{noBucket, "missing bucket", []string{"head", "get", "get-file", "put", "list", "check"}, store.ErrBucketNotFound},
		{denied, "access denied", []string{"head", "get", "put", "list", "check"}, store.ErrAccessDenied},
	}
	for _, tc := range tests {
		for _, op := range tc.ops {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				err := ops[op](tc.env.st)
				if !errors.Is(err, tc.want) {
					t.Fatalf("error = %v, want %v", err, tc.want)
				}
				if tc.want != store.ErrNotFound && errors.Is(err, store.ErrNotFound) {
					t.Fatalf("error %v also matches ErrNotFound", err)
				}
			})
		}
	}
	_, err := ok.st.PutBytes(ctx, "../escape", []byte("x"))
	if !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("bad key error = %v, want ErrInvalidKey", err)
	}
}

func TestRetriesTransientErrors(t *testing.T) {
	failures := 2
	flaky := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && failures > 0 {
				failures--
				io.Copy(io.Discard, r.Body)
				s3Error(http.StatusServiceUnavailable, "SlowDown")(nil).ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, flaky, nil)
	ctx := context.Background()
	if _, err := e.st.PutBytes(ctx, "metrics.json", []byte(`{"acc":1}`)); err != nil {
		t.Fatalf("PutBytes through 2 transient failures: %v", err)
	}
	if n := e.rec.count("PUT", nil); n != 3 {
		t.Fatalf("want 3 PUT attempts, got %d", n)
	}

	failures = 100
	e2 := newEnv(t, flaky, func(c *store.Config) { c.MaxAttempts = 2 })
	_, err := e2.st.PutBytes(ctx, "metrics.json", []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "SlowDown") {
		t.Fatalf("want the SlowDown error after attempts ran out, got %v", err)
	}
	if n := e2.rec.count("PUT", nil); n != 2 {
		t.Fatalf("want 2 PUT attempts with MaxAttempts=2, got %d", n)
	}
}

func TestCancellationStopsTransfer(t *testing.T) {
	data := randomBytes(5, 20<<20)
	src := filepath.Join(t.TempDir(), "big.bin")
	writeFile(t, src, data)
	small := filepath.Join(t.TempDir(), "small.bin")
	writeFile(t, small, data[:3<<20])

	tests := []struct {
		name string
		src  string
	}{
		{"multipart upload", src},
		{"single-request upload", small},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			client := &http.Client{Transport: hookTransport{
				base: http.DefaultTransport.(*http.Transport).Clone(),
				req: func(r *http.Request) {
					if r.Method == http.MethodPut && r.Body != nil {
						r.Body = &cancelAfter{r: r.Body, n: 1 << 20, cancel: cancel}
					}
				},
			}}
			e := newEnv(t, nil, func(c *store.Config) { c.HTTPClient = client; c.PartSize = 5 << 20 })
			_, err := e.st.PutFile(ctx, "big/object", tc.src)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("PutFile error = %v, want context.Canceled", err)
			}
			if _, err := e.st.Head(context.Background(), "big/object"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("after cancel, Head error = %v, want ErrNotFound (no partial object)", err)
			}
			if objs, err := e.st.List(context.Background(), ""); err != nil || len(objs) != 0 {
				t.Fatalf("after cancel, bucket lists %v (err %v), want nothing", objs, err)
			}
		})
	}

	t.Run("stream upload", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		r := &cancelAfter{r: io.NopCloser(bytes.NewReader(data)), n: 1 << 20, cancel: cancel}
		_, err := e.st.Put(ctx, "stream", struct{ io.Reader }{r})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put error = %v, want context.Canceled", err)
		}
		if _, err := e.st.Head(context.Background(), "stream"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Head error = %v, want ErrNotFound", err)
		}
	})

	t.Run("download", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		client := &http.Client{Transport: hookTransport{
			base: http.DefaultTransport.(*http.Transport).Clone(),
			resp: func(r *http.Request, resp *http.Response) {
				if r.Method == http.MethodGet {
					resp.Body = &cancelAfter{r: resp.Body, n: 1 << 20, cancel: cancel}
				}
			},
		}}
		e := newEnv(t, nil, func(c *store.Config) { c.HTTPClient = client; c.PartSize = 5 << 20 })
		if _, err := e.st.PutFile(context.Background(), "big/object", src); err != nil {
			t.Fatal(err)
		}
		dstDir := t.TempDir()
		_, err := e.st.GetFile(ctx, "big/object", filepath.Join(dstDir, "out.bin"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("GetFile error = %v, want context.Canceled", err)
		}
		if left, _ := filepath.Glob(filepath.Join(dstDir, "*")); len(left) != 0 {
			t.Fatalf("cancelled download left files: %v", left)
		}
	})
}

func TestListAndDeleteWithPrefix(t *testing.T) {
	e := newEnv(t, nil, func(c *store.Config) { c.Prefix = "/team-a/clozeloop/" })
	ctx := context.Background()
	keys := []string{"runs/r1/round-0/batch.jsonl", "runs/r1/round-0/labels.jsonl", "runs/r1/round-1/batch.jsonl", "runs/r2/x"}
	for _, k := range keys {
		if _, err := e.st.PutBytes(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(e.objectPath(e.cfg.Bucket, "team-a/clozeloop/runs/r2/x")); err != nil {
		t.Fatalf("prefix not applied on the server: %v", err)
	}
	got, err := e.st.List(ctx, "runs/r1/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range got {
		names = append(names, o.Key)
	}
	if strings.Join(names, ",") != strings.Join(keys[:3], ",") {
		t.Fatalf("List = %v, want %v", names, keys[:3])
	}
	if err := e.st.Delete(ctx, keys[0]); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Delete(ctx, keys[0]); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if _, err := e.st.Head(ctx, keys[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Head after delete = %v", err)
	}
}

func TestPutBytesIf(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, nil)
	etag1, err := e.st.PutBytesIf(ctx, "runs/r/models/current.json", []byte(`{"v":1}`), store.Condition{IfNoneMatch: true})
	if err != nil || etag1 == "" {
		t.Fatalf("create: %q, %v", etag1, err)
	}
	etag2, err := e.st.PutBytesIf(ctx, "runs/r/models/current.json", []byte(`{"v":2}`), store.Condition{IfMatch: etag1})
	if err != nil || etag2 == etag1 {
		t.Fatalf("swap: %q, %v", etag2, err)
	}
	tests := []struct {
		name string
		key  string
		cond store.Condition
		want error
	}{
		{"create over an existing object", "runs/r/models/current.json", store.Condition{IfNoneMatch: true}, store.ErrPreconditionFailed},
		{"stale ETag", "runs/r/models/current.json", store.Condition{IfMatch: etag1}, store.ErrPreconditionFailed},
		{"ETag of a missing object", "runs/r/models/none.json", store.Condition{IfMatch: etag2}, store.ErrPreconditionFailed},
		{"no condition", "runs/r/models/current.json", store.Condition{}, nil},
		{"bad key", "../x", store.Condition{IfNoneMatch: true}, store.ErrInvalidKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.st.PutBytesIf(ctx, tc.key, []byte(`{"v":"lost"}`), tc.cond)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	b, info, err := e.st.GetBytes(ctx, "runs/r/models/current.json")
	if err != nil || string(b) != `{"v":2}` || info.ETag != etag2 {
		t.Fatalf("after lost writes: %s etag %s (%v), want v2 etag %s", b, info.ETag, err, etag2)
	}
}
