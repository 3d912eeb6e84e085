package tracing_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/clozeloop/clozeloop/devserver"
	"github.com/clozeloop/clozeloop/tracing"
	"github.com/clozeloop/clozeloop/tracing/tracingtest"
	"github.com/clozeloop/clozeloop/workers"
)

func TestStartEndpoint(t *testing.T) {
	tests := []struct {
		endpoint string
		wantErr  bool
		wantNil  bool
	}{
		{"", false, true},
		{"http://127.0.0.1:4318", false, false},
		{"https://otel.example.com/", false, false},
		{"127.0.0.1:4318", true, true},
		{"ftp://127.0.0.1:4318", true, true},
		{"http://", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			tr, err := tracing.Start(context.Background(), tracing.Options{Endpoint: tt.endpoint, Service: "test"})
			if (err != nil) != tt.wantErr || (tr == nil) != tt.wantNil {
				t.Fatalf("Start(%q) = %v, %v; want error %v, nil %v", tt.endpoint, tr, err, tt.wantErr, tt.wantNil)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNilTracer(t *testing.T) {
	var tr *tracing.Tracer
	h := http.NewServeMux()
	if got, ok := tr.Handler(h).(*http.ServeMux); !ok || got != h {
		t.Error("a nil Tracer must return the handler unchanged")
	}
	if is, err := tr.Interceptors(); err != nil || is != nil {
		t.Errorf("Interceptors() = %v, %v; want none", is, err)
	}
}

// TestTraceAcrossClients runs a workflow with an activity and an update
// on the embedded Temporal server. A "hook" process (its own client and
// tracer) serves an HTTP route that sends the update; a "worker" process
// (another client and tracer) runs the workflow. The spans reach a real
// OTLP/HTTP endpoint as protobuf and must link up: the HTTP request is
// the root of the update's trace (its traceparent header is ignored), and
// the workflow's run and activity are children of its start.
func TestTraceAcrossClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	ctx := context.Background()
	col := tracingtest.Start(t)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := devserver.Start(ctx, devserver.Options{FrontendAddr: "127.0.0.1:0", DataDir: t.TempDir(), Namespace: "trace-test", LogLevel: "error", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	dial := func(service string) (client.Client, *tracing.Tracer) {
		tr, err := tracing.Start(ctx, tracing.Options{Endpoint: col.URL, Service: service, Instance: service + "-1"})
		if err != nil {
			t.Fatal(err)
		}
		is, err := tr.Interceptors()
		if err != nil {
			t.Fatal(err)
		}
		c, err := workers.Dial(ctx, workers.ClientOptions{Address: srv.FrontendAddr(), Namespace: srv.Namespace(), Interceptors: is}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c, tr
	}

	wc, wtr := dial("test-worker")
	w := worker.New(wc, "trace-q", worker.Options{})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context) (string, error) {
		var got string
		if err := workflow.SetUpdateHandler(ctx, "label", func(ctx workflow.Context, v string) error {
			got = v
			return nil
		}); err != nil {
			return "", err
		}
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		var out string
		if err := workflow.ExecuteActivity(actx, "Upper", "x").Get(ctx, &out); err != nil {
			return "", err
		}
		if err := workflow.Await(ctx, func() bool { return got != "" }); err != nil {
			return "", err
		}
		return out + got, nil
	}, workflow.RegisterOptions{Name: "Traced"})
	w.RegisterActivityWithOptions(func(ctx context.Context, s string) (string, error) { return strings.ToUpper(s), nil },
		activity.RegisterOptions{Name: "Upper"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	hc, htr := dial("test-hook")
	run, err := hc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "traced-1", TaskQueue: "trace-q"}, "Traced")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /runs/{id}/labels", func(w http.ResponseWriter, r *http.Request) {
		h, err := hc.UpdateWorkflow(r.Context(), client.UpdateWorkflowOptions{WorkflowID: r.PathValue("id"), UpdateName: "label",
			Args: []any{"y"}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err == nil {
			err = h.Get(r.Context(), nil)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	hs := httptest.NewServer(htr.Handler(mux))
	defer hs.Close()
	const forged = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/runs/traced-1/labels", nil)
	req.Header.Set("traceparent", "00-"+forged+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("update through HTTP: %s", resp.Status)
	}
	var res string
	if err := run.Get(ctx, &res); err != nil || res != "Xy" {
		t.Fatalf("workflow result %q, %v", res, err)
	}
	for _, tr := range []*tracing.Tracer{htr, wtr} {
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}

	spans := col.Spans()
	byName := map[string]tracingtest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	// parentChain checks that each span's parent is the previous one.
	parentChain := func(names ...string) {
		t.Helper()
		for i, n := range names {
			s, ok := byName[n]
			if !ok {
				t.Fatalf("no span %q among %v", n, names)
			}
			if i == 0 {
				continue
			}
			p := byName[names[i-1]]
			if s.ParentID != p.SpanID || s.TraceID != p.TraceID {
				t.Errorf("span %q (trace %s, parent %s) is not a child of %q (trace %s, span %s)", n, s.TraceID, s.ParentID, p.Name, p.TraceID, p.SpanID)
			}
		}
	}
	http := byName["POST /runs/{id}/labels"]
	if http.Service != "test-hook" || http.ParentID != "" || http.TraceID == forged {
		t.Errorf("HTTP span %+v: want a root span of test-hook in a new trace (the client's traceparent ignored)", http)
	}
	parentChain("POST /runs/{id}/labels", "UpdateWorkflow:label", "HandleUpdate:label")
	parentChain("StartWorkflow:Traced", "RunWorkflow:Traced", "StartActivity:Upper", "RunActivity:Upper")
	for name, service := range map[string]string{"UpdateWorkflow:label": "test-hook", "HandleUpdate:label": "test-worker",
		"StartWorkflow:Traced": "test-hook", "RunWorkflow:Traced": "test-worker", "RunActivity:Upper": "test-worker"} {
		if got := byName[name].Service; got != service {
			t.Errorf("span %s from service %q, want %q", name, got, service)
		}
	}
	if t.Failed() {
		for _, s := range spans {
			t.Logf("%s %s/%s parent %s: %s", s.Service, s.TraceID, s.SpanID, s.ParentID, s.Name)
		}
	}
}
