package hfhub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Progress reports a file download.
type Progress struct {
	File  string // name in the repository
	Done  int64  // bytes in the cache so far (a resumed download starts above 0)
	Total int64  // expected size (0 when unknown)
}

// Client resolves references against the Hub and the cache. Safe for
// concurrent use by different references; two processes pulling the same
// file at once may both download it (the last rename wins, same content).
type Client struct {
	cfg      Config
	http     *http.Client
	progress func(Progress)
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default http.DefaultClient's
// transport with no timeout; cancel through the context).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithProgress receives download progress (at most every 64 KiB read).
func WithProgress(f func(Progress)) Option { return func(c *Client) { c.progress = f } }

// New returns a client for cfg.
func New(cfg Config, opts ...Option) *Client {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	c := &Client{cfg: cfg, http: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// Snapshot is a resolved model: the folder of the commit in the cache.
type Snapshot struct {
	Ref    Ref
	Commit string
	Dir    string
	// Files are the repository files in Dir that this call fetched or
	// found (set by Pull; Resolve from the cache leaves it empty).
	Files []string
	// Downloaded is the number of bytes this call downloaded.
	Downloaded int64
	// Cached is true when no request was made.
	Cached bool
}

// Resolve returns the snapshot folder of ref. A complete snapshot in the
// cache (a commit reference, or a branch or tag whose refs/ file names a
// complete commit) is used without any request; otherwise the model is
// pulled, unless the client is offline. A branch that has moved on the Hub
// is therefore only refreshed by Pull.
func (c *Client) Resolve(ctx context.Context, ref Ref) (Snapshot, error) {
	snap, err := c.cached(ref)
	if err == nil || c.cfg.Offline {
		return snap, err
	}
	return c.Pull(ctx, ref)
}

// cached returns a complete cached snapshot of ref, checked to be a
// fill-mask model, or an error wrapping ErrNotCached.
func (c *Client) cached(ref Ref) (Snapshot, error) {
	root := c.repoDir(ref.Repo)
	commit := ref.Revision
	if !ref.IsCommit() {
		data, err := os.ReadFile(filepath.Join(root, "refs", filepath.FromSlash(ref.Revision)))
		if err != nil {
			return Snapshot{}, fmt.Errorf("%w: %s has no cached commit for %q (%s)%s", ErrNotCached, ref.Repo, ref.Revision, c.cfg.CacheDir, c.offlineHint(ref))
		}
		commit = strings.TrimSpace(string(data))
		if !commitRE.MatchString(commit) {
			return Snapshot{}, fmt.Errorf("%w: %s: refs/%s holds %q, not a commit hash", ErrNotCached, ref.Repo, ref.Revision, commit)
		}
	}
	dir := filepath.Join(root, "snapshots", commit)
	if missing, ok := snapshotComplete(dir); !ok {
		return Snapshot{}, fmt.Errorf("%w: %s commit %s lacks %s in %s%s", ErrNotCached, ref.Repo, commit, missing, dir, c.offlineHint(ref))
	}
	cfg, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return Snapshot{}, fmt.Errorf("read cached config of %s: %w", ref, err)
	}
	if err := CheckFillMask(cfg); err != nil {
		return Snapshot{}, fmt.Errorf("%s: %w", ref, err)
	}
	return Snapshot{Ref: ref, Commit: commit, Dir: dir, Cached: true}, nil
}

func (c *Client) offlineHint(ref Ref) string {
	if !c.cfg.Offline {
		return ""
	}
	return fmt.Sprintf("; HF_HUB_OFFLINE is set, so nothing is downloaded: run `clozeloop model pull %s` where there is internet, or point HF_HUB_CACHE at a filled cache", ref)
}

func (c *Client) repoDir(repo string) string {
	return filepath.Join(c.cfg.CacheDir, repoFolderName(repo))
}

// repoInfo is the part of GET /api/models/{repo}/revision/{rev} we use.
type repoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

// Pull asks the Hub for the commit and files of ref and downloads the
// files a fill-mask model needs that the cache lacks: config.json first
// (a causal LM is refused before any weight is fetched), the weights
// (model.safetensors, else its sharded index and shards, else
// pytorch_model.bin or its index and shards) and the tokenizer files
// present. Offline, it answers from the cache.
func (c *Client) Pull(ctx context.Context, ref Ref) (Snapshot, error) {
	if c.cfg.Offline {
		return c.cached(ref)
	}
	info, err := c.info(ctx, ref)
	if err != nil {
		return Snapshot{}, err
	}
	if !commitRE.MatchString(info.SHA) {
		return Snapshot{}, fmt.Errorf("hub answer for %s: commit %q is not a hash", ref, info.SHA)
	}
	have := map[string]bool{}
	for _, s := range info.Siblings {
		have[s.RFilename] = true
	}
	snap := Snapshot{Ref: ref, Commit: info.SHA, Dir: filepath.Join(c.repoDir(ref.Repo), "snapshots", info.SHA)}
	get := func(name string) error {
		n, err := c.fetchFile(ctx, ref, info.SHA, name)
		snap.Downloaded += n
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		snap.Files = append(snap.Files, name)
		return nil
	}
	if !have[configFile] {
		return Snapshot{}, fmt.Errorf("%w: %s has no config.json", ErrNotAModel, ref)
	}
	if err := get(configFile); err != nil {
		return Snapshot{}, err
	}
	cfg, err := os.ReadFile(filepath.Join(snap.Dir, configFile))
	if err != nil {
		return Snapshot{}, fmt.Errorf("read config of %s: %w", ref, err)
	}
	if err := CheckFillMask(cfg); err != nil {
		return Snapshot{}, fmt.Errorf("%s: %w", ref, err)
	}
	weights, isIndex, ok := weightChoice(func(n string) bool { return have[n] })
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: %s has no %s or %s (nor their sharded index)", ErrNotAModel, ref, safetensorsFile, pickleFile)
	}
	if err := get(weights); err != nil {
		return Snapshot{}, err
	}
	if isIndex {
		data, err := os.ReadFile(filepath.Join(snap.Dir, weights))
		if err != nil {
			return Snapshot{}, fmt.Errorf("read %s of %s: %w", weights, ref, err)
		}
		shards, err := indexShards(data)
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", ref, err)
		}
		for _, s := range shards {
			if err := get(s); err != nil {
				return Snapshot{}, err
			}
		}
	}
	for _, t := range tokenizerFiles {
		if have[t] {
			if err := get(t); err != nil {
				return Snapshot{}, err
			}
		}
	}
	if missing, ok := snapshotComplete(snap.Dir); !ok {
		return Snapshot{}, fmt.Errorf("%w: %s has no %s", ErrNotAModel, ref, missing)
	}
	if !ref.IsCommit() {
		if err := writeRef(c.repoDir(ref.Repo), ref.Revision, info.SHA); err != nil {
			return Snapshot{}, err
		}
	}
	return snap, nil
}

