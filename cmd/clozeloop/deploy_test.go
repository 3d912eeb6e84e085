package main

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/deploy"
)

// TestDeployFilesUseRealCommands checks every clozeloop command that
// deploy/compose and deploy/k8s run against this CLI: the command exists
// and accepts each flag and value (the arguments are parsed by the real
// command, with -h appended so that it stops there), and every variable set
// in its environment is one clozeloop reads.
func TestDeployFilesUseRealCommands(t *testing.T) {
	root := filepath.Join("..", "..")
	invs, err := deploy.Invocations(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) < 8 {
		t.Fatalf("found %d clozeloop commands in the deployment files, want the server, workers and hook of each", len(invs))
	}
	literals, err := stringLiterals(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range invs {
		t.Run(inv.Source, func(t *testing.T) {
			if len(inv.Args) == 0 || strings.HasPrefix(inv.Args[0], "-") {
				t.Fatalf("no command in %q", inv.Args)
			}
			var stderr bytes.Buffer
			if rc := run(append(slices.Clone(inv.Args), "-h"), io.Discard, &stderr); rc != 0 {
				t.Errorf("clozeloop %s: exit %d:\n%s", strings.Join(inv.Args, " "), rc, lastLines(stderr.String(), 3))
			}
			for _, name := range inv.Env {
				if how := envRead(t, inv.Args[0], name, literals); how == "" {
					t.Errorf("%s is set, but clozeloop reads no such variable", name)
				}
			}
		})
	}
}

// TestDeployArgsRefused shows that the argument check of
// TestDeployFilesUseRealCommands fails on a wrong command, flag or value.
func TestDeployArgsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"workers", "--queues", "gpu"},
		{"worker", "--queue", "gpu"},
		{"worker", "--gpus", "one"},
		{"worker", "--stop-timeout", "45"},
		{"hook", "--listen", "0.0.0.0:8080"},
		{"server", "--postgress", "postgresql:5432"},
	} {
		if rc := run(append(args, "-h"), io.Discard, io.Discard); rc == 0 {
			t.Errorf("clozeloop %s -h: exit 0, want an error", strings.Join(args, " "))
		}
	}
}

// TestEnvReadRefusesUnknown shows that envRead finds no made-up variable,
// and finds a real one as a flag default.
func TestEnvReadRefusesUnknown(t *testing.T) {
	literals, err := stringLiterals(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ cmd, name, want string }{
		{"worker", "CLOZELOOP_S3_BUCKETS", ""},
		{"hook", "CLOZELOOP_TEMPORAL_ADDRES", ""},
		{"worker", "CLOZELOOP_TEMPORAL_ADDRESS", "flag default"},
		{"hook", "CLOZELOOP_S3_BUCKET", "flag default"},
		{"worker", "CLOZELOOP_S3_SECRET_ACCESS_KEY", "string constant"},
	}
	for _, tc := range cases {
		if got := envRead(t, tc.cmd, tc.name, literals); got != tc.want {
			t.Errorf("envRead(%s, %s) = %q, want %q", tc.cmd, tc.name, got, tc.want)
		}
	}
}

// envRead says how clozeloop reads the variable name: "flag default" when
// setting it changes a default that clozeloop <cmd> -h (or worker -h, which
// has every Temporal, S3 and engine flag) prints, "string constant" when a
// non-test Go file of the module holds its name as a string (such as
// store.EnvAccessKeyID), or "" when neither.
func envRead(t *testing.T, cmd, name string, literals map[string]bool) string {
	t.Helper()
	sentinel := "zz-deploy-test-" + strings.ToLower(name)
	// Only this variable is changed, and only during the check: a sentinel
	// left behind (an invalid CLOZELOOP_S3_PATH_STYLE) would fail the next.
	old, had := os.LookupEnv(name)
	os.Setenv(name, sentinel)
	defer func() {
		if had {
			os.Setenv(name, old)
		} else {
			os.Unsetenv(name)
		}
	}()
	for _, c := range []string{cmd, "worker"} {
		var stderr bytes.Buffer
		if rc := run([]string{c, "-h"}, io.Discard, &stderr); rc == 0 && strings.Contains(stderr.String(), sentinel) {
			return "flag default"
		}
	}
	if literals[name] {
		return "string constant"
	}
	return ""
}

// stringLiterals collects the string literals of the module's non-test Go
// files.
func stringLiterals(root string) (map[string]bool, error) {
	lits := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					lits[s] = true
				}
			}
			return true
		})
		return nil
	})
	return lits, err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
