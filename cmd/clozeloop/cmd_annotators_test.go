package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/hook"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
)

func runAnnotators(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	env := &cmdEnv{stdout: &out, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	err := annotatorsCmd().run(ctx, env, args)
	return out.String(), err
}

// TestAnnotatorsCommand adds, lists, rotates and revokes accounts in the
// embedded S3 store, and checks that no token is stored.
func TestAnnotatorsCommand(t *testing.T) {
	ctx := context.Background()
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("CLOZELOOP_S3_ENDPOINT", srv.Endpoint())
	t.Setenv("CLOZELOOP_S3_BUCKET", srv.Bucket())
	t.Setenv("CLOZELOOP_S3_PATH_STYLE", "true")
	t.Setenv("CLOZELOOP_S3_PREFIX", "")
	t.Setenv("CLOZELOOP_S3_REGION", "")
	t.Setenv("CLOZELOOP_S3_ACCESS_KEY_ID", srv.Credentials().AccessKeyID)
	t.Setenv("CLOZELOOP_S3_SECRET_ACCESS_KEY", srv.Credentials().SecretAccessKey)

	out, err := runAnnotators(t, ctx, "add", "alice", "--role", "lead", "--json")
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	var added hook.NewTokenResponse
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.Account.Name != "alice" || added.Account.Role != hook.RoleLead ||
		!strings.HasPrefix(added.Token, hook.TokenPrefix) {
		t.Fatalf("add output %q (%v)", out, err)
	}
	out, err = runAnnotators(t, ctx, "add", "bob")
	if err != nil || !strings.Contains(out, "bob (annotator)") || !strings.Contains(out, "shown once") {
		t.Fatalf("add bob: %q %v", out, err)
	}
	if _, err := runAnnotators(t, ctx, "add", "alice"); err == nil {
		t.Error("adding an active name twice succeeded")
	}
	if _, err := runAnnotators(t, ctx, "add", "carol", "--role", "boss"); err == nil {
		t.Error("unknown role accepted")
	}
	if _, err := runAnnotators(t, ctx, "add"); err == nil {
		t.Error("add without a name accepted")
	}

	st, err := openTestStore(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := st.GetBytes(ctx, hook.DefaultAccountsKey)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), added.Token) || !strings.Contains(string(raw), hook.HashToken(added.Token)) {
		t.Fatalf("stored accounts must hold the hash, not the token: %s", raw)
	}

	out, err = runAnnotators(t, ctx, "rotate", "alice", "--json")
	var rotated hook.NewTokenResponse
	if err != nil || json.Unmarshal([]byte(out), &rotated) != nil || rotated.Token == added.Token || rotated.Account.Role != hook.RoleLead {
		t.Fatalf("rotate: %q %v", out, err)
	}
	if out, err := runAnnotators(t, ctx, "revoke", "bob", "--json"); err != nil || !strings.Contains(out, `"active": false`) {
		t.Fatalf("revoke: %q %v", out, err)
	}
	if _, err := runAnnotators(t, ctx, "revoke", "nobody"); err == nil {
		t.Error("revoking an unknown account succeeded")
	}
	out, err = runAnnotators(t, ctx, "list", "--json")
	var list struct {
		Annotators []hook.AccountInfo `json:"annotators"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Annotators) != 2 ||
		!list.Annotators[0].Active || list.Annotators[1].Active {
		t.Fatalf("list: %q %v", out, err)
	}
	if strings.Contains(out, "token_hash") {
		t.Error("list shows token hashes")
	}
	out, err = runAnnotators(t, ctx, "list")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "revoked") {
		t.Fatalf("list table: %q %v", out, err)
	}
}

// TestHookAuthFlags: no authentication only on loopback; proxy mode needs
// the proxies' addresses; TLS needs both files.
func TestHookAuthFlags(t *testing.T) {
	tests := []struct {
		name       string
		addr       string
		a          hookAuth
		haveBucket bool
		wantErr    string
		accounts   bool
	}{
		{name: "no-auth on loopback", addr: "127.0.0.1:8080", a: hookAuth{noAuth: true}},
		{name: "no-auth on IPv6 loopback", addr: "[::1]:8080", a: hookAuth{noAuth: true}},
		{name: "no-auth on localhost", addr: "localhost:8080", a: hookAuth{noAuth: true}},
		{name: "no-auth on every interface", addr: ":8080", a: hookAuth{noAuth: true}, wantErr: "refused"},
		{name: "no-auth on 0.0.0.0", addr: "0.0.0.0:8080", a: hookAuth{noAuth: true}, wantErr: "refused"},
		{name: "no-auth on a LAN address", addr: "192.168.1.5:8080", a: hookAuth{noAuth: true}, wantErr: "refused"},
		{name: "accounts", addr: ":8080", haveBucket: true, accounts: true},
		{name: "nothing to authenticate with", addr: "127.0.0.1:8080", wantErr: "no way to authenticate"},
		{name: "proxy mode", addr: ":8080", a: hookAuth{trustedProxies: "10.0.0.0/8, 192.168.1.1"}},
		{name: "bad proxy CIDR", addr: ":8080", a: hookAuth{trustedProxies: "10.0.0.0/33"}, haveBucket: true, wantErr: "--trusted-proxies"},
		{name: "no-auth with proxies", addr: "127.0.0.1:1", a: hookAuth{noAuth: true, trustedProxies: "10.0.0.0/8"}, wantErr: "exclude"},
		{name: "cert without key", addr: ":8080", a: hookAuth{tlsCert: "c.pem"}, haveBucket: true, wantErr: "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.a
			if a.header == "" {
				a.header = hook.DefaultAnnotatorHeader
			}
			o, err := a.options(tt.addr, tt.haveBucket)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.useAccounts != tt.accounts || o.NoAuth != a.noAuth {
				t.Errorf("options %+v, useAccounts %v", o, a.useAccounts)
			}
		})
	}
}

func openTestStore(ctx context.Context, srv *s3embed.Server) (*store.Store, error) {
	return store.Open(ctx, store.Config{Endpoint: srv.Endpoint(), Bucket: srv.Bucket(), Region: s3embed.Region, PathStyle: true,
		AccessKeyID: srv.Credentials().AccessKeyID, SecretAccessKey: srv.Credentials().SecretAccessKey}, nil)
}
