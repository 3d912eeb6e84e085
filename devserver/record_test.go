package devserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/clozeloop/clozeloop/workflows"
)

func quietSDKLogger() sdklog.Logger { return sdklog.NewStructuredLogger(quietLogger()) }

func waitBatch(t *testing.T, c client.Client, id string, round int) workflows.BatchView {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		v, err := c.QueryWorkflow(context.Background(), id, "", workflows.QueryBatch)
		if err == nil {
			var b workflows.BatchView
			if v.Get(&b) == nil && b.Round == round && b.Open {
				return b
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("round %d batch never opened", round)
	return workflows.BatchView{}
}

// recordChain writes every run of the continue-as-new chain to
// workflows/testdata/<id>-run<N>.json.
func recordChain(t *testing.T, c client.Client, id, firstRun string) {
	runID := firstRun
	for n := 1; runID != ""; n++ {
		it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		h := &historypb.History{}
		next := ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			h.Events = append(h.Events, ev)
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
		}
		data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "workflows", "testdata", fmt.Sprintf("%s-run%d.json", id, n))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d events)", path, len(h.Events))
		runID = next
	}
}
