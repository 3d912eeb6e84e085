// Package devserver runs an embedded Temporal server with SQLite file
// persistence, plus the Temporal Web UI, inside the current process.
//
// It is what "clozeloop server", "clozeloop dev" and the integration tests
// use: state lives in one SQLite file under the data folder, so a server
// stopped and started again on the same folder finds its workflows where it
// left them. It is a development server, not a production deployment.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/common/primitives/timestamp"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// DBFileName is the name of the SQLite file the server keeps in its data folder.
const DBFileName = "temporal.db"

// DefaultNamespace is the namespace registered when Options.Namespace is empty.
const DefaultNamespace = "default"

// Options configure an embedded server.
type Options struct {
	// FrontendAddr is the host:port the Temporal gRPC frontend listens on.
	// Port 0 picks a free port; empty means "127.0.0.1:7233".
	FrontendAddr string
	// UIAddr is the host:port of the Web UI. Empty disables the UI; port 0
	// picks a free port.
	UIAddr string
	// DataDir is the folder holding the SQLite file; it is created if
	// missing. It is not used with Postgres.
	DataDir string
	// Postgres, when set, keeps the server's state in PostgreSQL instead
	// (schema set up and upgraded at start, see SetupPostgres).
	Postgres *Postgres
	// Namespace is registered at start (no-op when it already exists).
	Namespace string
	// Retention is how long closed workflows are kept (default 7 days).
	Retention time.Duration
	// LogLevel is the server's own log level: debug, info, warn, error
	// (default warn). Server logs go to stderr.
	LogLevel string
	// Logger receives clozeloop's own messages about the server's life cycle.
	Logger *slog.Logger
}

// Server is a running embedded Temporal server (and optional Web UI).
type Server struct {
	opts         Options
	frontendAddr string
	uiAddr       string

	mu      sync.Mutex
	srv     temporal.Server
	ui      *uiserver.Server
	uiDone  chan struct{}
	stopped bool
	// state tells the server's logger whether the server is starting or
	// stopping (see serverLogger).
	state serverState
}

// Start creates the SQLite schema if the file is new, registers the
// namespace, and starts the Temporal services and (if UIAddr is set) the Web
// UI. It returns when the frontend accepts connections or ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	return start(ctx, opts, defaultPorts)
}

// maxStartAttempts bounds the starts of the Temporal services that Start
// tries when one fails fatally (see startFatal).
const maxStartAttempts = 3

// start is Start with the ports of the services other than the frontend
// picked by ports.
func start(ctx context.Context, opts Options, ports portPicker) (*Server, error) {
	if opts.DataDir == "" && opts.Postgres == nil {
		return nil, errors.New("devserver: DataDir is required (the folder for the SQLite file)")
	}
	if opts.FrontendAddr == "" {
		opts.FrontendAddr = "127.0.0.1:7233"
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts}
	persistence, dbLabel, err := preparePersistence(opts)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err = s.startTemporal(persistence, ports)
		var fatal *startFatal
		if err == nil || !errors.As(err, &fatal) || attempt == maxStartAttempts {
			break
		}
		opts.Logger.Warn("temporal server failed while starting; retrying on fresh ports",
			"attempt", attempt, "err", err)
	}
	if err != nil {
		return nil, err
	}
	srv := s.srv
	if err := waitForPort(ctx, s.frontendAddr); err != nil {
		s.state.stopping.Store(true) // quiet the shutdown of a failed start
		_ = srv.Stop()
		return nil, fmt.Errorf("devserver: frontend %s did not come up: %w", s.frontendAddr, err)
	}

	if opts.Postgres != nil {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := registerNamespace(rctx, s.frontendAddr, opts.Namespace, opts.Retention, opts.Logger)
		cancel()
		if err != nil {
			s.state.stopping.Store(true) // quiet the shutdown of a failed start
			_ = srv.Stop()
			return nil, err
		}
	}
	if opts.UIAddr != "" {
		if err := s.startUI(); err != nil {
			s.state.stopping.Store(true) // quiet the shutdown of a failed start
			_ = srv.Stop()
			return nil, err
		}
	}
	opts.Logger.Info("temporal dev server started", "frontend", s.frontendAddr, "ui", s.uiAddr,
		"namespace", opts.Namespace, "db", dbLabel)
	return s, nil
}

// preparePersistence creates the data folder and the SQLite schema, or
// sets up the PostgreSQL schema, and returns the persistence configuration
// and a label naming the store for logs.
func preparePersistence(opts Options) (config.Persistence, string, error) {
	if opts.Postgres != nil {
		p := opts.Postgres.withDefaults()
		if err := SetupPostgres(p); err != nil {
			return config.Persistence{}, "", err
		}
		return postgresPersistence(p), postgresLabel(p), nil
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return config.Persistence{}, "", fmt.Errorf("devserver: create data folder %s: %w", opts.DataDir, err)
	}
	dbLabel := filepath.Join(opts.DataDir, DBFileName)
	persistence, sqlCfg := sqlitePersistence(dbLabel)
	if err := prepareDB(sqlCfg, clusterName, opts); err != nil {
		return config.Persistence{}, "", err
	}
	return persistence, dbLabel, nil
}

