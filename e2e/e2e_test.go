// Package e2e holds the multi-process end-to-end test of the production
// topology (make e2e): Temporal on PostgreSQL, a real S3 server, two
// default-queue and two GPU-queue workers and the hook, each its own
// process of bin/clozeloop.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/storeblobs"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/devserver/pgtest"
	"github.com/clozeloop/clozeloop/hook"
	"github.com/clozeloop/clozeloop/metrics"
	"github.com/clozeloop/clozeloop/metrics/metricstest"
	"github.com/clozeloop/clozeloop/models"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3test"
	"github.com/clozeloop/clozeloop/tracing/tracingtest"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

// proc is one clozeloop process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	// done is closed when the process has exited.
	done chan struct{}
}

// cluster is what the test started.
type cluster struct {
	t        *testing.T
	bin      string
	dir      string
	env      []string
	temporal string
	procs    []*proc
}

func (c *cluster) start(name string, args ...string) *proc {
	c.t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	c.procs = append(c.procs, p)
	c.t.Logf("started %s (pid %d): clozeloop %s", name, cmd.Process.Pid, strings.Join(args, " "))
	return p
}

// stop sends sig and waits for the process to exit.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if p.exited() {
		return
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(sig)
	defer func() { t.Logf("%s stopped (%v) in %s", p.name, sig, time.Since(start).Round(time.Millisecond)) }()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop on %v within 60s; killed", p.name, sig)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopAll stops the workers and the hook together (SIGTERM), then the
// Temporal servers, so that workers still reach the server while they stop.
func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, server := range []bool{false, true} {
		for _, p := range c.procs {
			if p.exited() || strings.HasPrefix(p.name, "temporal-server") != server {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop(c.t, syscall.SIGTERM)
			}()
		}
		wg.Wait()
	}
}

