package hfhub

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CachedModel is one model repository in the cache.
type CachedModel struct {
	Repo string `json:"repo"`
	Dir  string `json:"dir"`
	// Refs maps revisions (branches, tags) to the commit they last pointed to.
	Refs map[string]string `json:"refs"`
	// Snapshots are the cached commits.
	Snapshots []CachedSnapshot `json:"snapshots"`
	// Bytes is the size of the repository's blobs (shared by snapshots;
	// unfinished downloads not counted).
	Bytes int64 `json:"bytes"`
	// IncompleteBytes is the size of unfinished downloads.
	IncompleteBytes int64 `json:"incomplete_bytes,omitempty"`
}

// CachedSnapshot is one cached commit of a repository.
type CachedSnapshot struct {
	Commit string   `json:"commit"`
	Files  []string `json:"files"`
	Bytes  int64    `json:"bytes"`
	// Complete says whether it holds everything a fill-mask model needs.
	Complete bool `json:"complete"`
}

// List returns the model repositories in the cache, sorted by name. A
// missing cache folder is an empty list.
func (c *Client) List() ([]CachedModel, error) {
	entries, err := os.ReadDir(c.cfg.CacheDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read hub cache: %w", err)
	}
	var out []CachedModel
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "models--") {
			continue
		}
		m, err := readCachedModel(filepath.Join(c.cfg.CacheDir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repo < out[j].Repo })
	return out, nil
}

func readCachedModel(dir string) (CachedModel, error) {
	m := CachedModel{
		Repo: strings.ReplaceAll(strings.TrimPrefix(filepath.Base(dir), "models--"), "--", "/"),
		Dir:  dir,
		Refs: map[string]string{},
	}
	refs := filepath.Join(dir, "refs")
	err := filepath.WalkDir(refs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".tmp") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(refs, p)
		m.Refs[filepath.ToSlash(rel)] = strings.TrimSpace(string(data))
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("read refs of %s: %w", m.Repo, err)
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil && !os.IsNotExist(err) {
		return m, fmt.Errorf("read blobs of %s: %w", m.Repo, err)
	}
	for _, b := range blobs {
		info, err := b.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if strings.HasSuffix(b.Name(), ".incomplete") {
			m.IncompleteBytes += info.Size()
		} else {
			m.Bytes += info.Size()
		}
	}
	snaps, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil && !os.IsNotExist(err) {
		return m, fmt.Errorf("read snapshots of %s: %w", m.Repo, err)
	}
	for _, s := range snaps {
		if !s.IsDir() {
			continue
		}
		sd := filepath.Join(dir, "snapshots", s.Name())
		cs := CachedSnapshot{Commit: s.Name()}
		err := filepath.WalkDir(sd, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			st, err := os.Stat(p) // follows the link to the blob
			if err != nil {
				return nil // a dangling link: not counted
			}
			rel, _ := filepath.Rel(sd, p)
			cs.Files = append(cs.Files, filepath.ToSlash(rel))
			cs.Bytes += st.Size()
			return nil
		})
		if err != nil {
			return m, fmt.Errorf("read snapshot %s of %s: %w", s.Name(), m.Repo, err)
		}
		_, cs.Complete = snapshotComplete(sd)
		m.Snapshots = append(m.Snapshots, cs)
	}
	return m, nil
}
