//go:build unix

package hfhub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockBlob takes the lock the Python client takes before writing a blob
// ($HF_HUB_CACHE/.locks/models--org--name/<etag>.lock, flock), so that
// clozeloop and transformers never write the same .incomplete file at
// once. It waits for the lock until ctx ends; unlock releases it.
func lockBlob(ctx context.Context, cacheDir, repo, etag string) (unlock func(), err error) {
	path := filepath.Join(cacheDir, ".locks", repoFolderName(repo), etag+".lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for the download lock %s (another process is downloading this file): %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
