package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/activities/storeblobs"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/devserver"
	"github.com/clozeloop/clozeloop/hook"
	"github.com/clozeloop/clozeloop/metrics"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/models"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workers/engine"
	"github.com/clozeloop/clozeloop/workflows"
)

// Accounts that `clozeloop dev` creates.
const (
	devAdminName     = "dev-admin"
	devDemoAnnotator = "demo-annotator"
)

// Object-store keys of the dev demo.
const (
	demoPoolKey  = "datasets/wordnet/" + dataset.PoolFile
	demoEvalKey  = "datasets/wordnet/" + dataset.EvalFile
	demoModelKey = "models/demo-start"
)

// devOptions configure runDev.
type devOptions struct {
	dataDir      string
	temporalAddr string
	uiAddr       string
	s3Addr       string
	hookAddr     string
	metricsAddr  string
	// s3, when set, is an S3 store to use instead of the embedded server.
	s3           *store.Config
	namespace    string
	modelDir     string
	wordnetDir   string
	demo         bool
	demoAnnotate bool
	demoRounds   int
	demoBatch    int
	asJSON       bool
	// newActivities builds the activities over the embedded store; tests
	// replace it with a deterministic engine.
	newActivities func(ctx context.Context, env *cmdEnv, blobs activities.Blobs) (*activities.Activities, error)
	// beforeStop, when set, is called with what was printed just before
	// a --demo-annotate run shuts everything down (tests scrape metrics).
	beforeStop func(devInfo)
}