// info asks the Hub for the commit and file list of ref.
func (c *Client) info(ctx context.Context, ref Ref) (repoInfo, error) {
	u := c.cfg.Endpoint + "/api/models/" + ref.Repo + "/revision/" + url.PathEscape(ref.Revision)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return repoInfo{}, fmt.Errorf("hub request for %s: %w", ref, err)
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return repoInfo{}, fmt.Errorf("ask the Hub (%s) for %s: %w; without internet set HF_HUB_OFFLINE=1 and use a filled cache", c.cfg.Endpoint, ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return repoInfo{}, fmt.Errorf("%s: %w", ref, responseError(resp, c.cfg.Token != ""))
	}
	var info repoInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return repoInfo{}, fmt.Errorf("hub answer for %s: %w", ref, err)
	}
	return info, nil
}

// authorize adds the token to requests for the Hub endpoint (never to
// the storage host a large file redirects to).
func (c *Client) authorize(req *http.Request) {
	req.Header.Set("User-Agent", "clozeloop-hfhub/1")
	if c.cfg.Token == "" {
		return
	}
	if ep, err := url.Parse(c.cfg.Endpoint); err == nil && ep.Host == req.URL.Host {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
}

// resolveURL is {endpoint}/{repo}/resolve/{revision}/{file}.
func (c *Client) resolveURL(repo, revision, name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return c.cfg.Endpoint + "/" + repo + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(parts, "/")
}

// fileMeta is what the HEAD answer says about a file.
type fileMeta struct {
	commit   string
	etag     string // blob name
	size     int64  // -1 when unknown
	sha256   string // expected SHA-256 (LFS files), "" otherwise
	location string // where to GET the content
}

// head reads a file's metadata from the first answer to HEAD on its
// resolve URL, following only relative redirects (a renamed repository),
// as huggingface_hub does; an absolute redirect (the storage host of LFS
// files) is where the content is fetched from.
func (c *Client) head(ctx context.Context, ref Ref, commit, name string) (fileMeta, error) {
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := c.resolveURL(ref.Repo, commit, name)
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			return fileMeta{}, fmt.Errorf("hub request for %s: %w", name, err)
		}
		c.authorize(req)
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := hc.Do(req)
		if err != nil {
			return fileMeta{}, fmt.Errorf("ask the Hub for %s: %w", name, err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			target, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return fileMeta{}, fmt.Errorf("hub redirect for %s: %w", name, err)
			}
			lu, _ := url.Parse(loc)
			if lu != nil && lu.Host == "" && hops < 5 {
				u = target.String()
				continue
			}
			return metaFrom(resp, target.String(), name)
		}
		if resp.StatusCode != http.StatusOK {
			return fileMeta{}, fmt.Errorf("%s: %w", name, responseError(resp, c.cfg.Token != ""))
		}
		return metaFrom(resp, u, name)
	}
}

