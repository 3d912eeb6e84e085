package devserver

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence"
	"go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/resolver"
)

// TestStartIgnoresStaleMembership starts a server on a SQLite file whose
// cluster_membership table lists a live-looking host for every service on
// ports nothing listens on, as a server killed a moment ago leaves it (its
// rows heartbeated within the last 20 seconds). A server that bootstraps
// ringpop from that table tries to join those hosts until its maximum join
// duration before it reads the table again (52 s here with ringpop; under
// load past its 30 s limit, a Fatal); the embedded server's membership is
// static, so it starts at once and runs a workflow.
func TestStartIgnoresStaleMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	dir := t.TempDir()
	opts := Options{FrontendAddr: "127.0.0.1:0", DataDir: dir, Namespace: "clozeloop-test", LogLevel: "fatal", Logger: quietLogger()}
	if _, _, err := preparePersistence(opts); err != nil {
		t.Fatal(err)
	}
	writeStaleMembers(t, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start beside stale membership rows: %v", err)
	}
	defer s.Stop()
	runWaitForGo(ctx, t, s, "beside-stale")
}

// writeStaleMembers records one host per service in the SQLite file in dir
// on a closed loopback port, with a heartbeat ten minutes in the future so
// that the rows stay fresh for the whole test.
func writeStaleMembers(t *testing.T, dir string) {
	t.Helper()
	_, sqlCfg := sqlitePersistence(dir + "/" + DBFileName)
	db, err := sql.NewSQLDB(sqlplugin.DbKindMain, sqlCfg, resolver.NewNoopResolver(), log.NewNoopLogger(), metrics.NoopMetricsHandler)
	if err != nil {
		t.Fatalf("open %s: %v", sqlCfg.DatabaseName, err)
	}
	defer db.Close()
	now := time.Now().UTC()
	roles := []persistence.ServiceType{persistence.Frontend, persistence.History, persistence.Matching, persistence.Worker}
	for _, role := range roles {
		port, err := freePort() // free a moment ago; nothing listens on it
		if err != nil {
			t.Fatal(err)
		}
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			t.Fatal(err)
		}
		row := &sqlplugin.ClusterMembershipRow{
			Role:          role,
			HostID:        id,
			RPCAddress:    "127.0.0.1",
			RPCPort:       uint16(port),
			SessionStart:  now.Add(-time.Minute),
			LastHeartbeat: now.Add(10 * time.Minute),
			RecordExpiry:  now.Add(48 * time.Hour),
		}
		if _, err := db.UpsertClusterMembership(context.Background(), row); err != nil {
			t.Fatalf("write a stale membership row: %v", err)
		}
	}
}
