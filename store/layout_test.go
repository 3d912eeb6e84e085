package store

import (
	"errors"
	"strings"
	"testing"
)

func TestModelLayout(t *testing.T) {
	model, err := Model("bert-base")
	if err != nil {
		t.Fatal(err)
	}
	version, err := model.Version("v7")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{ManifestKey("runs/r/models/round-0002/"), "runs/r/models/round-0002/MANIFEST.json"},
		{version, "models/bert-base/v7/"},
		{model.Latest(), "models/bert-base/latest"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestLayoutRejectsBadIDs(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
	}{
		{"empty name", func() error { _, err := Model(""); return err }},
		{"slash in name", func() error { _, err := Model("a/b"); return err }},
		{"dot-dot name", func() error { _, err := Model(".."); return err }},
		{"leading dash", func() error { _, err := Model("-x"); return err }},
		{"too long", func() error { _, err := Model(strings.Repeat("a", 129)); return err }},
		{"space", func() error { _, err := Model("my model"); return err }},
		{"reserved version", func() error { m, _ := Model("m"); _, err := m.Version("latest"); return err }},
		{"zero ModelKeys", func() error { _, err := ModelKeys{}.Version("v1"); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.fn(); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"runs/r/round-0/batch.jsonl", true},
		{"a", true},
		{"", false},
		{"/abs", false},
		{"trailing/", false},
		{"a//b", false},
		{"a/./b", false},
		{"a/../b", false},
		{"back\\slash", false},
		{"nul\x00", false},
		{"bad\xffutf8", false},
		{strings.Repeat("k", 1025), false},
	}
	for _, tc := range tests {
		err := ValidateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%t", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) error does not wrap ErrInvalidKey", tc.key)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr bool
	}{
		{"empty", nil, Config{}, false},
		{"all set", map[string]string{
			EnvEndpoint: "http://127.0.0.1:9000", EnvBucket: "b", EnvPrefix: "p/q",
			EnvRegion: "eu-west-1", EnvPathStyle: "true",
		}, Config{Endpoint: "http://127.0.0.1:9000", Bucket: "b", Prefix: "p/q", Region: "eu-west-1", PathStyle: true}, false},
		{"bad bool", map[string]string{EnvPathStyle: "yes please"}, Config{}, true},
		{"static credentials", map[string]string{EnvBucket: "b", EnvAccessKeyID: "CLKEY", EnvSecretAccessKey: "s3cr3t"},
			Config{Bucket: "b", AccessKeyID: "CLKEY", SecretAccessKey: "s3cr3t"}, false},
		{"access key without secret", map[string]string{EnvAccessKeyID: "CLKEY"}, Config{}, true},
		{"secret without access key", map[string]string{EnvSecretAccessKey: "s3cr3t"}, Config{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configFromLookup(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, wantErr %t", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Bucket: "b", Endpoint: "http://localhost:9000"}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"good", func(*Config) {}, true},
		{"aws", func(c *Config) { c.Endpoint = "" }, true},
		{"no bucket", func(c *Config) { c.Bucket = "" }, false},
		{"bad scheme", func(c *Config) { c.Endpoint = "ftp://x" }, false},
		{"no host", func(c *Config) { c.Endpoint = "http://" }, false},
		{"half static creds", func(c *Config) { c.AccessKeyID = "id" }, false},
		{"tiny parts", func(c *Config) { c.PartSize = 1024 }, false},
		{"bad prefix", func(c *Config) { c.Prefix = "a/../b" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%t", err, tc.ok)
			}
		})
	}
}

func TestConfigStringHidesSecret(t *testing.T) {
	c := Config{Bucket: "b", AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "very-secret-value"}
	for _, s := range []string{c.String(), c.LogValue().String()} {
		if strings.Contains(s, "very-secret-value") || strings.Contains(s, "AKIAEXAMPLE") {
			t.Fatalf("config description leaks credentials: %s", s)
		}
	}
}
