package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/clozeloop/clozeloop/devserver"
	"github.com/clozeloop/clozeloop/internal/listen"
)

func serverCmd() command {
	return command{
		name:    "server",
		summary: "run a Temporal server (SQLite file, or PostgreSQL with --postgres) with the Web UI",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "server", "[--addr HOST:PORT] [--ui-addr HOST:PORT] [--data DIR | --postgres HOST:PORT [--postgres-user U] [--postgres-password-file F]] [--namespace NS] [--schema-only] [--json]")
			addr := fs.String("addr", "127.0.0.1:7233", "Temporal gRPC frontend address")
			uiAddr := fs.String("ui-addr", "127.0.0.1:8233", "Web UI address (empty: no UI)")
			data := fs.String("data", "clozeloop-data/temporal", "folder of the SQLite file (without --postgres)")
			ns := fs.String("namespace", "default", "namespace to register")
			level := fs.String("log-level", "warn", "server log level")
			var pg devserver.Postgres
			fs.StringVar(&pg.Addr, "postgres", os.Getenv("CLOZELOOP_POSTGRES_ADDR"), "keep the server's state in PostgreSQL 12+ at `HOST:PORT` instead of SQLite (env CLOZELOOP_POSTGRES_ADDR)")
			fs.StringVar(&pg.User, "postgres-user", envOr("CLOZELOOP_POSTGRES_USER", "temporal"), "PostgreSQL user; it creates the databases on the first start unless they exist (env CLOZELOOP_POSTGRES_USER)")
			pwFile := fs.String("postgres-password-file", os.Getenv("CLOZELOOP_POSTGRES_PASSWORD_FILE"), "`file` holding the PostgreSQL password (env CLOZELOOP_POSTGRES_PASSWORD_FILE; none: trust or peer authentication)")
			fs.StringVar(&pg.Database, "postgres-db", "temporal", "database of the workflows")
			fs.StringVar(&pg.VisibilityDatabase, "postgres-visibility-db", "temporal_visibility", "database of the visibility records")
			shards := fs.Int("history-shards", 4, "history shards, fixed when the PostgreSQL database is first set up")
			schemaOnly := fs.Bool("schema-only", false, "with --postgres: create the databases and set up or upgrade their schemas, print the versions and exit")
			asJSON := fs.Bool("json", false, "print the addresses (or, with --schema-only, the schema versions) as JSON")
			allowUnauth := fs.Bool("allow-unauthenticated", false, "allow a non-loopback --addr or --ui-addr although neither authenticates clients: only inside a private network nobody else reaches (e.g. the compose network, whose ports are published on 127.0.0.1)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			for _, a := range []struct{ flag, addr string }{{"--addr", *addr}, {"--ui-addr", *uiAddr}} {
				if err := checkUnauthenticatedListen(a.flag, a.addr, *allowUnauth,
					"inside a private network nobody else reaches, add --allow-unauthenticated; otherwise run a Temporal cluster with mTLS and point the workers at it"); err != nil {
					return err
				}
			}
			opts := devserver.Options{FrontendAddr: *addr, UIAddr: *uiAddr, DataDir: *data, Namespace: *ns, LogLevel: *level, Logger: env.log}
			if pg.Addr != "" {
				if *shards < 1 {
					return usagef("--history-shards must be at least 1")
				}
				pg.HistoryShards = int32(*shards)
				if *pwFile != "" {
					b, err := os.ReadFile(*pwFile)
					if err != nil {
						return fmt.Errorf("read --postgres-password-file: %w", err)
					}
					pg.Password = strings.TrimRight(string(b), "\r\n")
				}
				opts.Postgres = &pg
			} else if *schemaOnly {
				return usagef("--schema-only needs --postgres (a SQLite file gets its schema on first start)")
			}
			if *schemaOnly {
				if err := devserver.SetupPostgres(pg); err != nil {
					return err
				}
				main, vis, err := devserver.SchemaVersions(pg)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(env.stdout, map[string]string{"database": pg.Database, "schema_version": main,
						"visibility_database": pg.VisibilityDatabase, "visibility_schema_version": vis})
				}
				fmt.Fprintf(env.stdout, "PostgreSQL %s: %s at schema %s, %s at schema %s\n", pg.Addr, pg.Database, main, pg.VisibilityDatabase, vis)
				return nil
			}
			s, err := devserver.Start(ctx, opts)
			if err != nil {
				return err
			}
			if *asJSON {
				if err := writeJSON(env.stdout, map[string]string{"frontend": s.FrontendAddr(), "namespace": *ns, "ui": s.UIAddr()}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(env.stdout, "Temporal at %s (namespace %s), Web UI at http://%s\n", s.FrontendAddr(), *ns, s.UIAddr())
			}
			<-ctx.Done()
			return s.Stop()
		},
	}
}

// checkUnauthenticatedListen refuses a listen address, for a server that
// does not authenticate its clients, that is not loopback, unless allow.
// hint says what to do instead.
func checkUnauthenticatedListen(flag, addr string, allow bool, hint string) error {
	if addr == "" || listen.Loopback(addr) || allow {
		return nil
	}
	return usagef("%s %s: the Temporal frontend and Web UI served here do not authenticate clients, so they listen on loopback only (127.0.0.1:PORT); %s", flag, addr, hint)
}

// envOr is the environment variable name's value, or def when it is unset
// or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
