package storeblobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/storeblobs"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
	"github.com/clozeloop/clozeloop/workflows"
)

func newBlobs(t *testing.T) storeblobs.Blobs {
	t.Helper()
	ctx := context.Background()
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	st, err := store.Open(ctx, store.Config{Endpoint: srv.Endpoint(), Bucket: srv.Bucket(), Region: s3embed.Region, PathStyle: true,
		AccessKeyID: srv.Credentials().AccessKeyID, SecretAccessKey: srv.Credentials().SecretAccessKey, TempDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return storeblobs.Blobs{S: st}
}

func TestManifestNameMatchesStore(t *testing.T) {
	if activities.CheckpointManifest != store.ManifestFile {
		t.Fatalf("activities copies %q last, the store writes %q last", activities.CheckpointManifest, store.ManifestFile)
	}
}

func TestConditionalWrites(t *testing.T) {
	ctx := context.Background()
	b := newBlobs(t)
	if err := b.PutIf(ctx, "p", []byte("v1"), ""); err != nil {
		t.Fatalf("create: %v", err)
	}
	data, v1, err := b.GetVersioned(ctx, "p")
	if err != nil || string(data) != "v1" || v1 == "" {
		t.Fatalf("GetVersioned: %q %q %v", data, v1, err)
	}
	if err := b.PutIf(ctx, "p", []byte("v2"), v1); err != nil {
		t.Fatalf("swap: %v", err)
	}
	tests := []struct {
		name, key, version string
	}{
		{"create over an existing object", "p", ""},
		{"stale version", "p", v1},
		{"version of a missing object", "missing", v1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.PutIf(ctx, tc.key, []byte("lost"), tc.version); !errors.Is(err, activities.ErrPreconditionFailed) {
				t.Fatalf("got %v, want ErrPreconditionFailed", err)
			}
		})
	}
	if _, _, err := b.GetVersioned(ctx, "missing"); !errors.Is(err, activities.ErrNotFound) {
		t.Fatalf("GetVersioned of a missing key = %v, want ErrNotFound", err)
	}
	if data, _, _ := b.GetVersioned(ctx, "p"); string(data) != "v2" {
		t.Fatalf("after lost writes: %q", data)
	}
}

// Two workflows (an active-learning round and a Retrain) promote different
// checkpoints at once, both believing round-0001 is current: exactly one
// moves the pointer, the other learns who won.
func TestConcurrentPromotionsOneWins(t *testing.T) {
	ctx := context.Background()
	b := newBlobs(t)
	a := &activities.Activities{Blobs: b}
	pointer, _ := json.Marshal(activities.CurrentModel{ModelURI: "runs/r/models/round-0001"})
	if err := b.Put(ctx, "runs/r/models/current.json", pointer); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"round-0002", "retrain-1"} {
		for _, f := range []string{activities.CheckpointManifest, "model.safetensors"} {
			if err := b.Put(ctx, "tmp/"+name+"/"+f, []byte(name+f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	const rounds = 5
	for i := range rounds {
		names := []string{fmt.Sprintf("round-%d", i), fmt.Sprintf("retrain-%d", i)}
		expected := "runs/r/models/round-0001"
		if i > 0 {
			raw, _ := b.Get(ctx, "runs/r/models/current.json")
			var cur activities.CurrentModel
			json.Unmarshal(raw, &cur)
			expected = cur.ModelURI
		}
		outs := make([]workflows.UploadCheckpointOutput, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for j, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var s testsuite.WorkflowTestSuite
				env := s.NewTestActivityEnvironment()
				env.RegisterActivityWithOptions(a.UploadCheckpoint, activity.RegisterOptions{Name: workflows.ActivityUploadCheckpoint})
				src := "tmp/round-0002"
				if j == 1 {
					src = "tmp/retrain-1"
				}
				v, err := env.ExecuteActivity(workflows.ActivityUploadCheckpoint, workflows.UploadCheckpointInput{
					CheckpointURI: src, OutputPrefix: "runs/r", Name: name, Promote: true,
					CheckCurrent: true, ExpectedCurrentURI: expected})
				if err == nil {
					err = v.Get(&outs[j])
				}
				errs[j] = err
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v, %v", i, errs[0], errs[1])
		}
		if outs[0].Promoted == outs[1].Promoted {
			t.Fatalf("round %d: promoted %v and %v, want exactly one", i, outs[0].Promoted, outs[1].Promoted)
		}
		winner, loser := outs[0], outs[1]
		if loser.Promoted {
			winner, loser = loser, winner
		}
		raw, _ := b.Get(ctx, "runs/r/models/current.json")
		var cur activities.CurrentModel
		if err := json.Unmarshal(raw, &cur); err != nil || cur.ModelURI != winner.ModelURI {
			t.Fatalf("round %d: pointer %s, winner %s", i, raw, winner.ModelURI)
		}
		if loser.Conflict == "" || loser.CurrentModelURI != winner.ModelURI {
			t.Fatalf("round %d: loser %+v does not name the winner %s", i, loser, winner.ModelURI)
		}
	}
}