// devInfo is what `clozeloop dev` prints once everything runs.
type devInfo struct {
	TemporalAddr string `json:"temporal_addr"`
	Namespace    string `json:"namespace"`
	WebUI        string `json:"web_ui,omitempty"`
	S3Endpoint   string `json:"s3_endpoint"`
	S3Bucket     string `json:"s3_bucket"`
	Hook         string `json:"hook"`
	// Metrics is the Prometheus endpoint of the workers and the hook.
	Metrics string `json:"metrics,omitempty"`
	Workers bool   `json:"workers"`
	// WorkersError says why no worker runs (the model engine is missing).
	WorkersError string `json:"workers_error,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	AnnotateURL  string `json:"annotate_url,omitempty"`

	// The embedded S3 server's keys (also in S3CredentialsFile); empty with
	// --s3-endpoint.
	S3AccessKeyID     string `json:"s3_access_key_id,omitempty"`
	S3SecretAccessKey string `json:"s3_secret_access_key,omitempty"`
	S3CredentialsFile string `json:"s3_credentials_file,omitempty"`
	// Admin and AdminToken are the dev admin account and its token, new at
	// every start (the previous one is replaced); SignInURL signs the page
	// in with it (the token is in the URL fragment, which browsers do not
	// send to the server, so it reaches no log).
	Admin       string `json:"admin"`
	AdminToken  string `json:"admin_token"`
	SignInURL   string `json:"sign_in_url"`
	Model       string `json:"model,omitempty"`
	ModelSource string `json:"model_source,omitempty"`
	DataDir     string `json:"data_dir"`
}

// devResult is printed (with --json) when a --demo-annotate run finishes.
type devResult struct {
	RunID  string            `json:"run_id"`
	Result *workflows.Result `json:"result"`
}

func devCmd() command {
	return command{
		name:    "dev",
		summary: "run everything embedded: Temporal + Web UI, S3, workers, hook and a demo run",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "dev", "[--data DIR] [addresses] [--model DIR] [--demo=true] [--demo-annotate] [--demo-rounds N] [--json]")
			o := devOptions{newActivities: engineActivities}
			fs.StringVar(&o.dataDir, "data", "./clozeloop-data", "data folder: Temporal SQLite file, S3 objects, data set, models")
			fs.StringVar(&o.temporalAddr, "temporal-addr", "127.0.0.1:7233", "Temporal frontend listen address")
			fs.StringVar(&o.uiAddr, "ui-addr", "127.0.0.1:8233", "Temporal Web UI listen address (empty: no UI)")
			fs.StringVar(&o.s3Addr, "s3-addr", "127.0.0.1:9000", "embedded S3 listen address (loopback only)")
			fs.StringVar(&o.hookAddr, "hook-addr", "127.0.0.1:8080", "annotation page and API listen address")
			var ext store.Config
			fs.StringVar(&ext.Endpoint, "s3-endpoint", "", "use this S3 endpoint instead of the embedded server (with --s3-bucket; keys from CLOZELOOP_S3_ACCESS_KEY_ID/_SECRET_ACCESS_KEY or the AWS chain)")
			fs.StringVar(&ext.Bucket, "s3-bucket", "", "bucket of --s3-endpoint (it must exist)")
			fs.StringVar(&ext.Region, "s3-region", "us-east-1", "signing region of --s3-endpoint")
			fs.BoolVar(&ext.PathStyle, "s3-path-style", true, "path-style URLs for --s3-endpoint")
			fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9464", "Prometheus metrics of the workers and the hook at http://ADDR/metrics (loopback only; empty: none)")
			fs.StringVar(&o.namespace, "namespace", devserver.DefaultNamespace, "Temporal namespace")
			fs.StringVar(&o.modelDir, "model", "", "starting model folder (Hugging Face layout) or Hugging Face Hub model hf://org/name[@revision]; default DATA/models/start, where the shipped wordnet-small model (a small BERT pretrained on WordNet) is written when the folder holds no model or an older copy of it")
			fs.StringVar(&o.wordnetDir, "wordnet-dir", dataset.DefaultWordNetDir, "WordNet files for the demo data set (Debian package wordnet-base)")
			fs.BoolVar(&o.demo, "demo", true, "build the WordNet data set if missing and start a demo active-learning run")
			fs.BoolVar(&o.demoAnnotate, "demo-annotate", false, "answer every batch from the gold answers through the hook's API, exit after --demo-rounds rounds")
			fs.IntVar(&o.demoRounds, "demo-rounds", 2, "rounds of the demo run")
			fs.IntVar(&o.demoBatch, "demo-batch", 8, "items per round of the demo run")
			fs.BoolVar(&o.asJSON, "json", false, "print addresses and results as JSON")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return usagef("dev takes no arguments, got %q", fs.Args())
			}
			if o.demoAnnotate && !o.demo {
				return usagef("--demo-annotate needs --demo")
			}
			for _, a := range []struct{ flag, addr string }{{"--temporal-addr", o.temporalAddr}, {"--ui-addr", o.uiAddr}} {
				if err := checkUnauthenticatedListen(a.flag, a.addr, false,
					"dev is for one machine: for a shared Temporal use clozeloop server (--allow-unauthenticated on a private network) or a Temporal cluster with mTLS"); err != nil {
					return err
				}
			}
			if o.demoRounds < 1 || o.demoBatch < 1 {
				return usagef("--demo-rounds and --demo-batch must be at least 1")
			}
			if ext.Endpoint != "" || ext.Bucket != "" {
				if ext.Endpoint == "" || ext.Bucket == "" {
					return usagef("--s3-endpoint and --s3-bucket go together")
				}
				env, err := store.ConfigFromEnv()
				if err != nil {
					return usagef("%v", err)
				}
				ext.AccessKeyID, ext.SecretAccessKey = env.AccessKeyID, env.SecretAccessKey
				o.s3 = &ext
			}
			dir, _, err := resolveModel(ctx, env, o.modelDir)
			if err != nil {
				return err
			}
			o.modelDir = dir
			return runDev(ctx, env, o)
		},
	}
}

// engineActivities builds the production activities: the model engine
// (workers/engine) on the embedded S3 store behind blobs, with the device,
// threads and cache folder of the worker command (CLOZELOOP_DEVICE,
// CLOZELOOP_THREADS, CLOZELOOP_CACHE_DIR).
func engineActivities(ctx context.Context, env *cmdEnv, blobs activities.Blobs) (*activities.Activities, error) {
	sb, ok := blobs.(storeblobs.Blobs)
	if !ok || sb.S == nil {
		return nil, fmt.Errorf("the model engine needs the S3 store, got %T", blobs)
	}
	s, err := engineSettingsFromEnv()
	if err != nil {
		return nil, err
	}
	if err := s.runtime.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return engine.NewActivities(ctx, engine.Options{Store: sb.S, CacheDir: s.cacheDir,
		Device: s.runtime.Device.String(), Threads: s.runtime.Threads, Logger: env.log})
}

// runDev starts everything, optionally runs the demo, and serves until ctx
// ends (or the scripted demo finishes). Shutdown is in reverse order, the
// workers first so that running activities can heartbeat.
func runDev(ctx context.Context, env *cmdEnv, o devOptions) (err error) {
	log := env.log
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("data folder %s: %w", o.dataDir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data folder %s: %w", dir, err)
	}
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil {
				log.Error("shutdown", "err", cerr)
				if err == nil {
					err = cerr
				}
			}
		}
	}()

	// One metrics registry for the workers and the hook of this process.
	var reg *metrics.Registry
	metricsURL := ""
	if o.metricsAddr != "" {
		if reg, err = metrics.New(log); err != nil {
			return err
		}
		ms, err := metrics.Listen(o.metricsAddr, "", reg, log)
		if err != nil {
			reg.Close()
			return err
		}
		metricsURL = ms.URL()
		cleanups = append(cleanups, func() error {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := ms.Shutdown(sctx)
			reg.Close()
			return err
		})
	}

	ts, err := devserver.Start(ctx, devserver.Options{FrontendAddr: o.temporalAddr, UIAddr: o.uiAddr,
		DataDir: filepath.Join(dir, "temporal"), Namespace: o.namespace, Logger: log})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, ts.Stop)

	info := devInfo{DataDir: dir}
	var stCfg store.Config
	if o.s3 != nil {
		stCfg = *o.s3
		info.S3Endpoint, info.S3Bucket = stCfg.Endpoint, stCfg.Bucket
	} else {
		// The embedded S3 server requires signed requests: its keys are
		// made on the first start, kept in DATA/s3/credentials.json (mode
		// 0600) and given to this process's clients.
		s3Creds, _, err := s3embed.LoadOrCreateCredentials(filepath.Join(dir, "s3", s3embed.CredentialsFile))
		if err != nil {
			return fmt.Errorf("embedded S3 keys: %w", err)
		}
		s3srv, err := s3embed.Start(ctx, o.s3Addr, filepath.Join(dir, "s3"), s3embed.WithLogger(log), s3embed.WithCredentials(s3Creds))
		if err != nil {
			return fmt.Errorf("start embedded S3: %w", err)
		}
		cleanups = append(cleanups, s3srv.Close)
		stCfg = store.Config{Endpoint: s3srv.Endpoint(), Bucket: s3srv.Bucket(), Region: s3embed.Region, PathStyle: true,
			AccessKeyID: s3Creds.AccessKeyID, SecretAccessKey: s3Creds.SecretAccessKey}
		info.S3Endpoint, info.S3Bucket = s3srv.Endpoint(), s3srv.Bucket()
		info.S3AccessKeyID, info.S3SecretAccessKey = s3Creds.AccessKeyID, s3Creds.SecretAccessKey
		info.S3CredentialsFile = filepath.Join(dir, "s3", s3embed.CredentialsFile)
	}
	if reg != nil {
		stCfg.HTTPClient = &http.Client{Transport: reg.S3Transport(nil)}
	}
	st, err := store.Open(ctx, stCfg, log)
	if err != nil {
		return fmt.Errorf("open S3 store: %w", err)
	}
	if o.s3 != nil {
		if err := st.CheckBucket(ctx); err != nil {
			return fmt.Errorf("S3 store %s: %w", stCfg.Endpoint, err)
		}
	}

	c, err := workers.Dial(ctx, workers.ClientOptions{Address: ts.FrontendAddr(), Namespace: ts.Namespace(), Identity: "clozeloop-dev",
		MetricsHandler: reg.Temporal()}, log)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() error { c.Close(); return nil })

	info.TemporalAddr, info.Namespace = ts.FrontendAddr(), ts.Namespace()
	if ts.UIAddr() != "" {
		info.WebUI = "http://" + ts.UIAddr()
	}

	// The hook, with accounts in the store: a fresh admin token at every
	// start (only its hash is stored; the previous token stops working).
	accounts := hook.S3Accounts{Store: st}
	admin, adminTok, err := hook.EnsureAccount(ctx, accounts, devAdminName, hook.RoleAdmin, "clozeloop dev")
	if err != nil {
		return fmt.Errorf("create the dev admin account: %w", err)
	}
	info.Admin, info.AdminToken = admin.Name, adminTok
	hopts := hook.Options{Logger: log.With("component", "hook"), Auth: hook.AuthOptions{Accounts: accounts}}
	if reg != nil {
		hopts.Metrics = reg
		info.Metrics = metricsURL
	}
	h, err := hook.New(hook.NewTemporalBackend(c, ts.Namespace(), nil), hopts)
	if err != nil {
		return err
	}
	hs, err := startHTTP(o.hookAddr, h, log)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() error { return hs.Shutdown(10 * time.Second) })
	info.Hook = "http://" + hs.Addr()
	info.SignInURL = info.Hook + "/signin#token=" + adminTok

	// The workers (stopped first on shutdown: appended last).
	acts, aerr := o.newActivities(ctx, env, storeblobs.Blobs{S: st})
	if aerr != nil {
		info.WorkersError = aerr.Error()
		log.Warn("no workers started: runs will wait for a worker", "reason", aerr)
	} else {
		if reg != nil && acts.Observer == nil {
			acts.Observer = reg
		}
		ws, err := workers.New(c, acts, workers.Options{Queues: []string{"default", "gpu"}, StopTimeout: 30 * time.Second, Identity: "clozeloop-dev"})
		if err != nil {
			return err
		}
		for _, w := range ws {
			if err := w.Start(); err != nil {
				return fmt.Errorf("start worker: %w", err)
			}
			cleanups = append(cleanups, stopWorker(w))
		}
		info.Workers = true
	}

	var run client.WorkflowRun
	var oracle map[string][]string
	if o.demo {
		if o.demoAnnotate && aerr != nil {
			return fmt.Errorf("--demo-annotate needs workers, and none runs: %w", aerr)
		}
		var cfg workflows.RunConfig
		cfg, oracle, info.ModelSource, err = prepareDemo(ctx, log, st, dir, o)
		if err != nil {
			return err
		}
		run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: cfg.RunID, TaskQueue: workflows.DefaultTaskQueue,
			Memo: map[string]any{"dataset": cfg.Dataset, "model": cfg.ModelURI, "strategy": cfg.Strategy}}, workflows.ActiveLearningName, cfg)
		if err != nil {
			return fmt.Errorf("start demo run %s: %w", cfg.RunID, err)
		}
		info.RunID, info.Model = cfg.RunID, cfg.ModelURI
		info.AnnotateURL = info.Hook + "/runs/" + cfg.RunID
		info.SignInURL = info.AnnotateURL + "#token=" + adminTok
	}
	if err := printDevInfo(env.stdout, info, o.asJSON); err != nil {
		return err
	}

	if o.demoAnnotate {
		// The demo annotator has an account of its own (annotator role);
		// the admin token closes a round that it cannot answer.
		_, demoTok, err := hook.EnsureAccount(ctx, accounts, devDemoAnnotator, hook.RoleAnnotator, "clozeloop dev")
		if err != nil {
			return fmt.Errorf("create the demo annotator account: %w", err)
		}
		res, err := annotateDemo(ctx, log, &hook.Client{BaseURL: info.Hook, Token: demoTok}, &hook.Client{BaseURL: info.Hook, Token: adminTok}, run, oracle)
		if err != nil {
			return err
		}
		if o.beforeStop != nil {
			o.beforeStop(info)
		}
		if o.asJSON {
			return writeJSON(env.stdout, devResult{RunID: info.RunID, Result: res})
		}
		fmt.Fprintf(env.stdout, "demo run %s finished after %d round(s): %s; model %s, %d labels\n",
			res.RunID, res.Rounds, res.StopReason, res.ModelURI, res.LabelsTotal)
		return nil
	}
	<-ctx.Done()
	log.Info("shutting down: workers, hook, S3, Temporal")
	return nil
}

func stopWorker(w worker.Worker) func() error {
	return func() error { w.Stop(); return nil }
}

func printDevInfo(w io.Writer, info devInfo, asJSON bool) error {
	if asJSON {
		return writeJSON(w, info)
	}
	fmt.Fprintf(w, "clozeloop dev is running (data in %s)\n", info.DataDir)
	fmt.Fprintf(w, "  Temporal:        %s (namespace %s)\n", info.TemporalAddr, info.Namespace)
	if info.WebUI != "" {
		fmt.Fprintf(w, "  Temporal Web UI: %s\n", info.WebUI)
	}
	if info.S3CredentialsFile == "" {
		fmt.Fprintf(w, "  S3 endpoint:     %s (bucket %s; your store, not the embedded one)\n", info.S3Endpoint, info.S3Bucket)
	} else {
		fmt.Fprintf(w, "  S3 endpoint:     %s (bucket %s; signed requests only, keys in %s)\n", info.S3Endpoint, info.S3Bucket, info.S3CredentialsFile)
		printS3Env(w, info.S3Endpoint, info.S3Bucket, s3embed.Credentials{AccessKeyID: info.S3AccessKeyID, SecretAccessKey: info.S3SecretAccessKey})
	}
	fmt.Fprintf(w, "  annotation page: %s/\n", info.Hook)
	if info.Metrics != "" {
		fmt.Fprintf(w, "  metrics:         %s\n", info.Metrics)
	}
	fmt.Fprintf(w, "  sign in (admin): %s\n", info.SignInURL)
	fmt.Fprintf(w, "  admin token:     %s (%s; new at each start, the previous one no longer works)\n", info.AdminToken, info.Admin)
	if info.Workers {
		fmt.Fprintln(w, "  workers:         clozeloop-default, clozeloop-gpu")
	} else {
		fmt.Fprintf(w, "  workers:         NONE (%s)\n", info.WorkersError)
	}
	if info.RunID != "" {
		fmt.Fprintf(w, "  demo run:        %s (model %s: %s)\n", info.RunID, info.Model, info.ModelSource)
		fmt.Fprintf(w, "  annotate it at:  %s (the sign-in link above opens it)\n", info.AnnotateURL)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	return nil
}

// prepareDemo builds the WordNet data set if missing, uploads pool, eval
// and the starting model, and returns the run config and the pool's gold
// answers (for --demo-annotate).
func prepareDemo(ctx context.Context, log *slog.Logger, st *store.Store, dir string, o devOptions) (workflows.RunConfig, map[string][]string, string, error) {
	var cfg workflows.RunConfig
	dataDir := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(dataDir, dataset.PoolFile)); errors.Is(err, os.ErrNotExist) {
		log.Info("building the WordNet demo data set", "wordnet", o.wordnetDir, "out", dataDir)
		if _, err := dataset.BuildWordNet(ctx, dataset.WordNetOptions{Dir: o.wordnetDir, Out: dataDir}); err != nil {
			return cfg, nil, "", fmt.Errorf("build the WordNet demo data set from %s (install wordnet-base or pass --wordnet-dir): %w", o.wordnetDir, err)
		}
	} else if err != nil {
		return cfg, nil, "", fmt.Errorf("check demo data set %s: %w", dataDir, err)
	}
	for key, name := range map[string]string{demoPoolKey: dataset.PoolFile, demoEvalKey: dataset.EvalFile} {
		if _, err := st.PutFile(ctx, key, filepath.Join(dataDir, name)); err != nil {
			return cfg, nil, "", fmt.Errorf("upload demo %s: %w", name, err)
		}
	}
	oracle, err := readOracle(filepath.Join(dataDir, dataset.OracleFile))
	if err != nil {
		return cfg, nil, "", err
	}

	modelDir, source, err := startModel(ctx, log, dir, o.modelDir)
	if err != nil {
		return cfg, nil, "", err
	}
	if _, _, err := st.UploadDir(ctx, modelDir, demoModelKey); err != nil {
		return cfg, nil, "", fmt.Errorf("upload starting model %s: %w", modelDir, err)
	}
	log.Info("demo starting model", "dir", modelDir, "key", demoModelKey, "source", source)

	cfg = workflows.RunConfig{
		RunID: "demo-" + time.Now().UTC().Format("20060102-150405"), Dataset: "wordnet",
		PoolURI: demoPoolKey, EvalURI: demoEvalKey, ModelURI: demoModelKey, Strategy: "entropy",
		BatchSize: o.demoBatch, Quorum: 1, RoundDeadline: workflows.Duration(24 * time.Hour), MinLabels: 1,
		Budget:   workflows.Budget{MaxRounds: o.demoRounds},
		FineTune: workflows.FineTuneSettings{Epochs: 1, BatchSize: 8, LearningRate: 5e-5, Seed: 1},
	}
	return cfg, oracle, source, nil
}

// startModel returns the folder of the demo's starting model and where it
// comes from: --model when given; else DATA/models/start, into which the
// shipped wordnet-small model is written when the folder holds no model
// (no config.json) or a copy of the shipped model from an earlier release
// (models.IsCopy), so that an upgrade brings the new weights. Any other
// model there is used as it is.
func startModel(ctx context.Context, log *slog.Logger, dataDir, flagModel string) (dir, source string, err error) {
	if flagModel != "" {
		return flagModel, "--model " + flagModel, nil
	}
	dir = filepath.Join(dataDir, "models", "start")
	if _, err := os.Stat(filepath.Join(dir, mlm.ConfigFile)); err == nil {
		shipped, err := models.IsCopy(models.WordNetSmall, dir)
		if err != nil {
			return "", "", fmt.Errorf("check starting model in %s: %w", dir, err)
		}
		if !shipped {
			return dir, "DATA/models/start (a model already there)", nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("check starting model in %s: %w", dir, err)
	}
	res, err := models.WriteTo(ctx, models.WordNetSmall, dir)
	if err != nil {
		return "", "", fmt.Errorf("write the shipped starting model to %s: %w", dir, err)
	}
	if len(res.Written) > 0 {
		log.Info("wrote the shipped starting model", "model", models.WordNetSmall, "out", dir, "files", res.Written)
	}
	return dir, "the shipped " + models.WordNetSmall + " model (pretrained on WordNet; in DATA/models/start)", nil
}

// readOracle reads the builder's oracle.jsonl: item id -> gold answers.
func readOracle(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open demo gold answers: %w", err)
	}
	defer f.Close()
	out := map[string][]string{}
	dec := json.NewDecoder(f)
	for line := 1; ; line++ {
		var it dataset.EvalItem
		if err := dec.Decode(&it); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("read %s record %d: %w", path, line, err)
		}
		out[it.ID] = it.Gold
	}
}

// annotateDemo answers every round of run from the gold answers through the
// hook's HTTP API, like an annotator would, and returns the run's result.
func annotateDemo(ctx context.Context, log *slog.Logger, api, lead *hook.Client, run client.WorkflowRun, oracle map[string][]string) (*workflows.Result, error) {
	done := make(chan error, 1)
	var res workflows.Result
	go func() { done <- run.Get(ctx, &res) }()
	answered := map[int]bool{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return nil, fmt.Errorf("demo run %s: %w", run.GetID(), err)
			}
			return &res, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("demo run %s: %w", run.GetID(), ctx.Err())
		case <-tick.C:
		}
		b, err := api.Batch(ctx, run.GetID())
		if err != nil {
			var apiErr *hook.APIError
			if errors.As(err, &apiErr) && apiErr.Status < 500 {
				return nil, fmt.Errorf("demo annotator: read batch: %w", err)
			}
			log.Debug("demo annotator: batch not available yet", "err", err)
			continue
		}
		if !b.Open || answered[b.Round] {
			continue
		}
		req := hook.LabelsRequest{Round: b.Round}
		for _, it := range b.Items {
			gold, ok := oracle[it.ItemID]
			if !ok || it.Skipped {
				continue
			}
			req.Labels = append(req.Labels, hook.ItemLabel{ItemID: it.ItemID, Answers: gold})
		}
		if len(req.Labels) == 0 {
			if _, err := lead.CloseRound(ctx, run.GetID(), hook.CloseRequest{Round: b.Round, Reason: "no gold answers for this batch"}); err != nil {
				return nil, fmt.Errorf("demo annotator: close round %d: %w", b.Round, err)
			}
			answered[b.Round] = true
			continue
		}
		r, err := api.SubmitLabels(ctx, run.GetID(), req)
		if err != nil {
			return nil, fmt.Errorf("demo annotator: submit round %d: %w", b.Round, err)
		}
		answered[b.Round] = true
		log.Info("demo annotator answered a round", "round", b.Round, "counted", r.Counted, "round_complete", r.RoundComplete)
	}
}
