package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", t.TempDir())
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
		Endpoint string `json:"endpoint"`
	}
	if err := json.NewDecoder(pr).Decode(&info); err != nil || !strings.HasPrefix(info.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("serve printed endpoint %q (%v)", info.Endpoint, err)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := runS3(t, context.Background(), "serve", "--addr", "0.0.0.0:0", "--dir", t.TempDir()); err == nil {
		t.Fatal("serve accepted a non-loopback address")
	}
}
