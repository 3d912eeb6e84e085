package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/clozeloop/clozeloop/store"
)

// TestPutBytesIfMatch checks the compare-and-swap write on the embedded
// server: create-only, update of the version read, refusal of a stale
// version, and exactly one winner among concurrent writers of one version.
func TestPutBytesIfMatch(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	const key = "annotators/accounts.json"

	tag1, err := e.st.PutBytesIfMatch(ctx, key, []byte("v1"), "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := e.st.PutBytesIfMatch(ctx, key, []byte("again"), ""); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("second create: %v, want ErrPreconditionFailed", err)
	}
	b, info, err := e.st.GetBytes(ctx, key)
	if err != nil || string(b) != "v1" || info.ETag != tag1 {
		t.Fatalf("read: %q %+v %v (etag of the write %s)", b, info, err, tag1)
	}
	tag2, err := e.st.PutBytesIfMatch(ctx, key, []byte("v2"), tag1)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, err := e.st.PutBytesIfMatch(ctx, key, []byte("stale"), tag1); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("stale update: %v, want ErrPreconditionFailed", err)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, losses := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.st.PutBytesIfMatch(ctx, key, []byte(fmt.Sprintf("writer %d", i)), tag2)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrPreconditionFailed):
				losses++
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || losses != 7 {
		t.Errorf("concurrent writers of one version: %d won, %d lost; want 1 and 7", wins, losses)
	}
}
