//go:build unix

package hfhub

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLockBlobSharesPythonLock holds the lock file where huggingface_hub
// takes it, as another process would, and checks that lockBlob waits for
// it (here: gives up when its context ends) and takes it once released.
func TestLockBlobSharesPythonLock(t *testing.T) {
	cache := t.TempDir()
	path := filepath.Join(cache, ".locks", "models--org--m", "abc.lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lockBlob(ctx, cache, "org/m", "abc"); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("lock held elsewhere: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockBlob(context.Background(), cache, "org/m", "abc")
	if err != nil {
		t.Fatalf("free lock: %v", err)
	}
	unlock()
}
