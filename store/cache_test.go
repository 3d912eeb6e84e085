package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/store"
)

// corruptInPlace changes one byte of path in the middle without changing
// its size, as a bad write or a stray tool would; keepMtime puts the
// modification time back afterwards.
func corruptInPlace(t *testing.T, path string, keepMtime bool) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := fi.Size() / 2
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if keepMtime {
		if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	if after, err := os.Stat(path); err != nil || after.Size() != fi.Size() {
		t.Fatalf("corruption changed the size: %v", err)
	}
}

// TestCacheCatchesSameSizeChange corrupts a cached model file in place
// without changing its size (the old cache checked sizes only and used
// it) and checks that the next DownloadDir notices and fetches the file
// again; a file whose identity changed but whose content did not is
// re-hashed and kept without a download.
func TestCacheCatchesSameSizeChange(t *testing.T) {
	tests := []struct {
		name string
		// change damages or touches the cached folder.
		change       func(t *testing.T, dir, cache string)
		wantDownload bool
	}{
		{"same-size change", func(t *testing.T, dir, _ string) {
			corruptInPlace(t, filepath.Join(dir, "model.safetensors"), false)
		}, true},
		{"same-size change, mtime put back", func(t *testing.T, dir, _ string) {
			corruptInPlace(t, filepath.Join(dir, "model.safetensors"), true)
		}, true},
		{"same-size change, stamp removed", func(t *testing.T, dir, _ string) {
			corruptInPlace(t, filepath.Join(dir, "tokenizer/vocab.txt"), false)
			if err := os.Remove(dir + ".verified.json"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"replaced by an equal copy", func(t *testing.T, dir, _ string) {
			p := filepath.Join(dir, "config.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, b)
		}, false},
		{"touched", func(t *testing.T, dir, _ string) {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(dir, "model.safetensors"), later, later); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"stamp removed", func(t *testing.T, dir, _ string) {
			if err := os.Remove(dir + ".verified.json"); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			ctx := context.Background()
			local, files := makeCheckpoint(t, 4)
			prefix := "models/bert/v1/"
			if _, _, err := e.st.UploadDir(ctx, local, prefix); err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			dir, _, err := e.st.DownloadDir(ctx, prefix, cache)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir + ".verified.json"); err != nil {
				t.Fatalf("no verification stamp beside the cached folder: %v", err)
			}
			tc.change(t, dir, cache)
			e.rec.reset()
			dir2, _, err := e.st.DownloadDir(ctx, prefix, cache)
			if err != nil || dir2 != dir {
				t.Fatalf("DownloadDir after the change = %s, %v", dir2, err)
			}
			checkDir(t, dir, files)
			got := e.rec.count("GET", isFileGet) > 0
			if got != tc.wantDownload {
				t.Errorf("files downloaded again: %v, want %v", got, tc.wantDownload)
			}
			// Whatever happened, the folder is now stamped and a third use
			// is a plain cache hit.
			e.rec.reset()
			if _, _, err := e.st.DownloadDir(ctx, prefix, cache); err != nil {
				t.Fatal(err)
			}
			if n := e.rec.count("GET", isFileGet); n != 0 {
				t.Errorf("third use downloaded %d files, want 0", n)
			}
		})
	}
}

// TestManifestDisagreesWithObject replaces one file of an uploaded
// checkpoint behind its manifest's back (same size, then another size):
// DownloadDir fails with ErrChecksumMismatch and leaves no cache folder
// that a later call could take for complete.
func TestManifestDisagreesWithObject(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	local, files := makeCheckpoint(t, 5)
	prefix := "runs/run-1/rounds/0001/checkpoint/"
	if _, _, err := e.st.UploadDir(ctx, local, prefix); err != nil {
		t.Fatal(err)
	}
	orig := files["tokenizer/vocab.txt"]
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"same size", bytes.ToUpper(orig)},
		{"other size", append(append([]byte(nil), orig...), "extra\n"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.body, orig) {
				t.Fatal("test setup: replacement equals the original")
			}
			if _, err := e.st.PutBytes(ctx, prefix+"tokenizer/vocab.txt", tc.body); err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			if _, _, err := e.st.DownloadDir(ctx, prefix, cache); !errors.Is(err, store.ErrChecksumMismatch) {
				t.Fatalf("DownloadDir = %v, want ErrChecksumMismatch", err)
			}
			if entries, _ := os.ReadDir(cache); len(entries) != 0 {
				t.Errorf("cache holds %v after a failed download", entries)
			}
		})
	}
}

// TestManifestChangedAfterPublishing overwrites a published version's
// files and manifest with other content (consistent with each other):
// DownloadLatest refuses it, because latest recorded the manifest's
// SHA-256 when it was published, and caches nothing.
func TestManifestChangedAfterPublishing(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	v1, _ := makeCheckpoint(t, 6)
	other, _ := makeCheckpoint(t, 7)
	p, err := e.st.PublishModel(ctx, v1, "bert", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, sum, err := e.st.UploadDir(ctx, other, p.Prefix); err != nil || sum == p.ManifestSHA256 {
		t.Fatalf("test setup: overwrite v1: %s, %v", sum, err)
	}
	cache := t.TempDir()
	if _, _, err := e.st.DownloadLatest(ctx, "bert", cache); !errors.Is(err, store.ErrChecksumMismatch) {
		t.Fatalf("DownloadLatest of a changed version = %v, want ErrChecksumMismatch", err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("cache holds %v after a refused download", entries)
	}
}