// startTemporal creates and starts the Temporal services on fresh ports
// (the frontend's own when Options.FrontendAddr asks for port 0) and sets
// s.srv and s.frontendAddr. A Fatal the server reports while it is being
// created or started (a port taken between the moment it was picked and
// the moment a service listens on it) comes back as a *startFatal error
// instead of ending the process; what that attempt had opened stays open.
func (s *Server) startTemporal(persistence config.Persistence, ports portPicker) (err error) {
	host, port, err := resolveAddr(s.opts.FrontendAddr)
	if err != nil {
		return fmt.Errorf("devserver: frontend address %q: %w", s.opts.FrontendAddr, err)
	}
	s.frontendAddr = net.JoinHostPort(host, strconv.Itoa(port))
	cfg, hosts, err := buildConfig(host, port, persistence, ports)
	if err != nil {
		return err
	}

	logger := newServerLogger(log.NewZapLogger(log.BuildZapLogger(log.Config{Level: s.opts.LogLevel, Format: "console"})), &s.state)
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return fmt.Errorf("devserver: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return fmt.Errorf("devserver: claim mapper: %w", err)
	}

	s.state.starting.Store(true)
	defer s.state.starting.Store(false)
	defer func() {
		if r := recover(); r != nil {
			fatal, ok := r.(*startFatal)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("devserver: start Temporal server on %s: %w", s.frontendAddr, fatal)
		}
	}()
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicConfig()),
	)
	if err != nil {
		return fmt.Errorf("devserver: create Temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("devserver: start Temporal server on %s: %w", s.frontendAddr, err)
	}
	s.srv = srv
	return nil
}

// FrontendAddr is the host:port clients dial.
func (s *Server) FrontendAddr() string { return s.frontendAddr }

// UIAddr is the host:port of the Web UI, or "" when the UI is off.
func (s *Server) UIAddr() string { return s.uiAddr }

// Namespace is the namespace registered at start.
func (s *Server) Namespace() string { return s.opts.Namespace }

// Stop stops the Web UI and the Temporal services and closes the SQLite
// file. It is safe to call more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.state.stopping.Store(true)
	if s.ui != nil {
		s.ui.Stop()
		<-s.uiDone
	}
	if err := s.srv.Stop(); err != nil {
		return fmt.Errorf("devserver: stop Temporal server: %w", err)
	}
	s.opts.Logger.Info("temporal dev server stopped", "frontend", s.frontendAddr)
	return nil
}

func (s *Server) startUI() error {
	host, port, err := resolveAddr(s.opts.UIAddr)
	if err != nil {
		return fmt.Errorf("devserver: UI address %q: %w", s.opts.UIAddr, err)
	}
	s.uiAddr = net.JoinHostPort(host, strconv.Itoa(port))
	cfg := &uiconfig.Config{
		Host:                host,
		Port:                port,
		TemporalGRPCAddress: s.frontendAddr,
		EnableUI:            true,
		DefaultNamespace:    s.opts.Namespace,
		HideLogs:            true,
		DisableNewsFetch:    true,
		Distribution:        "clozeloop",
		CORS:                uiconfig.CORS{CookieInsecure: true},
	}
	ui, err := newUIServer(cfg)
	if err != nil {
		return err
	}
	s.ui = ui
	s.uiDone = make(chan struct{})
	go func() {
		defer close(s.uiDone)
		if err := ui.Start(); err != nil {
			s.opts.Logger.Error("temporal web UI stopped", "addr", s.uiAddr, "err", err)
		}
	}()
	if err := waitForPort(context.Background(), s.uiAddr); err != nil {
		return fmt.Errorf("devserver: web UI %s did not come up: %w", s.uiAddr, err)
	}
	return nil
}

// newUIServer builds the UI server, turning its construction panics (it
// panics on bad configuration) into errors.
func newUIServer(cfg *uiconfig.Config) (srv *uiserver.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("devserver: create web UI: %v", r)
		}
	}()
	return uiserver.NewServer(uioptions.WithConfigProvider(cfg)), nil
}

// clusterName is the server's one cluster.
const clusterName = "active"

// sqlitePersistence keeps the main and the visibility store in one SQLite
// file, on a single history shard, as the Temporal CLI's dev server does.
func sqlitePersistence(dbPath string) (config.Persistence, *config.SQL) {
	sqlCfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: dbPath,
		ConnectAttributes: map[string]string{
			"mode":          "rwc",
			"_journal_mode": "wal",
			"_synchronous":  "2",
		},
	}
	return config.Persistence{
		DefaultStore:     sqliteplugin.PluginName,
		VisibilityStore:  sqliteplugin.PluginName,
		NumHistoryShards: 1,
		DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
	}, sqlCfg
}

