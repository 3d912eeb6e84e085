package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
)

func runS3(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	env := &cmdEnv{stdout: &out, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	err := s3Cmd().run(ctx, env, args)
	return out.String(), err
}

func TestS3CommandsAgainstEmbeddedServer(t *testing.T) {
	ctx := context.Background()
	srvDir := t.TempDir()
	creds, _, err := s3embed.LoadOrCreateCredentials(filepath.Join(srvDir, s3embed.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", srvDir, s3embed.WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("CLOZELOOP_S3_ENDPOINT", srv.Endpoint())
	t.Setenv("CLOZELOOP_S3_BUCKET", srv.Bucket())
	t.Setenv("CLOZELOOP_S3_PATH_STYLE", "true")
	t.Setenv("CLOZELOOP_S3_PREFIX", "")
	t.Setenv("CLOZELOOP_S3_REGION", "")
	t.Setenv("AWS_PROFILE", "")

	// Without the server's keys, or with wrong ones, nothing is listed.
	t.Setenv("CLOZELOOP_S3_ACCESS_KEY_ID", "")
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", "")
	if _, err := runS3(t, ctx, "ls", "--json"); err == nil || !strings.Contains(err.Error(), "needs its keys") {
		t.Fatalf("ls without keys = %v, want an error naming the missing keys", err)
	}
	t.Setenv("CLOZELOOP_S3_ACCESS_KEY_ID", srv.Credentials().AccessKeyID)
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", "wrong-secret-0123456789")
	if _, err := runS3(t, ctx, "ls", "--json"); !errors.Is(err, store.ErrAccessDenied) {
		t.Fatalf("ls with a wrong secret = %v, want access denied", err)
	}
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", srv.Credentials().SecretAccessKey)

	src := filepath.Join(t.TempDir(), "labels.jsonl")
	if err := os.WriteFile(src, []byte(`{"id":"a","label":"cat"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runS3(t, ctx, "put", "--json", "runs/r1/round-0/labels.jsonl", src)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	var put struct {
		Key     string `json:"key"`
		SHA256  string `json:"sha256"`
		Skipped bool   `json:"skipped"`
	}
	if err := json.Unmarshal([]byte(out), &put); err != nil || put.Key != "runs/r1/round-0/labels.jsonl" || put.Skipped {
		t.Fatalf("put output %q (%v)", out, err)
	}

	out, err = runS3(t, ctx, "ls", "--json", "runs/")
	if err != nil {
		t.Fatalf("ls: %v", err)
	}
	var objs []struct {
		Key  string `json:"key"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(out), &objs); err != nil || len(objs) != 1 || objs[0].Size != 25 {
		t.Fatalf("ls output %q (%v)", out, err)
	}

	dst := filepath.Join(t.TempDir(), "copy.jsonl")
	if _, err := runS3(t, ctx, "get", "runs/r1/round-0/labels.jsonl", dst); err != nil {
		t.Fatalf("get: %v", err)
	}
	if b, _ := os.ReadFile(dst); !strings.Contains(string(b), `"cat"`) {
		t.Fatalf("get wrote %q", b)
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o644)
	if _, err := runS3(t, ctx, "upload-dir", dir, "models/m/v1/"); err != nil {
		t.Fatalf("upload-dir: %v", err)
	}
	out, err = runS3(t, ctx, "download-dir", "--json", "--cache", t.TempDir(), "models/m/v1/")
	if err != nil || !strings.Contains(out, `"files": 1`) {
		t.Fatalf("download-dir: %q, %v", out, err)
	}

	// The keys from the server's credentials file work as well.
	t.Setenv("CLOZELOOP_S3_ACCESS_KEY_ID", "")
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", "")
	out, err = runS3(t, ctx, "ls", "--json", "--credentials", filepath.Join(srvDir, s3embed.CredentialsFile), "runs/")
	if err != nil || !strings.Contains(out, "labels.jsonl") {
		t.Fatalf("ls --credentials: %q, %v", out, err)
	}
	t.Setenv("CLOZELOOP_S3_ACCESS_KEY_ID", creds.AccessKeyID)
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", creds.SecretAccessKey)

	if _, err := runS3(t, ctx, "get", "missing/key", dst); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("get of a missing key = %v", err)
	}
	if _, err := runS3(t, ctx, "put", "only-key"); err == nil {
		t.Fatal("put with one argument succeeded")
	}
}

func TestS3ServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	env := &cmdEnv{stdout: pw, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() {
		done <- s3Cmd().run(ctx, env, []string{"serve", "--addr", "127.0.0.1:0", "--dir", t.TempDir(), "--json"})
		pw.Close()
	}()
	var info struct {
		Endpoint        string `json:"endpoint"`
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		CredentialsFile string `json:"credentials_file"`
	}
	if err := json.NewDecoder(pr).Decode(&info); err != nil || !strings.HasPrefix(info.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("serve printed endpoint %q (%v)", info.Endpoint, err)
	}
	stored, err := s3embed.ReadCredentials(info.CredentialsFile)
	if err != nil || stored.AccessKeyID != info.AccessKeyID || stored.SecretAccessKey != info.SecretAccessKey {
		t.Fatalf("serve printed keys %s that are not the stored ones (%v)", info.AccessKeyID, err)
	}
	if fi, err := os.Stat(info.CredentialsFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode: %v, %v", fi.Mode().Perm(), err)
	}
	// Anonymous requests are refused, signed ones served.
	resp, err := http.Get(info.Endpoint + "/" + s3embed.DefaultBucket + "?list-type=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous list: %d, want 403", resp.StatusCode)
	}
	t.Setenv("CLOZELOOP_S3_ENDPOINT", info.Endpoint)
	t.Setenv("CLOZELOOP_S3_BUCKET", s3embed.DefaultBucket)
	t.Setenv("CLOZELOOP_S3_PATH_STYLE", "true")
	t.Setenv("CLOZELOOP_S3_ACCESS_KEY_ID", info.AccessKeyID)
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", info.SecretAccessKey)
	if _, err := runS3(t, context.Background(), "ls", "--json"); err != nil {
		t.Fatalf("ls with the printed keys: %v", err)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	// Half a key pair is a usage error.
	t.Setenv("CLOZELOOP_S3_ACCESS_KEY_ID", "")
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", "")
	if _, err := runS3(t, context.Background(), "serve", "--addr", "127.0.0.1:0", "--dir", t.TempDir(), "--access-key", "CLONLY"); err == nil {
		t.Fatal("serve accepted an access key without a secret")
	}
	if _, err := runS3(t, context.Background(), "serve", "--addr", "0.0.0.0:0", "--dir", t.TempDir()); err == nil {
		t.Fatal("serve accepted a non-loopback address")
	}
}
