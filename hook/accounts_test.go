package hook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestTokens(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != 47 || !wellFormedToken(tok) {
			t.Fatalf("token %q: want clz_ and 43 base64url characters", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q twice", tok)
		}
		seen[tok] = true
		if h := HashToken(tok); len(h) != 64 || strings.Contains(h, tok[len(TokenPrefix):]) {
			t.Fatalf("hash %q", h)
		}
	}
	for _, bad := range []string{"", "clz_", "clz_short", "xyz_" + strings.Repeat("A", 43), "clz_" + strings.Repeat("*", 43)} {
		if wellFormedToken(bad) {
			t.Errorf("%q accepted as a token", bad)
		}
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in   string
		want Role
		ok   bool
	}{{"annotator", RoleAnnotator, true}, {" Lead ", RoleLead, true}, {"admin", RoleAdmin, true}, {"root", "", false}, {"", "", false}}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseRole(%q) = %q, %v", tt.in, got, err)
		}
	}
	if !RoleAdmin.Allows(RoleLead) || !RoleLead.Allows(RoleAnnotator) || RoleAnnotator.Allows(RoleLead) || Role("x").Allows(RoleAnnotator) {
		t.Error("role order wrong")
	}
}

// TestAccountLifecycle: add, duplicate, rotate, revoke, reuse of the name,
// and that only hashes are stored.
func TestAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	st := &MemAccounts{}
	info, tok, err := AddAccount(ctx, st, "ann", RoleAnnotator, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if info.TokenID != HashToken(tok)[:12] || !info.Active || info.CreatedBy != "admin" {
		t.Errorf("info %+v", info)
	}
	if strings.Contains(string(st.data), tok) || strings.Contains(string(st.data), tok[len(TokenPrefix):]) {
		t.Fatal("the stored accounts hold the token")
	}
	if _, _, err := AddAccount(ctx, st, "ann", RoleLead, "admin"); !errors.Is(err, ErrAccountExists) {
		t.Errorf("second add: %v, want ErrAccountExists", err)
	}
	for _, bad := range []string{"", "a b", "-x", "x/y", strings.Repeat("a", 65)} {
		if _, _, err := AddAccount(ctx, st, bad, RoleAnnotator, ""); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	rot, tok2, err := RotateToken(ctx, st, "ann", RoleLead)
	if err != nil || tok2 == tok || rot.Role != RoleLead || rot.RotatedAt.IsZero() {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	f, _, _ := st.Load(ctx)
	ix := indexAccounts(f)
	if _, ok := ix.byHash[HashToken(tok)]; ok {
		t.Error("the old token still works after rotation")
	}
	if a, ok := ix.byHash[HashToken(tok2)]; !ok || a.Name != "ann" {
		t.Error("the new token does not work")
	}
	if _, err := RevokeAccount(ctx, st, "ann", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := RevokeAccount(ctx, st, "ann", "admin"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("revoke twice: %v", err)
	}
	if _, _, err := RotateToken(ctx, st, "ann", ""); !errors.Is(err, ErrNoAccount) {
		t.Errorf("rotate revoked: %v", err)
	}
	if _, _, err := AddAccount(ctx, st, "ann", RoleAnnotator, "admin"); err != nil {
		t.Errorf("a revoked name is free again: %v", err)
	}
	list, err := ListAccounts(ctx, st)
	if err != nil || len(list) != 2 || list[0].Active || !list[1].Active {
		t.Fatalf("list %+v %v", list, err)
	}
	_, tok3, err := EnsureAccount(ctx, st, "dev-admin", RoleAdmin, "dev")
	if err != nil {
		t.Fatal(err)
	}
	_, tok4, err := EnsureAccount(ctx, st, "dev-admin", RoleAdmin, "dev")
	if err != nil || tok4 == tok3 {
		t.Fatalf("ensure twice: %v", err)
	}
	f, _, _ = st.Load(ctx)
	if ix := indexAccounts(f); ix.byHash[HashToken(tok3)].Name != "" || ix.byHash[HashToken(tok4)].Name != "dev-admin" {
		t.Error("EnsureAccount must leave only the newest token valid")
	}
}

// TestConcurrentAdds: writers racing on the accounts file all land (the
// conditional save makes the losers retry instead of overwriting).
func TestConcurrentAdds(t *testing.T) {
	ctx := context.Background()
	st := &MemAccounts{}
	var wg sync.WaitGroup
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := AddAccount(ctx, st, fmt.Sprintf("ann%d", i), RoleAnnotator, "test"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := ListAccounts(ctx, st)
	if err != nil || len(list) != n {
		t.Fatalf("%d accounts after %d concurrent adds (%v)", len(list), n, err)
	}
}

func TestDecodeAccountsRefusesBadFiles(t *testing.T) {
	h := strings.Repeat("a", 64)
	tests := []string{
		`{"version":2,"accounts":[]}`,
		`{"version":1,"accounts":[{"name":"a","role":"god","token_hash":"` + h + `"}]}`,
		`{"version":1,"accounts":[{"name":"a","role":"lead","token_hash":"short"}]}`,
		`{"version":1,"accounts":[{"name":"a","role":"lead","token_hash":"` + h + `"},{"name":"a","role":"lead","token_hash":"` + strings.Repeat("b", 64) + `"}]}`,
		`{"version":1,"accounts":[],"extra":1}`,
	}
	for _, in := range tests {
		if _, err := decodeAccounts([]byte(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}