// buildConfig is the single-process configuration of the Temporal CLI's
// dev server (every service in this process, on loopback) on the given
// persistence, and the services' static membership: each service's one
// host is its own gRPC address.
//
// Membership is static, as in the Temporal CLI's dev server, rather than
// ringpop's: ringpop seeds its ring from the cluster_membership rows that
// heartbeated in the last 20 seconds, so a server started again on the
// same store right after a stop tries to join its previous incarnation's
// dead listeners and gives up after the maximum join duration (a Fatal
// that ended the process). One process holds every service, so there is
// nothing to discover.
func buildConfig(host string, frontendPort int, persistence config.Persistence, ports portPicker) (*config.Config, map[primitives.ServiceName]static.Hosts, error) {
	services := map[string]config.Service{}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for _, name := range temporal.DefaultServices {
		grpcPort := frontendPort
		if name != string(primitives.FrontendService) {
			p, err := ports.grpc()
			if err != nil {
				return nil, nil, err
			}
			grpcPort = p
		}
		rpc := config.RPC{GRPCPort: grpcPort, BindOnLocalHost: true}
		self := net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort))
		if name == string(primitives.FrontendService) && host != "127.0.0.1" && host != "localhost" {
			rpc.BindOnLocalHost = false
			rpc.BindOnIP = host
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				self = net.JoinHostPort(host, strconv.Itoa(grpcPort))
			}
		}
		services[name] = config.Service{RPC: rpc}
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(self)
	}
	broadcast := "127.0.0.1"
	cfg := &config.Config{
		Global: config.Global{
			Membership: config.Membership{BroadcastAddress: broadcast},
		},
		Persistence: persistence,
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {
					Enabled:                true,
					InitialFailoverVersion: 1,
					RPCAddress:             net.JoinHostPort(broadcast, strconv.Itoa(frontendPort)),
				},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services:            services,
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		PublicClient: config.PublicClient{HostPort: net.JoinHostPort(broadcast, strconv.Itoa(frontendPort))},
		NamespaceDefaults: config.NamespaceDefaults{
			Archival: config.ArchivalNamespaceDefaults{
				History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
				Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
			},
		},
	}
	return cfg, hosts, nil
}

// prepareDB creates the schema in a new file and registers the namespace.
func prepareDB(sqlCfg *config.SQL, clusterName string, opts Options) error {
	if _, err := os.Stat(sqlCfg.DatabaseName); errors.Is(err, os.ErrNotExist) {
		if err := sqlite.SetupSchema(sqlCfg); err != nil {
			return fmt.Errorf("devserver: create schema in %s: %w", sqlCfg.DatabaseName, err)
		}
	} else if err != nil {
		return fmt.Errorf("devserver: check %s: %w", sqlCfg.DatabaseName, err)
	}
	ns, err := sqlite.NewNamespaceConfig(clusterName, opts.Namespace, false, map[string]enumspb.IndexedValueType{})
	if err != nil {
		return fmt.Errorf("devserver: namespace %s: %w", opts.Namespace, err)
	}
	ns.Detail.Config.Retention = timestamp.DurationPtr(opts.Retention)
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil {
		return fmt.Errorf("devserver: register namespace %s in %s: %w", opts.Namespace, sqlCfg.DatabaseName, err)
	}
	return nil
}

// dynamicConfig holds the dev-server settings the Temporal CLI also uses:
// search attributes visible at once, updates enabled.
func dynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():            true,
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():              true,
		dynamicconfig.FrontendEnableUpdateWorkflowExecutionAsyncAccepted.Key(): true,
		dynamicconfig.FrontendEnableSchedules.Key():                            true,
	}
}

// resolveAddr splits host:port, replacing port 0 with a free port.
func resolveAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	if port == 0 {
		if port, err = freePort(); err != nil {
			return "", 0, err
		}
		return host, port, nil
	}
	// Fail early and clearly when the port is taken (the UI server would
	// otherwise exit the process).
	l, err := net.Listen("tcp", net.JoinHostPort(host, portStr))
	if err != nil {
		return "", 0, fmt.Errorf("port not available: %w", err)
	}
	_ = l.Close()
	return host, port, nil
}

// portPicker picks the gRPC ports of the services other than the
// frontend.
type portPicker struct {
	grpc func() (int, error) // a service's gRPC port
}

// defaultPorts picks free loopback ports. A port is only free when it is
// picked: the service that listens on it binds it later, so another
// process may take it in between (see startTemporal).
var defaultPorts = portPicker{grpc: freePort}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitForPort(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last dial error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
