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
	ss := filepath.Join(tmp, "ss")
	mixed := filepath.Join(tmp, "mixed")
	imp := filepath.Join(tmp, "imported")
	bad := filepath.Join("..", "..", "dataset", "testdata", "pool_bad.jsonl")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"build wordnet", []string{"data", "build", "wordnet", "--wordnet-dir", "../../dataset/testdata/wordnet", "--out", wn, "--eval-fraction", "-1", "--min-context", "0", "--json"}, 0, []string{`"pool": 17`, `"eval": 0`, `"too_little_context": 0`}},
		{"build wordnet min context", []string{"data", "build", "wordnet", "--wordnet-dir", "../../dataset/testdata/wordnet", "--out", filepath.Join(tmp, "wn3"), "--eval-fraction", "-1", "--min-context", "3"}, 0, []string{"pool         12", "too little   5  (fewer than 3 context words)"}},
		{"build wordnet negative min context", []string{"data", "build", "wordnet", "--out", filepath.Join(tmp, "x"), "--min-context", "-1"}, 2, []string{"--min-context must not be negative"}},
		{"build supersense", []string{"data", "build", "supersense", "--wordnet-dir", "../../dataset/testdata/supersense", "--out", ss, "--eval-fraction", "-1", "--min-context", "3", "--json"}, 0, []string{`"pool": 10`, `"too_little_context": 1`, `"noun.food": 2`, `"verb.motion": "motion"`}},
		{"build supersense text", []string{"data", "build", "supersense", "--wordnet-dir", "../../dataset/testdata/supersense", "--out", filepath.Join(tmp, "ss2"), "--eval-fraction", "-1"}, 0, []string{"synsets      9 noun and verb, 8 in pool, 0 in eval", "no class     1"}},
		{"build supersense bad dir", []string{"data", "build", "supersense", "--wordnet-dir", tmp, "--out", filepath.Join(tmp, "ss3")}, 1, []string{"wordnet-base"}},
		{"build mixed", []string{"data", "build", "mixed", "--main", wn, "--target", ss, "--out", mixed, "--target-share", "0.1", "--json"}, 0, []string{`"pool": 19`, `"wn": 17`, `"ss": 2`}},
		{"build mixed text", []string{"data", "build", "mixed", "--main", wn, "--target", ss, "--out", mixed, "--main-source", "wordnet", "--target-source", "kjv", "--main-limit", "9"}, 0, []string{"pool source  wordnet:9 kjv:1  (of 17 wordnet and 10 kjv available)"}},
		{"build mixed bad share", []string{"data", "build", "mixed", "--main", wn, "--target", ss, "--out", mixed, "--target-share", "1.5"}, 2, []string{"0 < --target-share < 1"}},
		{"build mixed too few", []string{"data", "build", "mixed", "--main", wn, "--target", ss, "--out", mixed, "--target-share", "0.5"}, 1, []string{"needs 17 target items"}},
		{"build labelled", []string{"data", "build", "labelled", "--in", filepath.Join(wn, "oracle.jsonl"), "--out", filepath.Join(tmp, "lab"), "--eval-fraction", "0.5", "--seed", "3", "--min-context", "0", "--json"}, 0, []string{`"labelled": {`, `"items": 17`, `"duplicates": 0`}},
		{"build labelled one side", []string{"data", "build", "labelled", "--in", filepath.Join(wn, "oracle.jsonl"), "--out", filepath.Join(tmp, "lab2"), "--eval-fraction", "1"}, 1, []string{"left 0 in the pool", "pick another --seed"}},
		{"build labelled without input", []string{"data", "build", "labelled", "--out", filepath.Join(tmp, "lab3")}, 2, []string{"--in FILE --out DIR"}},
		{"validate low context", []string{"data", "validate", filepath.Join(wn, "pool.jsonl"), "--min-context", "3"}, 0, []string{"17 valid record(s)", "warning: 5 item(s) with fewer than 3 context words", "1 context word(s): [MASK] away!"}},
		{"validate low context json", []string{"data", "validate", filepath.Join(wn, "pool.jsonl"), "--min-context", "2", "--json"}, 0, []string{`"low_context": 1`, `"min_context": 2`}},
		{"validate mixed sources", []string{"data", "validate", filepath.Join(mixed, "pool.jsonl"), "--min-context", "0", "--json"}, 0, []string{`"records": 10`, `"low_context": 0`}},
		{"import low context", []string{"data", "import", filepath.Join(wn, "oracle.jsonl"), "--out", filepath.Join(tmp, "imp2"), "--min-context", "3"}, 0, []string{"wrote ", "warning: 5 item(s)"}},
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
			if strings.HasSuffix(tc.args[len(tc.args)-1], "--json") || tc.args[len(tc.args)-1] == "--json" {
				var v map[string]any
				if err := json.Unmarshal(out.Bytes(), &v); err != nil {
					t.Errorf("--json output is not JSON: %v", err)
				}
			}
		})
	}
}
