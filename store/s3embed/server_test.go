package s3embed_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/clozeloop/clozeloop/store/s3embed"
)

func client(srv *s3embed.Server) *s3.Client {
	return s3.New(s3.Options{
		Region:       s3embed.Region,
		BaseEndpoint: aws.String(srv.Endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.Credentials().AccessKeyID, srv.Credentials().SecretAccessKey, ""),
	})
}

func TestServerPersistsAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	creds, err := s3embed.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", dir, s3embed.WithBucket("data"), s3embed.WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	c := client(srv)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("data"), Key: aws.String("runs/r/round-0/batch.jsonl"),
		Body: strings.NewReader(`{"id":1}`), Metadata: map[string]string{"sha256": "abc"},
	})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "buckets", "data", "runs", "r", "round-0", "batch.jsonl")); err != nil || string(b) != `{"id":1}` {
		t.Fatalf("object is not a plain file in the data folder: %q, %v", b, err)
	}

	srv2, err := s3embed.Start(ctx, "127.0.0.1:0", dir, s3embed.WithBucket("data"), s3embed.WithCredentials(creds))
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer srv2.Close()
	out, err := client(srv2).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("runs/r/round-0/batch.jsonl")})
	if err != nil {
		t.Fatalf("GetObject after restart: %v", err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	if string(b) != `{"id":1}` || out.Metadata["sha256"] != "abc" {
		t.Fatalf("after restart: body %q metadata %v", b, out.Metadata)
	}
}

func TestServerStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-srv.Done() // the test would hang (and time out) if cancellation did not stop it
}

func TestStartRejectsBadInput(t *testing.T) {
	tests := []struct{ name, addr, dir string }{
		{"all interfaces", ":9000", t.TempDir()},
		{"public address", "0.0.0.0:0", t.TempDir()},
		{"not an address", "localhost", t.TempDir()},
		{"no folder", "127.0.0.1:0", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := s3embed.Start(context.Background(), tc.addr, tc.dir)
			if err == nil {
				srv.Close()
				t.Fatal("Start succeeded")
			}
		})
	}
	if _, err := s3embed.Start(context.Background(), "127.0.0.1:0", t.TempDir(), s3embed.WithBucket("Bad_Bucket")); err == nil {
		t.Fatal("Start accepted an invalid bucket name")
	}
}

func TestListPaginationAndDelimiter(t *testing.T) {
	ctx := context.Background()
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := client(srv)
	bucket := aws.String(srv.Bucket())
	var keys []string
	for i := range 7 {
		keys = append(keys, fmt.Sprintf("runs/r/round-%d/batch.jsonl", i))
	}
	keys = append(keys, "runs/r-2/x", "models/m/latest")
	for _, k := range keys {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(k), Body: bytes.NewReader([]byte(k))}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("runs/"), MaxKeys: aws.Int32(3)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Contents {
			got = append(got, *o.Key)
		}
	}
	// S3 order is by bytes: "r-2" sorts before "r/".
	want := append([]string{"runs/r-2/x"}, keys[:7]...)
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 3 {
		t.Fatalf("listed %v in %d pages, want %v in 3", got, pages, want)
	}

	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("runs/r/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CommonPrefixes) != 7 || len(out.Contents) != 0 || *out.CommonPrefixes[0].Prefix != "runs/r/round-0/" {
		t.Fatalf("delimiter listing: %d prefixes, %d objects", len(out.CommonPrefixes), len(out.Contents))
	}

	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("missing"), Key: aws.String("k")})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "NoSuchBucket" {
		t.Fatalf("GetObject on missing bucket = %v, want NoSuchBucket", err)
	}
}