func metaFrom(resp *http.Response, location, name string) (fileMeta, error) {
	m := fileMeta{commit: resp.Header.Get("X-Repo-Commit"), location: location, size: -1}
	linked := resp.Header.Get("X-Linked-Etag")
	m.etag = normalizeETag(linked)
	if m.etag == "" {
		m.etag = normalizeETag(resp.Header.Get("ETag"))
	}
	if m.etag == "" || !hexRE.MatchString(m.etag) {
		return m, fmt.Errorf("hub answer for %s has no usable ETag (%q): cannot name the blob", name, m.etag)
	}
	if linked != "" && len(m.etag) == 64 {
		m.sha256 = m.etag
	}
	sz := resp.Header.Get("X-Linked-Size")
	if sz == "" {
		sz = resp.Header.Get("Content-Length")
	}
	if sz != "" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || n < 0 {
			return m, fmt.Errorf("hub answer for %s: bad size %q", name, sz)
		}
		m.size = n
	}
	return m, nil
}

// normalizeETag strips the weak prefix and quotes.
func normalizeETag(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	return strings.Trim(s, `"`)
}

// fetchFile makes snapshots/<commit>/<name> in the cache, downloading its
// blob unless the cache has it, and returns the bytes downloaded.
func (c *Client) fetchFile(ctx context.Context, ref Ref, commit, name string) (int64, error) {
	if err := validFileName(name); err != nil {
		return 0, err
	}
	root := c.repoDir(ref.Repo)
	pointer := filepath.Join(root, "snapshots", commit, filepath.FromSlash(name))
	if st, err := os.Stat(pointer); err == nil && st.Mode().IsRegular() {
		return 0, nil // a snapshot file never changes
	}
	meta, err := c.head(ctx, ref, commit, name)
	if err != nil {
		return 0, err
	}
	if meta.commit != "" && meta.commit != commit {
		return 0, fmt.Errorf("hub answered %s at commit %s, asked for %s", name, meta.commit, commit)
	}
	blob := filepath.Join(root, "blobs", meta.etag)
	var n int64
	if !isFile(blob) {
		unlock, err := lockBlob(ctx, c.cfg.CacheDir, ref.Repo, meta.etag)
		if err != nil {
			return 0, err
		}
		defer unlock()
		if !isFile(blob) { // another process may have finished it meanwhile
			if n, err = c.download(ctx, meta, blob, name); err != nil {
				return n, err
			}
		}
	}
	return n, link(blob, pointer)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// link makes pointer a relative symlink to blob, as the Python client does.
func link(blob, pointer string) error {
	if err := os.MkdirAll(filepath.Dir(pointer), 0o755); err != nil {
		return fmt.Errorf("create snapshot folder: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(pointer), blob)
	if err != nil {
		return fmt.Errorf("link %s: %w", pointer, err)
	}
	_ = os.Remove(pointer) // a dangling link from an earlier, removed blob
	if err := os.Symlink(rel, pointer); err != nil {
		return fmt.Errorf("link %s to its blob: %w", pointer, err)
	}
	return nil
}

// download writes the file's content to blob through blob.incomplete,
// resuming a partial download with a Range request, and checks its size
// and (for LFS files) SHA-256 before publishing it.
func (c *Client) download(ctx context.Context, meta fileMeta, blob, name string) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return 0, fmt.Errorf("create blob folder: %w", err)
	}
	tmp := blob + ".incomplete"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", tmp, err)
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f) // hash what an earlier attempt left
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", tmp, err)
	}
	if meta.size >= 0 && have > meta.size {
		if err := restart(f, h); err != nil {
			return 0, err
		}
		have = 0
	}
	var got int64
	if meta.size < 0 || have < meta.size {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, meta.location, nil)
		if err != nil {
			return 0, fmt.Errorf("request %s: %w", name, err)
		}
		c.authorize(req)
		req.Header.Set("Accept-Encoding", "identity")
		if have > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, fmt.Errorf("download %s: %w (run again to resume)", name, err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && have > 0:
		case resp.StatusCode == http.StatusOK:
			if have > 0 { // the server ignored the range: start over
				if err := restart(f, h); err != nil {
					return 0, err
				}
				have = 0
			}
		default:
			return 0, fmt.Errorf("download %s: %w", name, responseError(resp, c.cfg.Token != ""))
		}
		pw := &progressWriter{file: name, done: have, total: max(meta.size, 0), report: c.progress}
		got, err = io.Copy(io.MultiWriter(f, h, pw), resp.Body)
		pw.flush()
		if err != nil {
			return got, fmt.Errorf("download %s: %w (run again to resume from %d bytes)", name, err, have+got)
		}
	}
	total := have + got
	if meta.size >= 0 && total != meta.size {
		return got, fmt.Errorf("download %s: got %d bytes, the Hub says %d (run again to resume)", name, total, meta.size)
	}
	if meta.sha256 != "" {
		if sum := hex.EncodeToString(h.Sum(nil)); sum != meta.sha256 {
			f.Close()
			os.Remove(tmp)
			return got, fmt.Errorf("%w: %s has SHA-256 %s, the Hub says %s; the download was removed, run again", ErrIntegrity, name, sum, meta.sha256)
		}
	}
	if err := f.Close(); err != nil {
		return got, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, blob); err != nil {
		return got, fmt.Errorf("publish blob of %s: %w", name, err)
	}
	return got, nil
}

func restart(f *os.File, h io.Writer) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("restart download: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restart download: %w", err)
	}
	h.(interface{ Reset() }).Reset()
	return nil
}

type progressWriter struct {
	file        string
	done, total int64
	pending     int64
	report      func(Progress)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	p.pending += int64(len(b))
	if p.pending >= 64<<10 {
		p.flush()
	}
	return len(b), nil
}

func (p *progressWriter) flush() {
	p.pending = 0
	if p.report != nil {
		p.report(Progress{File: p.file, Done: p.done, Total: p.total})
	}
}

// writeRef records that revision pointed to commit (refs/<revision>).
func writeRef(root, revision, commit string) error {
	path := filepath.Join(root, "refs", filepath.FromSlash(revision))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create refs folder: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(commit), 0o644); err != nil {
		return fmt.Errorf("write ref %s: %w", revision, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write ref %s: %w", revision, err)
	}
	return nil
}

// IsNotFound reports whether err says the repository, revision or file
// does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrRepoNotFound) || errors.Is(err, ErrRevisionNotFound) || errors.Is(err, ErrEntryNotFound)
}
