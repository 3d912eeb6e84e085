package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ManifestFormat is the current manifest format version.
const ManifestFormat = 1

// ErrConflict means a model version already exists with different content;
// versions are immutable.
var ErrConflict = errors.New("version exists with different content")

// ManifestEntry is one file of a checkpoint.
type ManifestEntry struct {
	// Path is slash-separated and relative to the checkpoint prefix.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest lists every file of a checkpoint. It is written after all the
// files, so its presence means the checkpoint is complete. It holds no
// timestamps: identical directories give byte-identical manifests, and the
// manifest's own SHA-256 identifies the checkpoint's content.
type Manifest struct {
	Format int             `json:"format"`
	Files  []ManifestEntry `json:"files"`
}

// Size returns the total size of the files in bytes.
func (m Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

func (m Manifest) encode() ([]byte, string, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("encode manifest: %w", err)
	}
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

func parseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Format != ManifestFormat {
		return m, fmt.Errorf("manifest format %d, want %d", m.Format, ManifestFormat)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if err := validateKey(f.Path); err != nil {
			return m, fmt.Errorf("manifest entry: %w", err)
		}
		if seen[f.Path] {
			return m, fmt.Errorf("manifest lists %q twice", f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 || len(f.SHA256) != 64 {
			return m, fmt.Errorf("manifest entry %q: bad size or sha256", f.Path)
		}
	}
	return m, nil
}

// checkpointPrefix normalises a checkpoint prefix to "a/b/" form.
func checkpointPrefix(prefix string) (string, error) {
	p := strings.TrimSuffix(prefix, "/")
	if err := validateKey(p); err != nil {
		return "", fmt.Errorf("%w: checkpoint prefix: %w", ErrInvalidKey, err)
	}
	return p + "/", nil
}

// scanDir hashes every regular file under dir (following symlinks to files)
// and returns the manifest plus the local path of each entry.
func scanDir(ctx context.Context, dir string) (Manifest, []string, error) {
	m := Manifest{Format: ManifestFormat}
	var locals []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p) // follows symlinks (Hugging Face caches use them)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := validateKey(rel); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if rel == ManifestFile {
			return fmt.Errorf("%s: the name %s is reserved for the checkpoint manifest", p, ManifestFile)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		size, sum, err := hashSeeker(ctx, f)
		if err != nil {
			return fmt.Errorf("hash %s: %w", p, err)
		}
		m.Files = append(m.Files, ManifestEntry{Path: rel, Size: size, SHA256: sum})
		locals = append(locals, p)
		return nil
	})
	if err != nil {
		return m, nil, fmt.Errorf("scan checkpoint dir %s: %w", dir, err)
	}
	if len(m.Files) == 0 {
		return m, nil, fmt.Errorf("scan checkpoint dir %s: no files", dir)
	}
	// WalkDir order is lexical per directory; sort by full path for a
	// canonical manifest.
	idx := make([]int, len(m.Files))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return m.Files[idx[a]].Path < m.Files[idx[b]].Path })
	files := make([]ManifestEntry, len(idx))
	paths := make([]string, len(idx))
	for i, j := range idx {
		files[i], paths[i] = m.Files[j], locals[j]
	}
	m.Files = files
	return m, paths, nil
}

// UploadDir uploads every file under localDir to prefix (e.g. a round's
// candidate model, runs/<run-id>/models/round-0003/), then writes the manifest (prefix + MANIFEST.json)
// last, so the checkpoint becomes visible only once complete. Files already
// stored with the same checksum are skipped, so re-running an interrupted or
// finished upload is cheap and idempotent. It returns the manifest and its
// SHA-256.
func (s *Store) UploadDir(ctx context.Context, localDir, prefix string) (Manifest, string, error) {
	p, err := checkpointPrefix(prefix)
	if err != nil {
		return Manifest{}, "", err
	}
	m, locals, err := scanDir(ctx, localDir)
	if err != nil {
		return Manifest{}, "", err
	}
	body, sum, err := m.encode()
	if err != nil {
		return Manifest{}, "", err
	}
	if err := s.uploadManifestFiles(ctx, p, m, locals); err != nil {
		return Manifest{}, "", err
	}
	if _, err := s.PutBytes(ctx, ManifestKey(p), body); err != nil {
		return Manifest{}, "", fmt.Errorf("upload checkpoint %s: write manifest: %w", p, err)
	}
	s.log.Info("checkpoint uploaded", "prefix", p, "files", len(m.Files), "bytes", m.Size(), "manifest_sha256", sum)
	return m, sum, nil
}

