package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataCommands(t *testing.T) {
	tmp := t.TempDir()
	wn := filepath.Join(tmp, "wn")
	imp := filepath.Join(tmp, "imported")
	bad := filepath.Join("..", "..", "dataset", "testdata", "pool_bad.jsonl")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"build wordnet", []string{"data", "build", "wordnet", "--wordnet-dir", "../../dataset/testdata/wordnet", "--out", wn, "--eval-fraction", "-1", "--json"}, 0, []string{`"pool": 17`, `"eval": 0`}},
		{"validate bad", []string{"data", "validate", bad}, 1, []string{"pool_bad.jsonl:2: no [MASK] in text", "pool_bad.jsonl:5: unknown field"}},
		{"import bad", []string{"data", "import", bad, "--out", imp}, 1, []string{"nothing written", "4 invalid line(s)"}},
		{"import skip", []string{"data", "import", bad, "--out", imp, "--skip-invalid"}, 0, []string{"3 valid record(s), 4 invalid line(s) skipped"}},
		{"stats", []string{"data", "stats", filepath.Join(wn, "oracle.jsonl"), "--json"}, 0, []string{`"records": 17`, `"kind": "eval"`}},
		{"bad subcommand", []string{"data", "frobnicate"}, 2, []string{"unknown subcommand"}},
		{"build text without input", []string{"data", "build", "text", "--out", wn}, 2, []string{"--in FILE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, all)
			}
			for _, s := range tc.contains {
				if !strings.Contains(all, s) {
					t.Errorf("output lacks %q:\n%s", s, all)
				}
			}
			if tc.name == "import bad" {
				if _, err := os.Stat(imp); !os.IsNotExist(err) {
					t.Errorf("failed import created %s", imp)
				}
			}
			if tc.name == "build wordnet" {
				var v map[string]any
				if err := json.Unmarshal(out.Bytes(), &v); err != nil {
					t.Errorf("--json output is not JSON: %v", err)
				}
			}
		})
	}
}
