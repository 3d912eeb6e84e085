package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/clozeloop/clozeloop/store"
)

// makeCheckpoint writes a small Hugging Face-like folder whose content
// depends on seed.
func makeCheckpoint(t *testing.T, seed int64) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"config.json":            []byte(`{"model_type":"bert","seed":` + string(rune('0'+seed)) + `}`),
		"model.safetensors":      randomBytes(seed, 2<<20),
		"tokenizer/vocab.txt":    []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n"),
		"tokenizer/special.json": []byte(`{}`),
	}
	for name, b := range files {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), b)
	}
	return dir, files
}

func checkDir(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s in %s differs (err %v)", name, dir, err)
		}
	}
}

func isFileGet(q request) bool { return !strings.HasSuffix(q.Path, "/"+store.ManifestFile) }

func TestCheckpointSyncAndCache(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	local, files := makeCheckpoint(t, 1)
	prefix := "runs/run-1/models/round-0003/"

	m, sum, err := e.st.UploadDir(ctx, local, prefix)
	if err != nil {
		t.Fatalf("UploadDir: %v", err)
	}
	if len(m.Files) != len(files) || m.Files[0].Path != "config.json" || m.Files[3].Path != "tokenizer/vocab.txt" {
		t.Fatalf("manifest files %+v", m.Files)
	}

	cache := t.TempDir()
	e.rec.reset()
	dir, _, err := e.st.DownloadDir(ctx, prefix, cache)
	if err != nil {
		t.Fatalf("DownloadDir: %v", err)
	}
	if filepath.Base(dir) != sum {
		t.Fatalf("cache folder %s not keyed by manifest hash %s", dir, sum)
	}
	checkDir(t, dir, files)
	if n := e.rec.count("GET", isFileGet); n < len(files) {
		t.Fatalf("first download made %d file GETs, want >= %d", n, len(files))
	}

	// A worker that already has it fetches only the manifest.
	e.rec.reset()
	dir2, _, err := e.st.DownloadDir(ctx, prefix, cache)
	if err != nil || dir2 != dir {
		t.Fatalf("second DownloadDir = %s, %v", dir2, err)
	}
	if n := e.rec.count("GET", isFileGet); n != 0 {
		t.Fatalf("cached download made %d file GETs, want 0", n)
	}
	if n := e.rec.count("GET", nil); n != 1 {
		t.Fatalf("cached download made %d GETs, want 1 (manifest)", n)
	}

	// A damaged cache entry (file missing) is fetched again.
	os.Remove(filepath.Join(dir, "config.json"))
	if dir3, _, err := e.st.DownloadDir(ctx, prefix, cache); err != nil || dir3 != dir {
		t.Fatalf("repair download = %s, %v", dir3, err)
	}
	checkDir(t, dir, files)

	// Re-uploading the same folder sends nothing.
	e.rec.reset()
	_, sum2, err := e.st.UploadDir(ctx, local, prefix)
	if err != nil || sum2 != sum {
		t.Fatalf("re-upload: %s, %v", sum2, err)
	}
	if n := e.rec.count("PUT", nil) + e.rec.count("POST", nil); n != 0 {
		t.Fatalf("identical re-upload sent %d writes, want 0", n)
	}
}

func TestUploadDirRejectsBadInput(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	withManifest := t.TempDir()
	writeFile(t, filepath.Join(withManifest, store.ManifestFile), []byte("{}"))
	tests := []struct {
		name, dir, prefix string
	}{
		{"empty folder", t.TempDir(), "models/m/v1/"},
		{"missing folder", filepath.Join(t.TempDir(), "nope"), "models/m/v1/"},
		{"reserved file name", withManifest, "models/m/v1/"},
		{"bad prefix", withManifest, "../x/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := e.st.UploadDir(ctx, tc.dir, tc.prefix); err == nil {
				t.Fatal("UploadDir succeeded, want an error")
			}
		})
	}
	if objs, _ := e.st.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("rejected uploads stored %v", objs)
	}
}

