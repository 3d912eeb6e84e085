package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The download cache records, beside each complete folder
// <cache>/<manifest-sha256>/, a stamp <cache>/<manifest-sha256>.verified.json:
// for every file the SHA-256 it had when it was last hashed and the
// file's identity then (size, modification time, inode and status-change
// time). A folder is used only when every file still has the stamp's
// identity, or, where it does not (or there is no stamp), when hashing the
// file again gives the manifest's SHA-256.
//
// Why not size alone: a file changed in place keeps its size. Why not hash
// on every use: a model is read by every scoring, training and evaluation
// activity, and hashing a few hundred megabytes each time costs about a
// second per gigabyte. The identity check costs one stat per file, and it
// catches every write through the file system: a write changes the
// modification time, and the status-change time (which, unlike the
// modification time, no program can set back) changes with every write,
// chmod or utime; replacing the file by another changes its inode. What it
// cannot see is a change below the file system (a disk returning other
// bytes); that would take hashing at every use.

// stampSuffix makes the stamp's name from the folder's.
const stampSuffix = ".verified.json"

// cacheStamp is the content of a folder's stamp.
type cacheStamp struct {
	Files map[string]fileStamp `json:"files"`
}

// fileStamp is a file's content hash and identity when it was hashed.
type fileStamp struct {
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	ModTime int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode,omitempty"`
	Ctime   int64  `json:"ctime_ns,omitempty"`
}

func stampPath(dir string) string { return dir + stampSuffix }

// identity returns the identity part of a file's stamp.
func identity(fi os.FileInfo) fileStamp {
	ino, ctime := inodeAndCtime(fi)
	return fileStamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), Inode: ino, Ctime: ctime}
}

func (a fileStamp) sameIdentity(b fileStamp) bool {
	return a.Size == b.Size && a.ModTime == b.ModTime && a.Inode == b.Inode && a.Ctime == b.Ctime
}

// readStamp reads dir's stamp; a missing or unreadable stamp is empty (every
// file is then hashed again).
func readStamp(dir string) cacheStamp {
	var st cacheStamp
	b, err := os.ReadFile(stampPath(dir))
	if err == nil {
		_ = json.Unmarshal(b, &st) // a damaged stamp only costs a re-hash
	}
	if st.Files == nil {
		st.Files = map[string]fileStamp{}
	}
	return st
}

// writeStamp replaces dir's stamp atomically.
func writeStamp(dir string, st cacheStamp) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dir), ".stamp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), stampPath(dir))
}

// hashFile returns the SHA-256 of the file at path.
func hashFile(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx: ctx, r: f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifyCached reports whether dir holds every file of m with the
// manifest's content (see the comment at the top of this file), and why
// not. Files whose identity changed but whose content is still right are
// stamped again.
func (s *Store) verifyCached(ctx context.Context, dir string, m Manifest) (bool, string) {
	st := readStamp(dir)
	restamp := false
	for _, e := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			return false, fmt.Sprintf("%s: %v", e.Path, err)
		case !fi.Mode().IsRegular():
			return false, fmt.Sprintf("%s is not a regular file", e.Path)
		case fi.Size() != e.Size:
			return false, fmt.Sprintf("%s has %d bytes, manifest %d", e.Path, fi.Size(), e.Size)
		}
		now := identity(fi)
		if old, ok := st.Files[e.Path]; ok && old.SHA256 == e.SHA256 && old.sameIdentity(now) {
			continue
		}
		sum, err := hashFile(ctx, p)
		if err != nil {
			return false, fmt.Sprintf("%s: hash: %v", e.Path, err)
		}
		if sum != e.SHA256 {
			return false, fmt.Sprintf("%s has sha256 %s, manifest %s", e.Path, sum, e.SHA256)
		}
		now.SHA256 = sum
		st.Files[e.Path] = now
		restamp = true
	}
	if restamp {
		if err := writeStamp(dir, st); err != nil {
			s.log.Warn("cannot record the verified checkpoint cache; its files will be hashed again at next use", "dir", dir, "err", err)
		}
	}
	return true, ""
}

// stampDownloaded records the files of a folder just downloaded and
// verified (their SHA-256 is the manifest's).
func stampDownloaded(dir string, m Manifest) error {
	st := cacheStamp{Files: map[string]fileStamp{}}
	for _, e := range m.Files {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(e.Path)))
		if err != nil {
			return err
		}
		fs := identity(fi)
		fs.SHA256 = e.SHA256
		st.Files[e.Path] = fs
	}
	return writeStamp(dir, st)
}
