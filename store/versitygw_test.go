package store_test

import (
	"context"
	"os"
	"testing"
)

// TestBackendIsReal makes sure the suite talks to the backend it names: an
// object written through the store lands as a file in the server's folder
// (the embedded server's, or with CLOZELOOP_TEST_S3_BACKEND=versitygw the
// gateway's posix folder).
func TestBackendIsReal(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	if _, err := e.st.PutBytes(ctx, "probe/x.txt", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(e.objectPath(e.cfg.Bucket, "probe/x.txt"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("object on disk: %q, %v", got, err)
	}
}
