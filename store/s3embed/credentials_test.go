package s3embed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/store/s3embed"
)

func TestLoadOrCreateCredentials(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s3", s3embed.CredentialsFile)
	first, created, err := s3embed.LoadOrCreateCredentials(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	if err := first.Validate(); err != nil {
		t.Fatalf("generated credentials invalid: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := s3embed.LoadOrCreateCredentials(path)
	if err != nil || created || again != first {
		t.Fatalf("second call: created=%v err=%v same=%v", created, err, again == first)
	}
	other, err := s3embed.NewCredentials()
	if err != nil || other == first {
		t.Fatalf("NewCredentials repeated a key pair (%v)", err)
	}
	if strings.Contains(first.String(), first.SecretAccessKey) {
		t.Fatal("String shows the secret")
	}

	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{"readable by others", `{"access_key_id":"CLABCDEF","secret_access_key":"0123456789abcdefXYZ"}`, 0o644, "readable by others"},
		{"not JSON", `nope`, 0o600, "credentials file"},
		{"secret too short", `{"access_key_id":"CLABCDEF","secret_access_key":"short"}`, 0o600, "secret access key"},
		{"slash in access key", `{"access_key_id":"CL/AB","secret_access_key":"0123456789abcdefXYZ"}`, 0o600, "access key id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), s3embed.CredentialsFile)
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tc.mode)
			_, _, err := s3embed.LoadOrCreateCredentials(p)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErr)
			}
			if b, _ := os.ReadFile(p); string(b) != tc.content {
				t.Fatal("the bad file was replaced")
			}
		})
	}
}

func TestStartRejectsBadCredentials(t *testing.T) {
	bad := []s3embed.Credentials{
		{},
		{AccessKeyID: "CLOK", SecretAccessKey: ""},
		{AccessKeyID: "a/b", SecretAccessKey: "0123456789abcdefXYZ"},
		{AccessKeyID: "CLOK", SecretAccessKey: "has space in it 0123456"},
	}
	for _, c := range bad {
		srv, err := s3embed.Start(t.Context(), "127.0.0.1:0", t.TempDir(), s3embed.WithCredentials(c))
		if err == nil {
			srv.Close()
			t.Fatalf("Start accepted credentials %q", c.AccessKeyID)
		}
	}
}
