package devserver

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	dbschema "go.temporal.io/server/schema"

	"github.com/clozeloop/clozeloop/devserver/pgtest"
)

// waitForGo is a trivial workflow: it blocks until the "go" signal and
// returns the signal's value; the "count" query reports what it has seen.
func waitForGo(ctx workflow.Context, prefix string) (string, error) {
	seen := 0
	if err := workflow.SetQueryHandler(ctx, "seen", func() (int, error) { return seen, nil }); err != nil {
		return "", err
	}
	var v string
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, &v)
	seen++
	return prefix + v, nil
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func startServer(t *testing.T, dir string) *Server {
	t.Helper()
	return startServerOn(t, dir, nil)
}

// startServerOn starts a server on the SQLite file in dir, or on pg.
func startServerOn(t *testing.T, dir string, pg *Postgres) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{FrontendAddr: "127.0.0.1:0", DataDir: dir, Postgres: pg, Namespace: "clozeloop-test", LogLevel: "error", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("start dev server: %v", err)
	}
	return s
}

func dial(t *testing.T, s *Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.FrontendAddr(), Namespace: s.Namespace(), Logger: quietSDKLogger()})
	if err != nil {
		t.Fatalf("dial %s: %v", s.FrontendAddr(), err)
	}
	return c
}

func TestStartValidation(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no data dir", Options{FrontendAddr: "127.0.0.1:0"}},
		{"bad address", Options{FrontendAddr: "nonsense", DataDir: t.TempDir()}},
		{"bad port", Options{FrontendAddr: "127.0.0.1:99999", DataDir: t.TempDir()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Start(context.Background(), tc.opts); err == nil {
				_ = s.Stop()
				t.Fatal("Start succeeded, want an error")
			}
		})
	}
}

// TestRestartKeepsState runs a workflow, stops the server while the workflow
// waits, starts a new server on the same SQLite file and finishes it there.
func TestRestartKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server twice")
	}
	testRestartKeepsState(t, nil)
}

// TestPostgresRestartKeepsState does the same on PostgreSQL (Debian's
// postgresql, a throwaway cluster): the first start creates the databases
// and sets the schema up with the Temporal server's schema tooling, the
// second finds them current and changes nothing.
func TestPostgresRestartKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and a Temporal server twice")
	}
	srv := pgtest.Start(t)
	pg := &Postgres{Addr: srv.Addr, User: srv.User}
	testRestartKeepsState(t, pg)
	main, vis, err := SchemaVersions(*pg)
	if err != nil {
		t.Fatal(err)
	}
	wantMain, wantVis := latestVersion(t, pgSchemaMain), latestVersion(t, pgSchemaVisibility)
	if main != wantMain || vis != wantVis {
		t.Errorf("schema versions %s, %s; want the latest embedded %s, %s", main, vis, wantMain, wantVis)
	}
	if main == "0.0" || main == "" {
		t.Errorf("main schema version %q: update-schema did not run", main)
	}
}

// latestVersion is the highest vX.Y folder of an embedded schema.
func latestVersion(t *testing.T, name string) string {
	t.Helper()
	entries, err := fs.ReadDir(dbschema.Assets(), name+"/versioned")
	if err != nil {
		t.Fatal(err)
	}
	best, bestMaj, bestMin := "", -1, -1
	for _, e := range entries {
		var maj, min int
		if _, err := fmt.Sscanf(e.Name(), "v%d.%d", &maj, &min); err != nil {
			continue
		}
		if maj > bestMaj || maj == bestMaj && min > bestMin {
			best, bestMaj, bestMin = fmt.Sprintf("%d.%d", maj, min), maj, min
		}
	}
	return best
}

func testRestartKeepsState(t *testing.T, pg *Postgres) {
	dir := t.TempDir()
	ctx := context.Background()

	s := startServerOn(t, dir, pg)
	c := dial(t, s)
	w := worker.New(c, "devserver-test", worker.Options{})
	w.RegisterWorkflow(waitForGo)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "survivor", TaskQueue: "devserver-test"}, waitForGo, "got ")
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	// Wait until the first workflow task ran (the query handler exists).
	waitQuery(t, c, "survivor")
	w.Stop()
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DBFileName)); (err != nil) != (pg != nil) {
		t.Fatalf("sqlite file after stop (postgres %v): %v", pg != nil, err)
	}

	s2 := startServerOn(t, dir, pg)
	defer s2.Stop()
	c2 := dial(t, s2)
	defer c2.Close()
	desc, err := c2.DescribeWorkflowExecution(ctx, "survivor", run.GetRunID())
	if err != nil {
		t.Fatalf("describe after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("status after restart = %v, want RUNNING", st)
	}
	w2 := worker.New(c2, "devserver-test", worker.Options{})
	w2.RegisterWorkflow(waitForGo)
	if err := w2.Start(); err != nil {
		t.Fatalf("start worker 2: %v", err)
	}
	defer w2.Stop()
	if err := c2.SignalWorkflow(ctx, "survivor", "", "go", "it"); err != nil {
		t.Fatalf("signal: %v", err)
	}
	var out string
	if err := c2.GetWorkflow(ctx, "survivor", run.GetRunID()).Get(ctx, &out); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if out != "got it" {
		t.Fatalf("result = %q, want %q", out, "got it")
	}
}

func waitQuery(t *testing.T, c client.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := c.QueryWorkflow(ctx, id, "", "seen")
		cancel()
		if err == nil {
			var n int
			if err := v.Get(&n); err == nil && n == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow %s never answered its query: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStartRetriesWhenAPortIsTaken starts a server whose first service
// gRPC port is already held by another listener, as when another process takes
// a picked port before the service listens on it: the server reports that
// as fatal while starting, and Start tries again on fresh ports instead of
// ending the test binary.
func TestStartRetriesWhenAPortIsTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	handedOut := false
	ports := portPicker{grpc: func() (int, error) {
		if !handedOut {
			handedOut = true
			return takenPort, nil
		}
		return freePort()
	}}
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := start(ctx, Options{FrontendAddr: "127.0.0.1:0", DataDir: t.TempDir(), Namespace: "clozeloop-test",
		LogLevel: "fatal", Logger: logger}, ports)
	if err != nil {
		t.Fatalf("start with a taken port: %v", err)
	}
	defer s.Stop()
	if !handedOut {
		t.Fatal("the taken port was never handed out")
	}
	mu.Lock()
	got := logs.String()
	mu.Unlock()
	if !strings.Contains(got, "retrying on fresh ports") || !strings.Contains(got, fmt.Sprintf("127.0.0.1:%d", takenPort)) {
		t.Errorf("log does not report the retry and the taken address:\n%s", got)
	}

	// The second attempt's server works: a workflow runs to completion.
	runWaitForGo(ctx, t, s, "after-retry")
}

// runWaitForGo runs waitForGo as workflow id on s with a worker of its
// own, signals it and checks its result.
func runWaitForGo(ctx context.Context, t *testing.T, s *Server, id string) {
	t.Helper()
	c := dial(t, s)
	defer c.Close()
	w := worker.New(c, "q", worker.Options{})
	w.RegisterWorkflow(waitForGo)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "q"}, waitForGo, "got ")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SignalWorkflow(ctx, run.GetID(), "", "go", "it"); err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil || out != "got it" {
		t.Fatalf("workflow %s: result %q, %v", id, out, err)
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