func (c *cluster) dumpLogs() {
	for _, p := range c.procs {
		b, _ := os.ReadFile(p.log)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		c.t.Logf("--- %s (tail of %s)\n%s", p.name, p.log, b)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitTCP(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept connections within %s: %v", addr, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMultiProcessRound is the production topology on one machine (see the
// package comment). It runs one round with scoring spread over 16 shards,
// restarts the Temporal server while the round waits for labels, answers
// through the hook, kills the GPU worker that holds the fine-tune with
// SIGKILL once it has uploaded a checkpoint, and checks that the other GPU
// worker resumed from that checkpoint and that every label was persisted
// exactly once.
func TestMultiProcessRound(t *testing.T) {
	bin := os.Getenv("CLOZELOOP_E2E_BIN")
	if bin == "" {
		t.Skip("set CLOZELOOP_E2E_BIN to a built clozeloop (make e2e does)")
	}
	bin, _ = filepath.Abs(bin)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c := &cluster{t: t, bin: bin, dir: dir}
	defer func() {
		c.stopAll()
		if t.Failed() {
			c.dumpLogs()
		}
	}()

	// PostgreSQL and the Temporal server on it.
	pg := pgtest.Start(t)
	c.temporal = freeAddr(t)
	gw := s3test.StartVersityGW(t, nil)
	c.env = append(os.Environ(),
		"CLOZELOOP_TEMPORAL_ADDRESS="+c.temporal, "CLOZELOOP_TEMPORAL_NAMESPACE=default",
		"CLOZELOOP_S3_ENDPOINT="+gw.Direct, "CLOZELOOP_S3_BUCKET="+gw.Bucket, "CLOZELOOP_S3_REGION="+gw.Region,
		"CLOZELOOP_S3_PATH_STYLE=true", "CLOZELOOP_S3_ACCESS_KEY_ID="+gw.AccessKey, "CLOZELOOP_S3_SECRET_ACCESS_KEY="+gw.SecretKey,
		"CLOZELOOP_THREADS=1", "CLOZELOOP_DEVICE=cpu")
	serverArgs := []string{"server", "--addr", c.temporal, "--ui-addr", "", "--postgres", pg.Addr, "--postgres-user", pg.User, "--log-level", "error"}
	server := c.start("temporal-server", serverArgs...)
	waitTCP(t, c.temporal, 2*time.Minute)

	// Data and the starting model in S3 (set up in process: the test's
	// subject is the processes below).
	st, err := store.Open(ctx, store.Config{Endpoint: gw.Direct, Bucket: gw.Bucket, Region: gw.Region, PathStyle: true,
		AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if _, err := dataset.BuildWordNet(ctx, dataset.WordNetOptions{Dir: filepath.Join("..", "dataset", "testdata", "wordnet"), Out: data}); err != nil {
		t.Fatal(err)
	}
	for key, name := range map[string]string{"datasets/e2e/pool.jsonl": dataset.PoolFile, "datasets/e2e/eval.jsonl": dataset.EvalFile} {
		if _, err := st.PutFile(ctx, key, filepath.Join(data, name)); err != nil {
			t.Fatal(err)
		}
	}
	modelDir := filepath.Join(dir, "model")
	if _, err := models.WriteTo(ctx, models.WordNetSmall, modelDir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.UploadDir(ctx, modelDir, "models/e2e-start"); err != nil {
		t.Fatal(err)
	}
	oracle := readOracle(t, filepath.Join(data, dataset.OracleFile))

	// An annotator account (in S3), then the hook and four workers.
	var add struct {
		Token string `json:"token"`
	}
	// annotators finds the store in the CLOZELOOP_S3_* environment.
	addCmd := exec.Command(bin, "annotators", "add", "ann1", "--role", "annotator", "--json")
	addCmd.Env = c.env
	out, err := addCmd.Output()
	if err != nil {
		t.Fatalf("annotators add: %v\n%s", err, out)
	}
	if err := json.Unmarshal(lastJSON(out), &add); err != nil || add.Token == "" {
		t.Fatalf("annotators add printed %s (%v)", out, err)
	}
	// Every process sends its spans to one OTLP/HTTP collector.
	otlp := tracingtest.Start(t)
	hookAddr, hookMetrics := freeAddr(t), freeAddr(t)
	c.start("hook", "hook", "--addr", hookAddr, "--temporal", c.temporal, "--accounts-ttl", "1s", "--metrics-listen", hookMetrics,
		"--otlp-endpoint", otlp.URL)
	type worker struct {
		p       *proc
		metrics string
	}
	// The workers join worker versioning as one build, made the
	// deployment's current version once they poll both queues.
	const buildID = "e2e-v1"
	var def, gpu []worker
	for i := range 2 {
		m := freeAddr(t)
		def = append(def, worker{c.start(fmt.Sprintf("worker-default-%d", i+1), "worker", "--queues", "default", "--identity", fmt.Sprintf("default-%d", i+1), "--build-id", buildID,
			"--cache-dir", filepath.Join(dir, fmt.Sprintf("cache-d%d", i+1)), "--metrics-listen", m, "--otlp-endpoint", otlp.URL), "http://" + m + "/metrics"})
	}
	for i := range 2 {
		m := freeAddr(t)
		gpu = append(gpu, worker{c.start(fmt.Sprintf("worker-gpu-%d", i+1), "worker", "--queues", "gpu", "--identity", fmt.Sprintf("gpu-%d", i+1), "--build-id", buildID,
			"--cache-dir", filepath.Join(dir, fmt.Sprintf("cache-g%d", i+1)), "--heartbeat-throttle", "1s", "--metrics-listen", m, "--otlp-endpoint", otlp.URL), "http://" + m + "/metrics"})
	}
	waitTCP(t, hookAddr, time.Minute)
	setCurrent := exec.Command(bin, "deployment", "set-current", "--build-id", buildID, "--wait", "2m", "--json")
	setCurrent.Env = c.env
	if out, err := setCurrent.CombinedOutput(); err != nil {
		t.Fatalf("deployment set-current: %v\n%s", err, out)
	} else {
		t.Logf("deployment set-current: %s", bytes.TrimSpace(lastJSON(out)))
	}

	// One round: 8 shards, 6 items, a long fine-tune with a checkpoint
	// every 20 steps and a 15 s heartbeat timeout.
	const ckptEvery = 20
	cfg := workflows.RunConfig{RunID: "e2e-1", Dataset: "wordnet-testdata", PoolURI: "datasets/e2e/pool.jsonl", PoolShards: 16,
		EvalURI: "datasets/e2e/eval.jsonl", ModelURI: "models/e2e-start", Strategy: "entropy", BatchSize: 6, Quorum: 1,
		RoundDeadline: workflows.Duration(time.Hour), MinLabels: 1, Budget: workflows.Budget{MaxRounds: 1},
		FineTune: workflows.FineTuneSettings{MaxSteps: 300, BatchSize: 4, LearningRate: 1e-5, Seed: 1,
			CheckpointEvery: ckptEvery, HeartbeatTimeout: workflows.Duration(15 * time.Second)}}
	cfgPath := filepath.Join(dir, "run.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	startCmd := exec.Command(bin, "start", "--config", cfgPath, "--json", "--otlp-endpoint", otlp.URL)
	startCmd.Env = c.env
	if out, err := startCmd.CombinedOutput(); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	api := &hook.Client{BaseURL: "http://" + hookAddr, Token: add.Token}
	batch := waitBatch(ctx, t, api, cfg.RunID)
	t.Logf("round %d open with %d items", batch.Round, len(batch.Items))

	// Both default workers scored shards.
	for _, w := range def {
		m, err := metricstest.Scrape(w.metrics)
		if err != nil {
			t.Fatal(err)
		}
		if m[metrics.ItemsScored] <= 0 {
			t.Errorf("%s scored no item (%s = %v): scoring was not spread over the workers", w.p.name, metrics.ItemsScored, m[metrics.ItemsScored])
		} else {
			t.Logf("%s scored %.0f items", w.p.name, m[metrics.ItemsScored])
		}
	}

	// Restart the Temporal server while the round waits for labels.
	server.stop(t, syscall.SIGTERM)
	t.Log("stopped the Temporal server (SIGTERM) while the round waits for labels")
	c.start("temporal-server-2", serverArgs...)
	waitTCP(t, c.temporal, 2*time.Minute)
	batch = waitBatch(ctx, t, api, cfg.RunID)
	t.Logf("after the restart the round is still open: %d items", len(batch.Items))

	// Answer every item through the hook.
	req := hook.LabelsRequest{Round: batch.Round}
	for _, it := range batch.Items {
		if gold, ok := oracle[it.ItemID]; ok {
			req.Labels = append(req.Labels, hook.ItemLabel{ItemID: it.ItemID, Answers: gold})
		}
	}
	if len(req.Labels) == 0 {
		t.Fatal("no gold answers for the batch")
	}
	res, err := api.SubmitLabels(ctx, cfg.RunID, req)
	if err != nil {
		t.Fatalf("submit labels: %v", err)
	}
	// The same answers again: accepted or refused, they must not count twice.
	if _, err := api.SubmitLabels(ctx, cfg.RunID, req); err != nil {
		t.Logf("resubmission refused as expected: %v", err)
	}
	t.Logf("submitted %d answers (counted %d, round complete %v)", len(req.Labels), res.Counted, res.RoundComplete)

	// Kill the GPU worker that trains, once it is past two checkpoints.
	var killed, survivor worker
	var killedAt float64
	for killed.p == nil {
		if ctx.Err() != nil {
			t.Fatal("no GPU worker started training")
		}
		for i, w := range gpu {
			m, err := metricstest.Scrape(w.metrics)
			if err != nil {
				continue
			}
			if steps := m[metrics.TrainSteps]; steps >= 5*ckptEvery {
				killed, survivor, killedAt = w, gpu[1-i], steps
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	killed.p.stop(t, syscall.SIGKILL)
	t.Logf("killed %s (SIGKILL) at fine-tune step %.0f; %s should resume from its last checkpoint", killed.p.name, killedAt, survivor.p.name)

	// The run finishes; read its history.
	tc, err := client.Dial(client.Options{HostPort: c.temporal, Namespace: "default", Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	var result workflows.Result
	if err := tc.GetWorkflow(ctx, cfg.RunID, "").Get(ctx, &result); err != nil {
		t.Fatalf("run %s: %v", cfg.RunID, err)
	}
	t.Logf("run finished: %s, %d rounds, %d labels", result.StopReason, result.Rounds, result.LabelsTotal)
	checkVersioning(ctx, t, tc, c.env, bin, cfg.RunID, buildID)
	if os.Getenv("CLOZELOOP_RECORD_HISTORIES") == "1" {
		recordChain(ctx, t, tc, cfg.RunID)
	}
	ft := fineTuneOutputs(ctx, t, tc, cfg.RunID)
	if len(ft) != 1 {
		t.Fatalf("%d FineTune results in the history, want 1", len(ft))
	}
	if ft[0].ResumedFromStep < ckptEvery || float64(ft[0].ResumedFromStep) > killedAt {
		t.Errorf("fine-tune resumed from step %d, want a checkpoint (multiple of %d) at or before the kill at step %.0f",
			ft[0].ResumedFromStep, ckptEvery, killedAt)
	} else {
		t.Logf("the fine-tune resumed from step %d on %s and ended at step %d", ft[0].ResumedFromStep, survivor.p.name, ft[0].Steps)
	}
	sm, err := metricstest.Scrape(survivor.metrics)
	if err != nil || sm[metrics.TrainSteps] <= 0 {
		t.Errorf("%s trained no step after the kill (%v)", survivor.p.name, err)
	}

	// Every label persisted exactly once.
	set, err := activities.LoadLabelSet(ctx, storeblobs.Blobs{S: st}, result.LabelSetURI)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ex := range set.Examples {
		seen[ex.ItemID]++
	}
	for _, l := range req.Labels {
		if seen[l.ItemID] != 1 {
			t.Errorf("item %s persisted %d times, want once", l.ItemID, seen[l.ItemID])
		}
	}
	if len(set.Examples) != len(req.Labels) || result.LabelsTotal != len(req.Labels) {
		t.Errorf("label set has %d examples, run counts %d labels; %d were answered", len(set.Examples), result.LabelsTotal, len(req.Labels))
	}

	// The metrics of every process still up, together: each of package
	// metrics moved (the S3 errors may stay at zero), and every query of
	// the Grafana dashboard names a metric they export.
	hm, err := metricstest.Scrape("http://" + hookMetrics + "/metrics")
	if err != nil || hm[metrics.Labels] <= 0 {
		t.Errorf("hook metrics: %s = %v (%v)", metrics.Labels, hm[metrics.Labels], err)
	}
	all := map[string]float64{}
	for _, url := range []string{"http://" + hookMetrics + "/metrics", def[0].metrics, def[1].metrics, survivor.metrics} {
		m, err := metricstest.Scrape(url)
		if err != nil {
			t.Errorf("scrape %s: %v", url, err)
			continue
		}
		for k, v := range m {
			all[k] += v
		}
	}
	for name := range metrics.Names() {
		if _, ok := all[name]; !ok || (all[name] <= 0 && name != metrics.S3Errors) {
			t.Errorf("metric %s = %v over the running processes, want > 0", name, all[name])
		}
	}
	for _, name := range []string{metrics.TrainTokens, metrics.TrainLoss, "temporal_activity_execution_latency_seconds"} {
		if sm[name] <= 0 {
			t.Errorf("%s: %s = %v", survivor.p.name, name, sm[name])
		}
	}
	metricstest.CheckDashboard(t, all, filepath.Join("..", "deploy", "grafana", "clozeloop-dashboard.json"))
	checkTraces(t, otlp, []string{"default-1", "default-2"}, strings.TrimPrefix(survivor.p.name, "worker-"))
	t.Logf("scraped %d series names from 4 processes; the dashboard's queries all name exported metrics", len(all))
}

// checkTraces checks the spans the processes sent (batched, so it waits
// a little): the run's trace starts at `clozeloop start` and holds the
// workflow on a default worker, scoring shards on both default workers and
// the fine-tune on the surviving GPU worker; the label submission's trace
// starts at the hook's HTTP request and reaches the workflow's update
// handler on a default worker.
func checkTraces(t *testing.T, col *tracingtest.Collector, defaults []string, survivor string) {
	t.Helper()
	type want struct{ name, service, instance string }
	inTrace := func(spans []tracingtest.Span, w want) bool {
		for _, s := range spans {
			if s.Name == w.name && s.Service == w.service && (w.instance == "" || s.Instance == w.instance) {
				return true
			}
		}
		return false
	}
	var problems []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		problems = problems[:0]
		var runTrace []tracingtest.Span
		var labelTraces [][]tracingtest.Span // the accepted submission and the refused resubmission
		for _, s := range col.Spans() {
			switch {
			case s.ParentID == "" && s.Name == "StartWorkflow:"+workflows.ActiveLearningName && s.Service == "clozeloop-cli":
				runTrace = col.Trace(s.TraceID)
			case s.ParentID == "" && s.Service == "clozeloop-hook" && s.Name == "POST /api/v1/runs/{run}/labels":
				labelTraces = append(labelTraces, col.Trace(s.TraceID))
			}
		}
		if runTrace == nil {
			problems = append(problems, "no trace rooted at clozeloop start's StartWorkflow span")
		}
		wants := []want{{"RunWorkflow:" + workflows.ActiveLearningName, "clozeloop-worker", ""},
			{"RunActivity:" + workflows.ActivityFineTune, "clozeloop-worker", survivor}}
		for _, d := range defaults {
			wants = append(wants, want{"RunActivity:" + workflows.ActivityScoreShard, "clozeloop-worker", d})
		}
		for _, w := range wants {
			if runTrace != nil && !inTrace(runTrace, w) {
				problems = append(problems, fmt.Sprintf("run trace lacks %s from %s %s", w.name, w.service, w.instance))
			}
		}
		var labelTrace []tracingtest.Span
		for _, lt := range labelTraces {
			if inTrace(lt, want{"UpdateWorkflow:" + workflows.UpdateSubmitLabels, "clozeloop-hook", ""}) &&
				inTrace(lt, want{"ValidateUpdate:" + workflows.UpdateSubmitLabels, "clozeloop-worker", ""}) &&
				inTrace(lt, want{"HandleUpdate:" + workflows.UpdateSubmitLabels, "clozeloop-worker", ""}) {
				labelTrace = lt
			}
		}
		if labelTrace == nil {
			problems = append(problems, fmt.Sprintf("none of the %d traces rooted at the hook's labels requests links UpdateWorkflow (hook) to ValidateUpdate and HandleUpdate (a worker)", len(labelTraces)))
		}
		if len(problems) == 0 {
			t.Logf("traces: the run's (%d spans) links clozeloop start, both default workers' scoring and %s's fine-tune; the labels request's (%d spans) links the hook to the workflow's update handler",
				len(runTrace), survivor, len(labelTrace))
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	names := map[string]int{}
	for _, s := range col.Spans() {
		names[s.Service+"/"+s.Instance+" "+s.Name]++
	}
	t.Errorf("traces: %s\nspans received: %v", strings.Join(problems, "; "), names)
}

// checkVersioning checks that the run was pinned to the workers' build and
// that `clozeloop deployment describe` shows that build as current (it
// survived the server restart) with no open run left on it.
func checkVersioning(ctx context.Context, t *testing.T, tc client.Client, env []string, bin, run, buildID string) {
	t.Helper()
	d, err := tc.DescribeWorkflowExecution(ctx, run, "")
	if err != nil {
		t.Fatal(err)
	}
	vi := d.GetWorkflowExecutionInfo().GetVersioningInfo()
	if vi.GetBehavior() != enumspb.VERSIONING_BEHAVIOR_PINNED || vi.GetDeploymentVersion().GetBuildId() != buildID {
		t.Errorf("run %s: versioning %v on %q, want pinned to %s", run, vi.GetBehavior(), vi.GetDeploymentVersion().GetBuildId(), buildID)
	}
	var st workers.DeploymentStatus
	for range 20 {
		cmd := exec.Command(bin, "deployment", "describe", "--json")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("deployment describe: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &st); err != nil { // stdout holds only the JSON
			t.Fatalf("deployment describe printed %s: %v", out, err)
		}
		if len(st.Versions) == 1 && len(st.Versions[0].OpenRuns) == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st.CurrentBuildID != buildID || len(st.Versions) != 1 || st.Versions[0].Status != "current" || len(st.Versions[0].OpenRuns) != 0 {
		t.Errorf("deployment describe: %+v, want %s current with no open runs", st, buildID)
	} else {
		t.Logf("run %s was pinned to %s:%s, still the current version after the server restart", run, st.Deployment, buildID)
	}
}

// waitBatch polls the hook until the run's round is open.
func waitBatch(ctx context.Context, t *testing.T, api *hook.Client, run string) workflows.BatchView {
	t.Helper()
	var last error
	for {
		b, err := api.Batch(ctx, run)
		if err == nil && b.Open && len(b.Items) > 0 {
			return b
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("round of %s never opened: %v", run, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// chainHistories returns the histories of every run of the chain id,
// oldest first (walked back from the latest run through each run's
// continued-from run).
func chainHistories(ctx context.Context, t *testing.T, tc client.Client, id string) []*historypb.History {
	t.Helper()
	var chain []*historypb.History
	runID := ""
	for {
		h := &historypb.History{}
		prev := ""
		it := tc.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
				prev = a.GetContinuedExecutionRunId()
			}
			h.Events = append(h.Events, ev)
		}
		chain = append([]*historypb.History{h}, chain...)
		if prev == "" {
			return chain
		}
		runID = prev
	}
}

// fineTuneOutputs decodes the results of the FineTune activities of the
// chain id.
func fineTuneOutputs(ctx context.Context, t *testing.T, tc client.Client, id string) []workflows.FineTuneOutput {
	t.Helper()
	var outs []workflows.FineTuneOutput
	dc := converter.GetDefaultDataConverter()
	for _, h := range chainHistories(ctx, t, tc, id) {
		scheduled := map[int64]string{}
		for _, ev := range h.Events {
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
				scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
			}
			if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == workflows.ActivityFineTune {
				var o workflows.FineTuneOutput
				if err := dc.FromPayloads(a.GetResult(), &o); err != nil {
					t.Fatal(err)
				}
				outs = append(outs, o)
			}
		}
	}
	return outs
}

// recordChain writes the histories of every run of the chain id to
// workflows/testdata/<id>-run<n>.json (oldest first), for
// workflows.TestReplayRecordedHistories.
func recordChain(ctx context.Context, t *testing.T, tc client.Client, id string) {
	t.Helper()
	for i, h := range chainHistories(ctx, t, tc, id) {
		data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "workflows", "testdata", fmt.Sprintf("%s-run%d.json", id, i+1))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d events)", path, len(h.Events))
	}
}

func readOracle(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r struct {
			ID   string   `json:"id"`
			Gold []string `json:"gold"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out[r.ID] = r.Gold
	}
	return out
}

// lastJSON returns the last line of out that looks like a JSON object (the
// command may log before it).
func lastJSON(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if bytes.HasPrefix(bytes.TrimSpace(lines[i]), []byte("{")) {
			return bytes.Join(lines[i:], []byte("\n"))
		}
	}
	return out
}

// quiet is a silent SDK logger.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
