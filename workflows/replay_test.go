package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays every history exported from a real
// server (workflows/testdata/*.json, recorded by devserver's
// TestRealEngineRoundSurvivesRestarts and TestRealEngineAdaptationSurvivesRestart
// with CLOZELOOP_RECORD_HISTORIES=1) against the current
// workflow code: a non-deterministic change fails here. labels-run-run*.json
// were recorded before ChangeLabelSemantics, on the embedded server with
// in-memory activities: two rounds with label signals and Updates (one
// rejected), a skip, flags, a deadline extension, a CloseRound signal and
// late answers and flags sent while the round was training.
// hook-run-run1.json was recorded under ChangeLabelSemantics version 1 by
// hook's TestTemporalBackend (CLOZELOOP_RECORD_HISTORIES=1 go test ./hook
// -run TestTemporalBackend): answers as lists through the hook, a
// self-skip signal, and a lead's ExtendRound update.
// e2e-1-run1.json was recorded by the multi-process e2e test
// (CLOZELOOP_RECORD_HISTORIES=1 make e2e) on Temporal on PostgreSQL: 16
// scoring shards over two workers, a server restart during the wait, a
// FineTune whose first worker was killed and whose retry resumed from a
// checkpoint, and the phase-duration metrics of setPhase.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no recorded histories in workflows/testdata; record them with CLOZELOOP_RECORD_HISTORIES=1 go test ./devserver -run TestRealEngineRoundSurvivesRestarts")
	}
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(ActiveLearning, workflow.RegisterOptions{Name: ActiveLearningName})
	r.RegisterWorkflowWithOptions(Retrain, workflow.RegisterOptions{Name: RetrainName})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