func (s *Store) uploadManifestFiles(ctx context.Context, prefix string, m Manifest, locals []string) error {
	for i, e := range m.Files {
		f, err := os.Open(locals[i])
		if err != nil {
			return fmt.Errorf("upload checkpoint %s: %w", prefix, err)
		}
		_, err = s.putSeekable(ctx, prefix+e.Path, f, e.Size, e.SHA256)
		f.Close()
		if err != nil {
			return fmt.Errorf("upload checkpoint %s: %w", prefix, err)
		}
	}
	return nil
}

// ReadManifest fetches and parses the manifest of the checkpoint at prefix.
// A checkpoint whose upload has not finished has no manifest and gives an
// error wrapping ErrNotFound.
func (s *Store) ReadManifest(ctx context.Context, prefix string) (Manifest, string, error) {
	p, err := checkpointPrefix(prefix)
	if err != nil {
		return Manifest{}, "", err
	}
	b, _, err := s.GetBytes(ctx, ManifestKey(p))
	if err != nil {
		return Manifest{}, "", fmt.Errorf("read checkpoint %s (missing, or its upload has not finished): %w", p, err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("read checkpoint %s: %w", p, err)
	}
	sum := sha256.Sum256(b)
	return m, hex.EncodeToString(sum[:]), nil
}

// DownloadDir makes the checkpoint at prefix available locally and returns
// its folder, cacheRoot/<manifest-sha256>. A folder there is only ever
// created complete (downloaded to a temporary folder, verified, renamed), so
// when it already exists nothing but the manifest is fetched.
func (s *Store) DownloadDir(ctx context.Context, prefix, cacheRoot string) (string, Manifest, error) {
	p, err := checkpointPrefix(prefix)
	if err != nil {
		return "", Manifest{}, err
	}
	m, sum, err := s.ReadManifest(ctx, p)
	if err != nil {
		return "", Manifest{}, err
	}
	dir, err := s.fetchToCache(ctx, p, m, sum, cacheRoot)
	return dir, m, err
}

func (s *Store) fetchToCache(ctx context.Context, prefix string, m Manifest, sum, cacheRoot string) (string, error) {
	final := filepath.Join(cacheRoot, sum)
	if _, err := os.Stat(final); err == nil {
		ok, why := s.verifyCached(ctx, final, m)
		if ok {
			s.log.Debug("checkpoint cache hit", "prefix", prefix, "dir", final)
			return final, nil
		}
		s.log.Warn("checkpoint cache damaged; downloading again", "prefix", prefix, "dir", final, "reason", why)
	}
	if err := os.RemoveAll(final); err != nil {
		return "", fmt.Errorf("download checkpoint %s: clear damaged cache %s: %w", prefix, final, err)
	}
	if err := os.Remove(stampPath(final)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("download checkpoint %s: clear damaged cache %s: %w", prefix, final, err)
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return "", fmt.Errorf("download checkpoint %s: %w", prefix, err)
	}
	tmp, err := os.MkdirTemp(cacheRoot, ".tmp-"+sum[:12]+"-")
	if err != nil {
		return "", fmt.Errorf("download checkpoint %s: %w", prefix, err)
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	for _, e := range m.Files {
		local := filepath.Join(tmp, filepath.FromSlash(e.Path))
		info, err := s.GetFile(ctx, prefix+e.Path, local)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("%w: %w", ErrIncomplete, err)
			}
			return "", fmt.Errorf("download checkpoint %s: %w", prefix, err)
		}
		if info.SHA256 != e.SHA256 || info.Size != e.Size {
			return "", fmt.Errorf("download checkpoint %s: %s: %w: manifest says %d bytes sha256 %s, object has %d bytes sha256 %s",
				prefix, e.Path, ErrChecksumMismatch, e.Size, e.SHA256, info.Size, info.SHA256)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if ok, _ := s.verifyCached(ctx, final, m); ok { // another worker won the race
			return final, nil
		}
		return "", fmt.Errorf("download checkpoint %s: move into cache: %w", prefix, err)
	}
	// The files were hashed while downloading; record that with their
	// identity. Without the stamp the next use hashes them again.
	if err := stampDownloaded(final, m); err != nil {
		s.log.Warn("cannot record the verified checkpoint cache; its files will be hashed again at next use", "dir", final, "err", err)
	}
	s.log.Info("checkpoint downloaded", "prefix", prefix, "dir", final, "files", len(m.Files), "bytes", m.Size())
	return final, nil
}

// Pointer is the content of models/<name>/latest.
type Pointer struct {
	Model          string `json:"model"`
	Version        string `json:"version"`
	Prefix         string `json:"prefix"`
	ManifestSHA256 string `json:"manifest_sha256"`
}

// PublishModel uploads localDir as models/<name>/<version>/ (files, then
// manifest) and then moves models/<name>/latest to it. Versions are
// immutable: publishing different content under an existing version fails
// with ErrConflict; republishing identical content is a cheap no-op.
func (s *Store) PublishModel(ctx context.Context, localDir, name, version string) (Pointer, error) {
	mk, err := Model(name)
	if err != nil {
		return Pointer{}, err
	}
	prefix, err := mk.Version(version)
	if err != nil {
		return Pointer{}, err
	}
	m, locals, err := scanDir(ctx, localDir)
	if err != nil {
		return Pointer{}, err
	}
	body, sum, err := m.encode()
	if err != nil {
		return Pointer{}, err
	}
	_, oldSum, err := s.ReadManifest(ctx, prefix)
	switch {
	case err == nil && oldSum != sum:
		return Pointer{}, fmt.Errorf("publish %s: %w (stored manifest %s, local %s)", prefix, ErrConflict, oldSum, sum)
	case err != nil && !errors.Is(err, ErrNotFound):
		return Pointer{}, fmt.Errorf("publish %s: %w", prefix, err)
	}
	if err := s.uploadManifestFiles(ctx, prefix, m, locals); err != nil {
		return Pointer{}, fmt.Errorf("publish %s: %w", prefix, err)
	}
	if _, err := s.PutBytes(ctx, ManifestKey(prefix), body); err != nil {
		return Pointer{}, fmt.Errorf("publish %s: write manifest: %w", prefix, err)
	}
	return s.SetLatest(ctx, name, version)
}

// SetLatest points models/<name>/latest at an already uploaded version. It
// first checks that the version's manifest exists and that every file it
// lists is stored with the listed size and checksum; otherwise it fails with
// ErrIncomplete (or ErrNotFound when there is no manifest) and leaves the
// pointer alone.
func (s *Store) SetLatest(ctx context.Context, name, version string) (Pointer, error) {
	mk, err := Model(name)
	if err != nil {
		return Pointer{}, err
	}
	prefix, err := mk.Version(version)
	if err != nil {
		return Pointer{}, err
	}
	m, sum, err := s.ReadManifest(ctx, prefix)
	if err != nil {
		return Pointer{}, fmt.Errorf("set latest %s: %w", prefix, err)
	}
	for _, e := range m.Files {
		info, err := s.Head(ctx, prefix+e.Path)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("%w: %w", ErrIncomplete, err)
			}
			return Pointer{}, fmt.Errorf("set latest %s: %w", prefix, err)
		}
		if info.Size != e.Size || (info.SHA256 != "" && info.SHA256 != e.SHA256) {
			return Pointer{}, fmt.Errorf("set latest %s: %w: %s does not match its manifest entry", prefix, ErrIncomplete, e.Path)
		}
	}
	ptr := Pointer{Model: name, Version: version, Prefix: prefix, ManifestSHA256: sum}
	b, err := json.MarshalIndent(ptr, "", "  ")
	if err != nil {
		return Pointer{}, fmt.Errorf("set latest %s: %w", prefix, err)
	}
	if _, err := s.PutBytes(ctx, mk.Latest(), append(b, '\n')); err != nil {
		return Pointer{}, fmt.Errorf("set latest %s: %w", prefix, err)
	}
	s.log.Info("model published", "model", name, "version", version, "manifest_sha256", sum)
	return ptr, nil
}

