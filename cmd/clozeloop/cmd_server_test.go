package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/clozeloop/clozeloop/devserver/pgtest"
)

// TestServerSchemaOnly sets a fresh PostgreSQL up with `server --postgres
// … --schema-only` twice: the first run creates both databases and their
// schemas with the Temporal server's tooling, the second finds them current.
func TestServerSchemaOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg := pgtest.Start(t)
	var first map[string]string
	for i := range 2 {
		var out bytes.Buffer
		err := serverCmd().run(context.Background(), testEnv(&out), []string{"--postgres", pg.Addr, "--postgres-user", pg.User,
			"--postgres-db", "t_main", "--postgres-visibility-db", "t_vis", "--schema-only", "--json"})
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		var got map[string]string
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("run %d: %v: %s", i+1, err, out.String())
		}
		if got["database"] != "t_main" || got["visibility_database"] != "t_vis" ||
			got["schema_version"] == "" || got["schema_version"] == "0.0" || got["visibility_schema_version"] == "" {
			t.Fatalf("run %d: %v", i+1, got)
		}
		if i == 0 {
			first = got
		} else if got["schema_version"] != first["schema_version"] || got["visibility_schema_version"] != first["visibility_schema_version"] {
			t.Errorf("second run changed the versions: %v, then %v", first, got)
		}
	}
}

func TestServerFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"schema-only without postgres", []string{"--schema-only"}},
		{"no shards", []string{"--postgres", "127.0.0.1:1", "--history-shards", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := serverCmd().run(context.Background(), testEnv(&bytes.Buffer{}), tt.args)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want a usage error", err)
			}
		})
	}
}
