package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/hfhub"
	"github.com/clozeloop/clozeloop/hfhub/hubtest"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/safetensors"
)

// hubEnv points the Hub variables at srv and a fresh cache.
func hubEnv(t *testing.T, endpoint string) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_ENDPOINT", endpoint)
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HUGGING_FACE_HUB_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	return filepath.Join(home, "hub")
}

// dirFiles reads the files of a model folder.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func TestPredictFromHub(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	files := dirFiles(t, tinyModelDir(t))
	commit := srv.AddCommit("org/tiny", "main", false, files)
	gpt := map[string][]byte{}
	for k, v := range files {
		gpt[k] = v
	}
	gpt["config.json"] = []byte(`{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","vocab_size":16}`)
	srv.AddCommit("openai-community/gpt2", "main", false, gpt)
	cache := hubEnv(t, srv.URL())

	predict := func(model string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"predict", "--model", model, "--json", "--device", "cpu", "--threads", "1", "the [MASK] barked ."}, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := predict("hf://org/tiny")
	if code != 0 {
		t.Fatalf("predict from the Hub: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"token_str"`) {
		t.Errorf("predict output %s", out)
	}
	reqs := srv.Requests()
	if hubtest.CountCDN(reqs) != 1 || len(reqs) == 0 {
		t.Errorf("first run requests %q, want one weights download", reqs)
	}
	if code, _, errOut := predict("hf://org/tiny"); code != 0 {
		t.Fatalf("second run: %s", errOut)
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("second run made requests %q", reqs)
	}
	// Offline, with the Hub gone, the cache answers; a bare org/name too.
	t.Setenv("HF_HUB_OFFLINE", "1")
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1")
	for _, m := range []string{"hf://org/tiny@" + commit, "org/tiny"} {
		if code, _, errOut := predict(m); code != 0 {
			t.Errorf("offline %s: %s", m, errOut)
		}
	}
	code, _, errOut = predict("hf://org/other")
	if code != 1 || !strings.Contains(errOut, "HF_HUB_OFFLINE") {
		t.Errorf("offline, not cached: exit %d: %s", code, errOut)
	}
	t.Setenv("HF_HUB_OFFLINE", "")
	t.Setenv("HF_ENDPOINT", srv.URL())

	code, _, errOut = predict("hf://openai-community/gpt2")
	if code != 1 || !strings.Contains(errOut, "not a fill-mask model") || !strings.Contains(errOut, "GPT2LMHeadModel") {
		t.Errorf("gpt2: exit %d: %s", code, errOut)
	}
	if reqs := srv.Requests(); hubtest.CountCDN(reqs) != 0 {
		t.Errorf("gpt2 weights downloaded: %q", reqs)
	}

	// model ls and model pull.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"model", "ls", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("model ls: %s", stderr.String())
	}
	var ls struct {
		Cache  string              `json:"cache"`
		Models []hfhub.CachedModel `json:"models"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &ls); err != nil {
		t.Fatal(err)
	}
	if ls.Cache != cache || len(ls.Models) != 2 || ls.Models[1].Repo != "org/tiny" || ls.Models[1].Refs["main"] != commit || ls.Models[1].Bytes == 0 {
		t.Errorf("model ls: %+v", ls)
	}
	stdout.Reset()
	if code := run([]string{"model", "pull", "hf://org/tiny", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("model pull: %s", stderr.String())
	}
	var rep pullReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Commit != commit || rep.Downloaded != 0 || rep.Dir != filepath.Join(cache, "models--org--tiny", "snapshots", commit) {
		t.Errorf("model pull: %+v", rep)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"model", "pull"}, 2, "exactly one reference"},
		{[]string{"model", "pull", "hf://a/b/c"}, 2, "want org/name"},
		{[]string{"model", "pull", "hf://org/missing"}, 1, "repository not found"},
		{[]string{"model", "frob"}, 2, "unknown subcommand"},
	} {
		stderr.Reset()
		if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, %s", tc.args, code, stderr.String())
		}
	}
}

// TestResolveModel: local paths win over bare Hub names, which are tried
// only when no such path exists; hf:// always goes to the Hub.
func TestResolveModel(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	hubEnv(t, srv.URL())
	t.Chdir(t.TempDir())
	if err := os.MkdirAll("org/local", 0o755); err != nil {
		t.Fatal(err)
	}
	env := &cmdEnv{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		model, dir, err string
	}{
		{"", "", ""},
		{"org/local", "org/local", ""},
		{"some/deep/folder", "some/deep/folder", ""},
		{"./org/absent", "./org/absent", ""},
		{"org/absent", "", "no such local folder, and on the Hub: hf://org/absent@main: repository not found"},
		{"hf://org/local", "", "hf://org/local@main: repository not found"},
		{"hf://org/a/b", "", "want org/name"},
	}
	for _, tc := range tests {
		dir, commit, err := resolveModel(context.Background(), env, tc.model)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.model, err, tc.err)
			}
			continue
		}
		if err != nil || dir != tc.dir || commit != "" {
			t.Errorf("%q: %q, %q, %v; want %q", tc.model, dir, commit, err, tc.dir)
		}
	}
}

// TestPredictFromHubSharded serves the tiny model as a sharded checkpoint
// (two safetensors shards and model.safetensors.index.json) from the test
// Hub and predicts with it: the same predictions as the single file.
func TestPredictFromHubSharded(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	files := dirFiles(t, tinyModelDir(t))
	srv.AddCommit("org/tiny", "main", false, files)
	st, err := safetensors.Parse(files[mlm.SafetensorsFile])
	if err != nil {
		t.Fatal(err)
	}
	sharded := map[string][]byte{}
	for k, v := range files {
		if k != mlm.SafetensorsFile {
			sharded[k] = v
		}
	}
	weightMap := map[string]string{}
	parts := make([][]safetensors.Tensor, 2)
	for i, name := range st.Names() {
		tn, _ := st.Tensor(name)
		parts[i%2] = append(parts[i%2], tn)
		weightMap[name] = fmt.Sprintf("model-%05d-of-00002.safetensors", i%2+1)
	}
	for i, p := range parts {
		var b bytes.Buffer
		if err := safetensors.Write(&b, p, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		sharded[fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)] = b.Bytes()
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
	sharded[mlm.SafetensorsIndexFile] = idx
	srv.AddCommit("org/sharded", "main", false, sharded)
	hubEnv(t, srv.URL())

	predict := func(model string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"predict", "--model", model, "--json", "--device", "cpu", "--threads", "1", "the [MASK] barked ."}, &stdout, &stderr); code != 0 {
			t.Fatalf("predict %s: exit %d: %s", model, code, stderr.String())
		}
		return stdout.String()
	}
	single, shards := predict("hf://org/tiny"), predict("hf://org/sharded")
	if single != shards || !strings.Contains(shards, `"token_str"`) {
		t.Errorf("sharded predictions %s, single-file %s", shards, single)
	}
	if n := hubtest.CountCDN(srv.Requests()); n < 2 {
		t.Errorf("%d large-file downloads, want the two shards (and the single file)", n)
	}
}
