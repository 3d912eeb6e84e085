package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/clozeloop/clozeloop/workflows"
)

// failingBlobs lets the first n writes (Put, Copy, PutIf) through and fails
// every later one, like a store that goes away mid-upload.
type failingBlobs struct {
	*MemBlobs
	mu     sync.Mutex
	n      int
	copies []string
}

func (f *failingBlobs) write(what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n <= 0 {
		return fmt.Errorf("%s: connection reset", what)
	}
	f.n--
	return nil
}

func (f *failingBlobs) Put(ctx context.Context, key string, data []byte) error {
	if err := f.write("put " + key); err != nil {
		return err
	}
	return f.MemBlobs.Put(ctx, key, data)
}

func (f *failingBlobs) Copy(ctx context.Context, src, dst string) error {
	if err := f.write("copy " + src); err != nil {
		return err
	}
	f.mu.Lock()
	f.copies = append(f.copies, dst)
	f.mu.Unlock()
	return f.MemBlobs.Copy(ctx, src, dst)
}

func (f *failingBlobs) PutIf(ctx context.Context, key string, data []byte, version string) error {
	if err := f.write("put " + key); err != nil {
		return err
	}
	return f.MemBlobs.PutIf(ctx, key, data, version)
}

func checkpointBlobs(t *testing.T) *MemBlobs {
	t.Helper()
	blobs := &MemBlobs{}
	for _, f := range []string{CheckpointManifest, "config.json", "model.safetensors", "tokenizer/vocab.txt"} {
		if err := blobs.Put(context.Background(), "tmp/ckpt/"+f, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	return blobs
}

func TestUploadCheckpointCopiesManifestLast(t *testing.T) {
	ctx := context.Background()
	const files = 4
	in := workflows.UploadCheckpointInput{CheckpointURI: "tmp/ckpt", OutputPrefix: "runs/r", Name: "round-0001", Promote: true, CheckCurrent: true}
	manifest := "runs/r/models/round-0001/" + CheckpointManifest
	for n := 0; n < files; n++ {
		t.Run(fmt.Sprintf("store fails after %d copies", n), func(t *testing.T) {
			blobs := &failingBlobs{MemBlobs: checkpointBlobs(t), n: n}
			env := newEnv(&Activities{Blobs: blobs})
			if _, err := env.ExecuteActivity(workflows.ActivityUploadCheckpoint, in); err == nil {
				t.Fatal("upload succeeded although the store failed")
			}
			if ok, _ := blobs.Exists(ctx, manifest); ok {
				t.Fatalf("manifest visible after %d of %d copies: %v", n, files, blobs.copies)
			}
			if ok, _ := blobs.Exists(ctx, "runs/r/models/current.json"); ok {
				t.Fatal("current.json points at a half-copied checkpoint")
			}
		})
	}
	blobs := &failingBlobs{MemBlobs: checkpointBlobs(t), n: 100}
	env := newEnv(&Activities{Blobs: blobs})
	if _, err := env.ExecuteActivity(workflows.ActivityUploadCheckpoint, in); err != nil {
		t.Fatal(err)
	}
	if len(blobs.copies) != files || blobs.copies[files-1] != manifest {
		t.Fatalf("copy order %v, want the manifest last", blobs.copies)
	}
}

// racingBlobs runs hook once, right after the first GetVersioned of the
// pointer: another workflow writing between our read and our write.
type racingBlobs struct {
	*MemBlobs
	mu    sync.Mutex
	reads int
	// everyRead runs the hook on every read instead of the first only.
	everyRead bool
	hook      func(n int)
}

func (r *racingBlobs) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	b, v, err := r.MemBlobs.GetVersioned(ctx, key)
	r.mu.Lock()
	r.reads++
	n := r.reads
	r.mu.Unlock()
	if strings.HasSuffix(key, "current.json") && (n == 1 || r.everyRead) {
		r.hook(n)
	}
	return b, v, err
}

func pointerJSON(t *testing.T, uri string) []byte {
	t.Helper()
	b, err := json.Marshal(CurrentModel{ModelURI: uri, Name: uri})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPromotionIsACompareAndSwap(t *testing.T) {
	ctx := context.Background()
	const ptr = "runs/r/models/current.json"
	const dst = "runs/r/models/round-0002"
	tests := []struct {
		name string
		// before is the pointer's model before the activity ("" none,
		// "{bad" a corrupt pointer).
		before       string
		check        bool
		expected     string
		race         func(t *testing.T, b *MemBlobs) func(int)
		everyRead    bool
		wantPromoted bool
		wantConflict bool
		wantPointer  string
		wantErr      string // "" none; else a substring; "retryable" marks a retryable error
	}{
		{name: "first promotion creates the pointer", check: true, expected: "models/start",
			wantPromoted: true, wantPointer: dst},
		{name: "pointer still names the model the workflow knew", before: "runs/r/models/round-0001", check: true, expected: "runs/r/models/round-0001",
			wantPromoted: true, wantPointer: dst},
		{name: "another workflow promoted meanwhile", before: "runs/r/models/retrain-1", check: true, expected: "runs/r/models/round-0001",
			wantConflict: true, wantPointer: "runs/r/models/retrain-1"},
		{name: "retry after the write went through", before: dst, check: true, expected: "runs/r/models/round-0001",
			wantPromoted: true, wantPointer: dst},
		{name: "older workflow code without the check replaces any pointer", before: "runs/r/models/retrain-1",
			wantPromoted: true, wantPointer: dst},
		{name: "pointer moved between read and write", before: "runs/r/models/round-0001", check: true, expected: "runs/r/models/round-0001",
			race: func(t *testing.T, b *MemBlobs) func(int) {
				return func(int) { _ = b.Put(ctx, ptr, pointerJSON(t, "runs/r/models/retrain-2")) }
			},
			wantConflict: true, wantPointer: "runs/r/models/retrain-2"},
		{name: "pointer created between read and write", check: true, expected: "models/start",
			race: func(t *testing.T, b *MemBlobs) func(int) {
				return func(int) { _ = b.Put(ctx, ptr, pointerJSON(t, "runs/r/models/retrain-3")) }
			},
			wantConflict: true, wantPointer: "runs/r/models/retrain-3"},
		{name: "pointer rewritten under every attempt", before: "runs/r/models/round-0001", check: true, expected: "runs/r/models/round-0001",
			race: func(t *testing.T, b *MemBlobs) func(int) {
				// Same model, new content each time: the ETag changes.
				return func(n int) {
					_ = b.Put(ctx, ptr, []byte(fmt.Sprintf(`{"model_uri":"runs/r/models/round-0001","name":"n%d"}`, n)))
				}
			},
			everyRead: true, wantErr: "retryable", wantPointer: "runs/r/models/round-0001"},
		{name: "corrupt pointer", before: "{bad", check: true, expected: "runs/r/models/round-0001",
			wantErr: "BadPointer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkpointBlobs(t)
			switch tc.before {
			case "":
			case "{bad":
				_ = mem.Put(ctx, ptr, []byte("{bad"))
			default:
				_ = mem.Put(ctx, ptr, pointerJSON(t, tc.before))
			}
			var blobs Blobs = mem
			if tc.race != nil {
				blobs = &racingBlobs{MemBlobs: mem, hook: tc.race(t, mem), everyRead: tc.everyRead}
			}
			env := newEnv(&Activities{Blobs: blobs})
			v, err := env.ExecuteActivity(workflows.ActivityUploadCheckpoint, workflows.UploadCheckpointInput{
				CheckpointURI: "tmp/ckpt", OutputPrefix: "runs/r", Name: "round-0002", Promote: true,
				CheckCurrent: tc.check, ExpectedCurrentURI: tc.expected})
			if tc.wantErr != "" {
				var appErr *temporal.ApplicationError
				switch {
				case err == nil:
					t.Fatal("activity succeeded")
				case tc.wantErr == "retryable":
					if errors.As(err, &appErr) && appErr.NonRetryable() {
						t.Fatalf("error %v is non-retryable", err)
					}
				case !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &appErr) || !appErr.NonRetryable():
					t.Fatalf("error %v, want a non-retryable %s", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				var out workflows.UploadCheckpointOutput
				if err := v.Get(&out); err != nil {
					t.Fatal(err)
				}
				if out.Promoted != tc.wantPromoted || (out.Conflict != "") != tc.wantConflict || out.ModelURI != dst {
					t.Fatalf("output %+v", out)
				}
				if tc.wantConflict && out.CurrentModelURI != tc.wantPointer {
					t.Fatalf("conflict names %q, want %q", out.CurrentModelURI, tc.wantPointer)
				}
			}
			if tc.wantPointer != "" {
				raw, err := mem.Get(ctx, ptr)
				var cur CurrentModel
				if err != nil || json.Unmarshal(raw, &cur) != nil || cur.ModelURI != tc.wantPointer {
					t.Fatalf("pointer %s (%v), want %s", raw, err, tc.wantPointer)
				}
			}
		})
	}
}
