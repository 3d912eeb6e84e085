package s3embed

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/johannesboyne/gofakes3"
)

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestPutObjectAtomic(t *testing.T) {
	root := t.TempDir()
	b, err := newFolderBackend(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket("bkt"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutObject("bkt", "a/b", nil, bytes.NewReader([]byte("old")), 3, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"body fails midway", &failingReader{n: 1000}, 5000},
		{"body shorter than announced", bytes.NewReader([]byte("new")), 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.PutObject("bkt", "a/b", nil, tc.r, tc.size, nil); err == nil {
				t.Fatal("PutObject succeeded")
			}
			obj, err := b.GetObject("bkt", "a/b", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(obj.Contents)
			obj.Contents.Close()
			if string(got) != "old" {
				t.Fatalf("object = %q after failed overwrite, want old content", got)
			}
			if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

func TestBackendKeysAndFolders(t *testing.T) {
	b, err := newFolderBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket("bkt"); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket("bkt"); !gofakes3.IsAlreadyExists(err) {
		t.Fatalf("second CreateBucket = %v", err)
	}
	put := func(key string) error {
		_, err := b.PutObject("bkt", key, nil, bytes.NewReader([]byte(key)), int64(len(key)), nil)
		return err
	}
	if err := put("x/y"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key string
		ok  bool
	}{
		{"x", false},     // folder of x/y
		{"x/y/z", false}, // x/y is a file
		{"../evil", false},
		{"a//b", false},
		{"x/z", true},
	}
	for _, tc := range tests {
		if err := put(tc.key); (err == nil) != tc.ok {
			t.Errorf("PutObject(%q) = %v, want ok=%t", tc.key, err, tc.ok)
		}
	}
	if _, err := b.GetObject("bkt", "x", nil); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		t.Fatalf("GetObject of a folder = %v, want NoSuchKey", err)
	}
	if _, err := b.GetObject("nope", "x/y", nil); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
		t.Fatalf("GetObject in missing bucket = %v, want NoSuchBucket", err)
	}
	// Deleting removes empty folders so the name can become an object.
	for _, k := range []string{"x/y", "x/z"} {
		if _, err := b.DeleteObject("bkt", k); err != nil {
			t.Fatal(err)
		}
	}
	if err := put("x"); err != nil {
		t.Fatalf("PutObject(x) after deleting x/*: %v", err)
	}
	if err := b.DeleteBucket("bkt"); !gofakes3.HasErrorCode(err, gofakes3.ErrBucketNotEmpty) {
		t.Fatalf("DeleteBucket of non-empty bucket = %v", err)
	}
}