func TestHalfWrittenCheckpointNeverLatest(t *testing.T) {
	ctx := context.Background()
	// Cancel the context when the manifest PUT of version v2 starts, as if
	// the uploader crashed after the files but before the manifest.
	var mu sync.Mutex
	var cancelV2 context.CancelFunc
	crash := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			c := cancelV2
			mu.Unlock()
			if c != nil && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/v2/"+store.ManifestFile) {
				c()
				http.Error(w, "crashed", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, crash, nil)
	v1, files1 := makeCheckpoint(t, 1)
	v2, _ := makeCheckpoint(t, 2)
	v3, files3 := makeCheckpoint(t, 3)

	if _, err := e.st.Latest(ctx, "bert"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Latest before publishing = %v, want ErrNotFound", err)
	}
	p1, err := e.st.PublishModel(ctx, v1, "bert", "v1")
	if err != nil {
		t.Fatalf("publish v1: %v", err)
	}

	ctx2, cancel := context.WithCancel(ctx)
	mu.Lock()
	cancelV2 = cancel
	mu.Unlock()
	if _, err := e.st.PublishModel(ctx2, v2, "bert", "v2"); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted publish of v2 = %v, want context.Canceled", err)
	}
	mu.Lock()
	cancelV2 = nil
	mu.Unlock()
	if objs, _ := e.st.List(ctx, "models/bert/v2/"); len(objs) == 0 {
		t.Fatal("test setup: v2 files were not uploaded before the crash")
	}

	cache := t.TempDir()
	check := func(wantVersion string, want map[string][]byte) {
		t.Helper()
		dir, p, err := e.st.DownloadLatest(ctx, "bert", cache)
		if err != nil {
			t.Fatalf("DownloadLatest: %v", err)
		}
		if p.Version != wantVersion {
			t.Fatalf("latest = %s, want %s", p.Version, wantVersion)
		}
		checkDir(t, dir, want)
	}
	check("v1", files1)
	if _, err := e.st.SetLatest(ctx, "bert", "v2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetLatest to half-written v2 = %v, want ErrNotFound", err)
	}
	if _, _, err := e.st.DownloadDir(ctx, "models/bert/v2/", cache); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DownloadDir of half-written v2 = %v, want ErrNotFound", err)
	}
	check("v1", files1)

	// A manifest whose files are missing is refused too.
	m1 := "models/bert/v1/" + store.ManifestFile
	b, _, err := e.st.GetBytes(ctx, m1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutBytes(ctx, "models/bert/v9/"+store.ManifestFile, b); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SetLatest(ctx, "bert", "v9"); !errors.Is(err, store.ErrIncomplete) {
		t.Fatalf("SetLatest with files missing = %v, want ErrIncomplete", err)
	}

	// While v3 is published, a concurrent reader only ever sees complete
	// versions.
	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			dir, p, err := e.st.DownloadLatest(ctx, "bert", cache)
			if err != nil {
				readerErr <- err
				return
			}
			want := files1
			if p.Version == "v3" {
				want = files3
			}
			for name, b := range want {
				got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
				if err != nil || !bytes.Equal(got, b) {
					readerErr <- errors.New("reader saw an inconsistent " + p.Version)
					return
				}
			}
		}
	}()
	p3, err := e.st.PublishModel(ctx, v3, "bert", "v3")
	close(done)
	if err != nil {
		t.Fatalf("publish v3: %v", err)
	}
	if err := <-readerErr; err != nil {
		t.Fatalf("concurrent reader: %v", err)
	}
	check("v3", files3)
	if p3.ManifestSHA256 == p1.ManifestSHA256 {
		t.Fatal("v1 and v3 have the same manifest hash")
	}

	// Versions are immutable; republishing identical content is fine.
	if _, err := e.st.PublishModel(ctx, v1, "bert", "v3"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("publishing other content as v3 = %v, want ErrConflict", err)
	}
	if _, err := e.st.PublishModel(ctx, v3, "bert", "v3"); err != nil {
		t.Fatalf("republishing v3: %v", err)
	}
}

// failAfter lets the first n object PUTs through and fails every later one
// with a non-retryable 400, like a disk that fills up mid-upload.
type failAfter struct {
	mu   sync.Mutex
	n    int
	puts []string
}

func (f *failAfter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			f.mu.Lock()
			ok := len(f.puts) < f.n
			if ok {
				f.puts = append(f.puts, r.URL.Path)
			}
			f.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code><Message>disk full</Message></Error>`))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func TestUploadDirWritesManifestLast(t *testing.T) {
	ctx := context.Background()
	dir, _ := makeCheckpoint(t, 4)
	const files = 4
	for n := 0; n <= files; n++ {
		t.Run(fmt.Sprintf("fails after %d writes", n), func(t *testing.T) {
			f := &failAfter{n: n}
			e := newEnv(t, f.middleware, nil)
			if _, _, err := e.st.UploadDir(ctx, dir, "runs/r/rounds/0001/train/"); err == nil {
				t.Fatal("UploadDir succeeded although writes failed")
			}
			if _, _, err := e.st.ReadManifest(ctx, "runs/r/rounds/0001/train/"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("manifest visible after %d of %d file writes: %v", n, files, err)
			}
			for _, p := range f.puts {
				if strings.HasSuffix(p, "/"+store.ManifestFile) {
					t.Fatalf("manifest written before the files: %v", f.puts)
				}
			}
		})
	}
	f := &failAfter{n: 1 << 30}
	e := newEnv(t, f.middleware, nil)
	if _, _, err := e.st.UploadDir(ctx, dir, "ckpt/"); err != nil {
		t.Fatal(err)
	}
	if len(f.puts) != files+1 || !strings.HasSuffix(f.puts[files], "/"+store.ManifestFile) {
		t.Fatalf("PUT order %v, want the %d files then the manifest", f.puts, files)
	}
}
