package hfhub_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/hfhub"
	"github.com/clozeloop/clozeloop/hfhub/hubtest"
)

const bertConfig = `{"architectures":["BertForMaskedLM"],"model_type":"bert","hidden_size":8}`

// tinyFiles are the files of a small fill-mask repository; weights are
// random bytes (the client never parses them).
func tinyFiles(seed uint64) map[string][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	w := make([]byte, 300<<10)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	return map[string][]byte{
		"config.json":           []byte(bertConfig),
		"model.safetensors":     w,
		"vocab.txt":             []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n"),
		"tokenizer_config.json": []byte(`{"do_lower_case":true}`),
		"README.md":             []byte("not fetched"),
		"tf_model.h5":           []byte("not fetched either"),
	}
}

func newClient(t *testing.T, srv *hubtest.Server, cache string, mod func(*hfhub.Config)) *hfhub.Client {
	t.Helper()
	cfg := hfhub.Config{Endpoint: srv.URL(), CacheDir: cache}
	if mod != nil {
		mod(&cfg)
	}
	return hfhub.New(cfg)
}

func mustRef(t *testing.T, s string) hfhub.Ref {
	t.Helper()
	r, err := hfhub.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		in       string
		repo     string
		rev      string
		wantErr  string
		bareRepo bool
	}{
		{"hf://google-bert/bert-base-uncased", "google-bert/bert-base-uncased", "main", "", true},
		{"hf://org/m@v1.0", "org/m", "v1.0", "", true},
		{"hf://org/m@refs/pr/1", "org/m", "refs/pr/1", "", true},
		{"hf://bert-base-uncased", "bert-base-uncased", "main", "", false},
		{"org/m", "org/m", "main", "", true},
		{"hf://org/m@", "", "", "empty revision", true},
		{"hf://a/b/c", "", "", "want org/name", false},
		{"hf://org/m@../x", "", "", "not a branch", true},
		{"hf://org--x/m", "", "", "without '--'", false},
		{"hf://", "", "", "no repository", false},
	}
	for _, tc := range tests {
		r, err := hfhub.ParseRef(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRef(%q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || r.Repo != tc.repo || r.Revision != tc.rev {
			t.Errorf("ParseRef(%q) = %+v, %v; want %s@%s", tc.in, r, err, tc.repo, tc.rev)
		}
		if got := hfhub.LooksLikeRepo(strings.TrimPrefix(tc.in, "hf://")); got != tc.bareRepo {
			t.Errorf("LooksLikeRepo(%q) = %v", tc.in, got)
		}
	}
	for _, s := range []string{"./org/m", "models/start/", "/abs/path", "a/b/c"} {
		if hfhub.LooksLikeRepo(s) {
			t.Errorf("LooksLikeRepo(%q) = true", s)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	home := t.TempDir()
	tokenFile := filepath.Join(home, "hfhome", "token")
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("hf_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(home, "other-token")
	if err := os.WriteFile(other, []byte("hf_path"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want hfhub.Config
	}{
		{"defaults", map[string]string{"HOME": home},
			hfhub.Config{Endpoint: "https://huggingface.co", CacheDir: filepath.Join(home, ".cache/huggingface/hub")}},
		{"xdg", map[string]string{"HOME": home, "XDG_CACHE_HOME": "/x"},
			hfhub.Config{Endpoint: "https://huggingface.co", CacheDir: "/x/huggingface/hub"}},
		{"hf home with token file", map[string]string{"HF_HOME": filepath.Join(home, "hfhome"), "HF_ENDPOINT": "http://mirror/", "HF_HUB_OFFLINE": "1"},
			hfhub.Config{Endpoint: "http://mirror", CacheDir: filepath.Join(home, "hfhome/hub"), Token: "hf_file", Offline: true}},
		{"token env wins", map[string]string{"HF_HOME": filepath.Join(home, "hfhome"), "HF_TOKEN": "hf_env", "HF_HUB_CACHE": "/c", "HF_HUB_OFFLINE": "0"},
			hfhub.Config{Endpoint: "https://huggingface.co", CacheDir: "/c", Token: "hf_env"}},
		{"token path", map[string]string{"HOME": home, "HF_TOKEN_PATH": other, "HF_HUB_OFFLINE": "true"},
			hfhub.Config{Endpoint: "https://huggingface.co", CacheDir: filepath.Join(home, ".cache/huggingface/hub"), Token: "hf_path", Offline: true}},
	}
	for _, tc := range tests {
		got, err := hfhub.ConfigFromEnv(func(k string) string { return tc.env[k] })
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func countPrefix(reqs []string, prefix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

func TestPullThenCacheThenOffline(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	files := tinyFiles(1)
	commit := srv.AddCommit("org/tiny", "main", false, files)
	cache := t.TempDir()
	var progress []hfhub.Progress
	c := hfhub.New(hfhub.Config{Endpoint: srv.URL(), CacheDir: cache}, hfhub.WithProgress(func(p hfhub.Progress) { progress = append(progress, p) }))
	ctx := context.Background()
	ref := mustRef(t, "hf://org/tiny")

	snap, err := c.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Commit != commit || snap.Cached || snap.Downloaded != int64(len(files["config.json"])+len(files["model.safetensors"])+len(files["vocab.txt"])+len(files["tokenizer_config.json"])) {
		t.Errorf("first resolve: %+v", snap)
	}
	reqs := srv.Requests()
	// one info call, one HEAD and one GET per needed file, the weights from the storage host
	if got, want := len(reqs), 1+4*2; got != want || countPrefix(reqs, "GET cdn /blobs/") != 1 {
		t.Errorf("first resolve made %d requests, want %d: %q", got, want, reqs)
	}
	var lastWeights hfhub.Progress
	for _, p := range progress {
		if p.File == "model.safetensors" {
			lastWeights = p
		}
	}
	if n := int64(len(files["model.safetensors"])); lastWeights.Done != n || lastWeights.Total != n {
		t.Errorf("last progress of the weights %+v, want %d of %d", lastWeights, n, n)
	}
	// Python client layout: blobs named by etag, relative links, refs/main.
	root := filepath.Join(cache, "models--org--tiny")
	ref0, _ := os.ReadFile(filepath.Join(root, "refs", "main"))
	if string(ref0) != commit {
		t.Errorf("refs/main = %q, want %s", ref0, commit)
	}
	for name, data := range files {
		p := filepath.Join(root, "snapshots", commit, name)
		target, err := os.Readlink(p)
		if name == "README.md" || name == "tf_model.h5" {
			if err == nil {
				t.Errorf("%s fetched, a fill-mask model does not need it", name)
			}
			continue
		}
		want := "../../blobs/" + hubtest.GitSHA1(data)
		if hubtest.IsLFS(name) {
			want = "../../blobs/" + hubtest.SHA256(data)
		}
		if err != nil || target != want {
			t.Errorf("%s links to %q (%v), want %q", name, target, err, want)
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s content differs (%v)", name, err)
		}
	}

	again, err := c.Resolve(ctx, ref)
	if err != nil || !again.Cached || again.Dir != snap.Dir || again.Commit != commit {
		t.Errorf("second resolve: %+v, %v", again, err)
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("second resolve made requests %q", reqs)
	}

	off := newClient(t, srv, cache, func(c *hfhub.Config) { c.Offline = true; c.Endpoint = "http://127.0.0.1:1" })
	for _, r := range []string{"hf://org/tiny", "hf://org/tiny@" + commit} {
		s, err := off.Resolve(ctx, mustRef(t, r))
		if err != nil || s.Dir != snap.Dir {
			t.Errorf("offline %s: %+v, %v", r, s, err)
		}
		if s, err = off.Pull(ctx, mustRef(t, r)); err != nil || s.Dir != snap.Dir {
			t.Errorf("offline pull %s: %+v, %v", r, s, err)
		}
	}
	_, err = off.Resolve(ctx, mustRef(t, "hf://org/other"))
	if !errors.Is(err, hfhub.ErrNotCached) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Errorf("offline, not cached: %v", err)
	}

	// Pull asks again; with nothing new it downloads nothing.
	p, err := c.Pull(ctx, ref)
	if err != nil || p.Downloaded != 0 || p.Commit != commit {
		t.Errorf("pull again: %+v, %v", p, err)
	}
	if reqs := srv.Requests(); len(reqs) != 1 {
		t.Errorf("pull of a cached commit made %q, want the info call only", reqs)
	}
	models, err := c.List()
	if err != nil || len(models) != 1 || models[0].Repo != "org/tiny" || models[0].Refs["main"] != commit ||
		len(models[0].Snapshots) != 1 || !models[0].Snapshots[0].Complete || models[0].Bytes != snap.Downloaded {
		t.Errorf("List: %+v, %v", models, err)
	}
}

// TestPythonClientCache uses a cache laid out by hand as huggingface_hub
// lays it out, without any request.
func TestPythonClientCache(t *testing.T) {
	cache := t.TempDir()
	commit := strings.Repeat("ab", 20)
	root := filepath.Join(cache, "models--google-bert--bert-base-uncased")
	files := map[string][]byte{
		"config.json":       []byte(bertConfig),
		"model.safetensors": []byte("weights"),
		"vocab.txt":         []byte("[PAD]\n"),
		"tokenizer.json":    []byte("{}"),
		"sub/extra.json":    []byte("{}"),
	}
	for name, data := range files {
		blob := filepath.Join(root, "blobs", hubtest.GitSHA1(data))
		if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blob, data, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(root, "snapshots", commit, name)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		rel := strings.Repeat("../", strings.Count(name, "/")+2) + "blobs/" + hubtest.GitSHA1(data)
		if err := os.Symlink(rel, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := hubtest.New()
	defer srv.Close()
	c := newClient(t, srv, cache, nil)
	for _, r := range []string{"hf://google-bert/bert-base-uncased", "hf://google-bert/bert-base-uncased@" + commit} {
		s, err := c.Resolve(context.Background(), mustRef(t, r))
		if err != nil || !s.Cached || s.Dir != filepath.Join(root, "snapshots", commit) {
			t.Errorf("%s: %+v, %v", r, s, err)
		}
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("requests %q", reqs)
	}
	// A revision the cache does not know is asked for online.
	_, err := c.Resolve(context.Background(), mustRef(t, "hf://google-bert/bert-base-uncased@v2"))
	if !errors.Is(err, hfhub.ErrRepoNotFound) {
		t.Errorf("unknown revision: %v", err)
	}
}

func TestResumeAfterDroppedConnection(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	files := tinyFiles(2)
	srv.AddCommit("org/tiny", "main", false, files)
	cache := t.TempDir()
	c := newClient(t, srv, cache, nil)
	ref := mustRef(t, "hf://org/tiny")
	w := files["model.safetensors"]
	srv.CutAfter(w, 100<<10)
	if _, err := c.Resolve(context.Background(), ref); err == nil {
		t.Fatal("a dropped connection gave no error")
	}
	part := filepath.Join(cache, "models--org--tiny", "blobs", hubtest.SHA256(w)+".incomplete")
	st, err := os.Stat(part)
	if err != nil || st.Size() != 100<<10 {
		t.Fatalf("partial download: %v, %v", st, err)
	}
	srv.Requests()
	snap, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if !slices.Contains(reqs, "GET cdn /blobs/"+hubtest.SHA256(w)+" bytes=102400-") {
		t.Errorf("no range request in %q", reqs)
	}
	if got, _ := os.ReadFile(filepath.Join(snap.Dir, "model.safetensors")); !bytes.Equal(got, w) {
		t.Error("resumed weights differ")
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf("incomplete file left: %v", err)
	}
}

func TestCorruptDownloadRefused(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	files := tinyFiles(3)
	srv.AddCommit("org/tiny", "main", false, files)
	srv.Corrupt(files["model.safetensors"])
	cache := t.TempDir()
	c := newClient(t, srv, cache, nil)
	_, err := c.Resolve(context.Background(), mustRef(t, "hf://org/tiny"))
	if !errors.Is(err, hfhub.ErrIntegrity) {
		t.Fatalf("corrupt download: %v", err)
	}
	blobs, _ := os.ReadDir(filepath.Join(cache, "models--org--tiny", "blobs"))
	for _, b := range blobs {
		if strings.HasPrefix(b.Name(), hubtest.SHA256(files["model.safetensors"])) {
			t.Errorf("corrupt blob kept as %s", b.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(cache, "models--org--tiny", "refs", "main")); !os.IsNotExist(err) {
		t.Errorf("refs/main written for a failed pull: %v", err)
	}
}

func TestErrors(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	srv.Token = "hf_secret"
	files := tinyFiles(4)
	srv.AddCommit("org/tiny", "main", false, files)
	srv.AddCommit("org/gated", "main", true, files)
	gpt := tinyFiles(5)
	gpt["config.json"] = []byte(`{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}`)
	srv.AddCommit("openai-community/gpt2", "main", false, gpt)
	llama := tinyFiles(6)
	llama["config.json"] = []byte(`{"model_type":"llama"}`)
	srv.AddCommit("org/llama", "main", false, llama)
	noWeights := map[string][]byte{"config.json": []byte(bertConfig), "vocab.txt": []byte("a\n")}
	srv.AddCommit("org/empty", "main", false, noWeights)

	tests := []struct {
		ref   string
		token string
		is    error
		text  string
	}{
		{"hf://org/missing", "", hfhub.ErrRepoNotFound, "HF_TOKEN"},
		{"hf://org/gated", "", hfhub.ErrGated, "set HF_TOKEN"},
		{"hf://org/gated", "hf_wrong", hfhub.ErrGated, "not been granted"},
		{"hf://org/tiny@v9", "", hfhub.ErrRevisionNotFound, "v9"},
		{"hf://org/tiny@" + strings.Repeat("0", 40), "", hfhub.ErrRevisionNotFound, "RevisionNotFound"},
		{"hf://openai-community/gpt2", "", hfhub.ErrNotFillMask, "GPT2LMHeadModel"},
		{"hf://org/llama", "", hfhub.ErrNotFillMask, `"llama"`},
		{"hf://org/empty", "", hfhub.ErrNotAModel, "model.safetensors"},
	}
	for _, tc := range tests {
		cache := t.TempDir()
		c := newClient(t, srv, cache, func(c *hfhub.Config) { c.Token = tc.token })
		srv.Requests()
		_, err := c.Resolve(context.Background(), mustRef(t, tc.ref))
		t.Logf("%s: %v", tc.ref, err)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: error %v, want %v with %q", tc.ref, err, tc.is, tc.text)
		}
		if reqs := srv.Requests(); countPrefix(reqs, "GET cdn") != 0 {
			t.Errorf("%s: weights downloaded before refusing: %q", tc.ref, reqs)
		}
	}
	// With the token the gated repository opens, and the storage host never sees it.
	c := newClient(t, srv, t.TempDir(), func(c *hfhub.Config) { c.Token = "hf_secret" })
	if _, err := c.Resolve(context.Background(), mustRef(t, "hf://org/gated")); err != nil {
		t.Errorf("gated with token: %v", err)
	}
}

func TestCommitRevision(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	first := srv.AddCommit("org/tiny", "main", false, tinyFiles(7))
	second := srv.AddCommit("org/tiny", "main", false, tinyFiles(8))
	cache := t.TempDir()
	c := newClient(t, srv, cache, nil)
	snap, err := c.Resolve(context.Background(), mustRef(t, "hf://org/tiny@"+first))
	if err != nil || snap.Commit != first || filepath.Base(snap.Dir) != first {
		t.Fatalf("commit revision: %+v, %v", snap, err)
	}
	if _, err := os.Stat(filepath.Join(cache, "models--org--tiny", "refs")); !os.IsNotExist(err) {
		t.Errorf("a commit revision wrote refs: %v", err)
	}
	main, err := c.Resolve(context.Background(), mustRef(t, "hf://org/tiny"))
	if err != nil || main.Commit != second {
		t.Errorf("main: %+v, %v", main, err)
	}
	srv.Requests()
	if s, err := c.Resolve(context.Background(), mustRef(t, "hf://org/tiny@"+first)); err != nil || !s.Cached {
		t.Errorf("cached commit: %+v, %v", s, err)
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("requests %q", reqs)
	}
}

func TestShardedCheckpoint(t *testing.T) {
	srv := hubtest.New()
	defer srv.Close()
	files := tinyFiles(9)
	delete(files, "model.safetensors")
	files["model.safetensors.index.json"] = []byte(`{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}`)
	files["model-00001-of-00002.safetensors"] = []byte("shard one")
	files["model-00002-of-00002.safetensors"] = []byte("shard two")
	files["pytorch_model.bin"] = []byte("not needed with safetensors")
	srv.AddCommit("org/sharded", "main", false, files)
	c := newClient(t, srv, t.TempDir(), nil)
	snap, err := c.Resolve(context.Background(), mustRef(t, "hf://org/sharded"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer_config.json", "vocab.txt"}
	if !slices.Equal(snap.Files, want) {
		t.Errorf("files %q, want %q", snap.Files, want)
	}
	bad := tinyFiles(10)
	delete(bad, "model.safetensors")
	bad["model.safetensors.index.json"] = []byte(`{"weight_map":{"a":"../../escape"}}`)
	srv.AddCommit("org/bad", "main", false, bad)
	if _, err := c.Resolve(context.Background(), mustRef(t, "hf://org/bad")); err == nil || !strings.Contains(err.Error(), "not a plain path") {
		t.Errorf("escaping shard name: %v", err)
	}
}

func TestCheckFillMask(t *testing.T) {
	tests := []struct {
		config string
		ok     bool
	}{
		{`{"architectures":["BertForMaskedLM"],"model_type":"bert"}`, true},
		{`{"architectures":["BertForPreTraining"]}`, true},
		{`{"architectures":["RobertaForMaskedLM"],"model_type":"roberta"}`, true},
		{`{"model_type":"bert"}`, true},
		{`{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}`, false},
		{`{"architectures":["LlamaForCausalLM"]}`, false},
		{`{"architectures":["T5ForConditionalGeneration"],"model_type":"t5"}`, false},
		{`{"model_type":"mistral"}`, false},
		{`not json`, false},
	}
	for _, tc := range tests {
		if err := hfhub.CheckFillMask([]byte(tc.config)); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.config, err)
		}
	}
}
