package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	pgplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Postgres says where the server keeps its state in PostgreSQL (12 or
// newer) instead of a SQLite file.
type Postgres struct {
	// Addr is the server's host:port.
	Addr string
	// User and Password log in; the user must be allowed to create
	// databases on the first start (or the databases must exist).
	User, Password string
	// Database holds the workflows (default "temporal"), VisibilityDatabase
	// the visibility records (default "temporal_visibility").
	Database, VisibilityDatabase string
	// HistoryShards is the number of history shards, fixed when the
	// database is first set up (default 4).
	HistoryShards int32
}

// The embedded schemas of the Temporal server (go.temporal.io/server/schema)
// for PostgreSQL 12+, as temporal-sql-tool names them.
const (
	pgSchemaMain       = "postgresql/v12/temporal"
	pgSchemaVisibility = "postgresql/v12/visibility"
)

func (p Postgres) withDefaults() Postgres {
	if p.Database == "" {
		p.Database = "temporal"
	}
	if p.VisibilityDatabase == "" {
		p.VisibilityDatabase = "temporal_visibility"
	}
	if p.HistoryShards <= 0 {
		p.HistoryShards = 4
	}
	return p
}

// sqlConfig is the server's SQL configuration of database db.
func (p Postgres) sqlConfig(db string) *config.SQL {
	return &config.SQL{
		PluginName:      pgplugin.PluginName,
		DatabaseName:    db,
		ConnectAddr:     p.Addr,
		ConnectProtocol: "tcp",
		User:            p.User,
		Password:        p.Password,
		MaxConns:        20,
		MaxIdleConns:    20,
	}
}

// SetupPostgres creates the two databases if missing and brings their
// schemas to the versions this server needs, with the Temporal server's
// own schema tooling (the library behind temporal-sql-tool: create-database,
// setup-schema -v 0.0 on a new database, update-schema to the latest
// embedded version). It is safe to run at every start: an up-to-date
// database is left as it is, an older one is upgraded.
func SetupPostgres(p Postgres) error {
	p = p.withDefaults()
	if _, _, err := net.SplitHostPort(p.Addr); err != nil {
		return fmt.Errorf("devserver: postgres address %q: %w", p.Addr, err)
	}
	logger := log.NewNoopLogger()
	for _, d := range []struct{ db, schemaName string }{
		{p.Database, pgSchemaMain},
		{p.VisibilityDatabase, pgSchemaVisibility},
	} {
		if err := sqltool.DoCreateDatabase(p.sqlConfig(d.db), "postgres", logger); err != nil {
			return fmt.Errorf("devserver: create database %s on %s: %w", d.db, p.Addr, err)
		}
		conn, err := sqltool.NewConnection(p.sqlConfig(d.db), logger)
		if err != nil {
			return fmt.Errorf("devserver: connect to database %s on %s: %w", d.db, p.Addr, err)
		}
		err = setupAndUpdate(conn, d.schemaName, logger)
		conn.Close()
		if err != nil {
			return fmt.Errorf("devserver: schema of database %s on %s: %w", d.db, p.Addr, err)
		}
	}
	return nil
}

func setupAndUpdate(conn *sqltool.Connection, schemaName string, logger log.Logger) error {
	if _, err := conn.ReadSchemaVersion(); err != nil {
		// No version table yet: a new database.
		if err := schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run(); err != nil {
			return fmt.Errorf("setup-schema: %w", err)
		}
	}
	if err := schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{SchemaName: schemaName}, logger).Run(); err != nil {
		return fmt.Errorf("update-schema %s: %w", schemaName, err)
	}
	return nil
}

// SchemaVersions returns the schema versions of the two databases (main,
// visibility).
func SchemaVersions(p Postgres) (main, visibility string, err error) {
	p = p.withDefaults()
	read := func(db string) (string, error) {
		conn, err := sqltool.NewConnection(p.sqlConfig(db), log.NewNoopLogger())
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ReadSchemaVersion()
	}
	if main, err = read(p.Database); err != nil {
		return "", "", fmt.Errorf("devserver: schema version of %s: %w", p.Database, err)
	}
	if visibility, err = read(p.VisibilityDatabase); err != nil {
		return "", "", fmt.Errorf("devserver: schema version of %s: %w", p.VisibilityDatabase, err)
	}
	return main, visibility, nil
}

// postgresPersistence is the persistence configuration on p.
func postgresPersistence(p Postgres) config.Persistence {
	const main, vis = "postgres-default", "postgres-visibility"
	return config.Persistence{
		DefaultStore:     main,
		VisibilityStore:  vis,
		NumHistoryShards: p.HistoryShards,
		DataStores: map[string]config.DataStore{
			main: {SQL: p.sqlConfig(p.Database)},
			vis:  {SQL: p.sqlConfig(p.VisibilityDatabase)},
		},
	}
}

// registerNamespace registers ns through the frontend (the SQLite path
// writes it into the file before start instead); one that exists is left
// as it is.
func registerNamespace(ctx context.Context, frontend, ns string, retention time.Duration, logger *slog.Logger) error {
	nc, err := client.NewNamespaceClient(client.Options{HostPort: frontend, Logger: sdklog.NewStructuredLogger(logger.With("component", "temporal-client"))})
	if err != nil {
		return fmt.Errorf("devserver: namespace client: %w", err)
	}
	defer nc.Close()
	for {
		err := nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			return nil
		}
		// The frontend answers before the namespace registry is ready.
		select {
		case <-ctx.Done():
			return fmt.Errorf("devserver: register namespace %s: %w (last error: %v)", ns, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// postgresLabel names the database for logs.
func postgresLabel(p Postgres) string {
	return "postgres://" + p.User + "@" + p.Addr + "/" + p.Database + " (shards " + strconv.Itoa(int(p.HistoryShards)) + ")"
}
