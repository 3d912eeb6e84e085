package main

import (
	"context"
	"fmt"

	"github.com/clozeloop/clozeloop/devserver"
)

func serverCmd() command {
	return command{
		name:    "server",
		summary: "run an embedded Temporal dev server (SQLite file) with the Web UI",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "server", "[--addr HOST:PORT] [--ui-addr HOST:PORT] [--data DIR] [--namespace NS]")
			addr := fs.String("addr", "127.0.0.1:7233", "Temporal gRPC frontend address")
			uiAddr := fs.String("ui-addr", "127.0.0.1:8233", "Web UI address (empty: no UI)")
			data := fs.String("data", "clozeloop-data/temporal", "folder of the SQLite file")
			ns := fs.String("namespace", "default", "namespace to register")
			level := fs.String("log-level", "warn", "server log level")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			s, err := devserver.Start(ctx, devserver.Options{FrontendAddr: *addr, UIAddr: *uiAddr, DataDir: *data, Namespace: *ns, LogLevel: *level, Logger: env.log})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "Temporal at %s (namespace %s), Web UI at http://%s\n", s.FrontendAddr(), *ns, s.UIAddr())
			<-ctx.Done()
			return s.Stop()
		},
	}
}