// Latest reads models/<name>/latest. A model never published gives an error
// wrapping ErrNotFound.
func (s *Store) Latest(ctx context.Context, name string) (Pointer, error) {
	mk, err := Model(name)
	if err != nil {
		return Pointer{}, err
	}
	b, _, err := s.GetBytes(ctx, mk.Latest())
	if err != nil {
		return Pointer{}, fmt.Errorf("read latest of model %s: %w", name, err)
	}
	var p Pointer
	if err := json.Unmarshal(b, &p); err != nil {
		return Pointer{}, fmt.Errorf("read latest of model %s: parse: %w", name, err)
	}
	want, err := mk.Version(p.Version)
	if err != nil || p.Prefix != want || p.Model != name {
		return Pointer{}, fmt.Errorf("read latest of model %s: pointer names %q/%q", name, p.Model, p.Version)
	}
	return p, nil
}

// DownloadLatest downloads the version models/<name>/latest points at into
// cacheRoot (see DownloadDir) and returns its folder and the pointer.
func (s *Store) DownloadLatest(ctx context.Context, name, cacheRoot string) (string, Pointer, error) {
	p, err := s.Latest(ctx, name)
	if err != nil {
		return "", p, err
	}
	m, sum, err := s.ReadManifest(ctx, p.Prefix)
	if err != nil {
		return "", p, err
	}
	if sum != p.ManifestSHA256 {
		return "", p, fmt.Errorf("download latest of model %s: %w: manifest of %s changed after it was published", name, ErrChecksumMismatch, path.Clean(p.Prefix))
	}
	dir, err := s.fetchToCache(ctx, p.Prefix, m, sum, cacheRoot)
	return dir, p, err
}
