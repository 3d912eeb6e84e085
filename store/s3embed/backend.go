package s3embed

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// folderBackend is a gofakes3.Backend that keeps each object as a plain file
// in a folder:
//
//	<root>/buckets/<bucket>/<key>          object content
//	<root>/meta/<bucket>/<key>.meta.json   size, MD5 and user metadata
//	<root>/tmp/                            uploads in progress
//
// Writes go to a temporary file that is renamed into place, so a reader
// never sees a partial object and a failed or cancelled upload leaves
// nothing behind. A file dropped into the bucket folder by hand is served
// with its MD5 computed on first read.
type folderBackend struct {
	root string
	mu   sync.RWMutex // guards renames and meta updates against readers
}

var _ gofakes3.Backend = (*folderBackend)(nil)

// objectMeta is the sidecar stored next to each object.
type objectMeta struct {
	Size     int64             `json:"size"`
	MD5      string            `json:"md5"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Modified time.Time         `json:"modified"`
}

func newFolderBackend(root string) (*folderBackend, error) {
	for _, d := range []string{"buckets", "meta", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("s3embed: create %s: %w", d, err)
		}
	}
	// Leftovers of uploads interrupted by a crash.
	entries, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("s3embed: read tmp: %w", err)
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(root, "tmp", e.Name()))
	}
	return &folderBackend{root: root}, nil
}

func (b *folderBackend) bucketDir(bucket string) string {
	return filepath.Join(b.root, "buckets", bucket)
}

// checkKey rejects keys that cannot be represented as a relative file path
// inside a bucket folder: empty, with empty, "." or ".." segments, with a
// NUL or a backslash.
func checkKey(key string) error {
	if key == "" || strings.ContainsAny(key, "\x00\\") {
		return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "key not supported by the folder backend (empty, NUL or backslash)")
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument,
				"key with empty, '.' or '..' segments not supported by the folder backend")
		}
	}
	return nil
}

// within reports whether p lies strictly inside dir (both clean, absolute).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// objectPath maps a key onto the bucket folder, rejecting keys that cannot
// be represented as a relative file path and any path that would not lie
// inside the bucket's folder.
func (b *folderBackend) objectPath(bucket, key string) (string, error) {
	if err := gofakes3.ValidateBucketName(bucket); err != nil {
		return "", err
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	dir := b.bucketDir(bucket)
	p := filepath.Join(dir, filepath.FromSlash(key))
	if !within(dir, p) {
		return "", gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "key resolves outside the bucket")
	}
	return p, nil
}

// metaPath is the sidecar of a key objectPath accepted.
func (b *folderBackend) metaPath(bucket, key string) (string, error) {
	if _, err := b.objectPath(bucket, key); err != nil {
		return "", err
	}
	dir := filepath.Join(b.root, "meta", bucket)
	p := filepath.Join(dir, filepath.FromSlash(key)+".meta.json")
	if !within(dir, p) {
		return "", gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "key resolves outside the bucket")
	}
	return p, nil
}

// openRegular opens p for reading, refusing anything but a regular file (a
// symbolic link placed in the data folder could point outside it).
func openRegular(p string) (*os.File, fs.FileInfo, error) {
	lfi, err := os.Lstat(p)
	if err != nil {
		return nil, nil, err
	}
	if !lfi.Mode().IsRegular() {
		return nil, lfi, fs.ErrNotExist
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !os.SameFile(lfi, fi) {
		f.Close()
		return nil, nil, fs.ErrNotExist // replaced between the checks
	}
	return f, fi, nil
}

func (b *folderBackend) bucketExists(bucket string) (bool, error) {
	if gofakes3.ValidateBucketName(bucket) != nil {
		return false, nil
	}
	fi, err := os.Stat(b.bucketDir(bucket))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}

func (b *folderBackend) requireBucket(bucket string) error {
	ok, err := b.bucketExists(bucket)
	if err != nil {
		return err
	}
	if !ok {
		return gofakes3.BucketNotFound(bucket)
	}
	return nil
}

// ListBuckets implements gofakes3.Backend.
func (b *folderBackend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	entries, err := os.ReadDir(filepath.Join(b.root, "buckets"))
	if err != nil {
		return nil, err
	}
	var out []gofakes3.BucketInfo
	for _, e := range entries {
		if !e.IsDir() || gofakes3.ValidateBucketName(e.Name()) != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, gofakes3.BucketInfo{Name: e.Name(), CreationDate: gofakes3.NewContentTime(info.ModTime())})
	}
	return out, nil
}

// CreateBucket implements gofakes3.Backend.
func (b *folderBackend) CreateBucket(name string) error {
	if err := gofakes3.ValidateBucketName(name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ok, err := b.bucketExists(name)
	if err != nil {
		return err
	}
	if ok {
		return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, name)
	}
	if err := os.MkdirAll(b.bucketDir(name), 0o755); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(b.root, "meta", name), 0o755)
}

// BucketExists implements gofakes3.Backend.
func (b *folderBackend) BucketExists(name string) (bool, error) { return b.bucketExists(name) }

// DeleteBucket implements gofakes3.Backend.
func (b *folderBackend) DeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.requireBucket(name); err != nil {
		return err
	}
	entries, err := os.ReadDir(b.bucketDir(name))
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, name)
	}
	if err := os.RemoveAll(filepath.Join(b.root, "meta", name)); err != nil {
		return err
	}
	return os.Remove(b.bucketDir(name))
}

// ForceDeleteBucket implements gofakes3.Backend.
func (b *folderBackend) ForceDeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.requireBucket(name); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(b.root, "meta", name)); err != nil {
		return err
	}
	return os.RemoveAll(b.bucketDir(name))
}

// loadMeta reads an object's sidecar; a missing or stale sidecar is rebuilt
// from the file (MD5 recomputed, user metadata kept).
func (b *folderBackend) loadMeta(bucket, key string, fi fs.FileInfo, f io.ReaderAt) (objectMeta, error) {
	var m objectMeta
	mp, err := b.metaPath(bucket, key)
	if err != nil {
		return m, err
	}
	raw, err := os.ReadFile(mp)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &m); err != nil {
			return m, fmt.Errorf("s3embed: metadata of %s/%s: %w", bucket, key, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return m, err
	}
	if m.MD5 == "" || m.Size != fi.Size() {
		h := md5.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
			return m, err
		}
		m.MD5 = hex.EncodeToString(h.Sum(nil))
		m.Size = fi.Size()
		m.Modified = fi.ModTime()
	}
	return m, nil
}

// open returns the object file and its metadata. The caller closes the file.
func (b *folderBackend) open(bucket, key string) (*os.File, fs.FileInfo, objectMeta, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.requireBucket(bucket); err != nil {
		return nil, nil, objectMeta{}, err
	}
	p, err := b.objectPath(bucket, key)
	if err != nil {
		return nil, nil, objectMeta{}, gofakes3.KeyNotFound(key)
	}
	f, fi, err := openRegular(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil, objectMeta{}, gofakes3.KeyNotFound(key)
	}
	if err != nil {
		return nil, nil, objectMeta{}, err
	}
	m, err := b.loadMeta(bucket, key, fi, f)
	if err != nil {
		f.Close()
		return nil, nil, objectMeta{}, err
	}
	return f, fi, m, nil
}

func hashBytes(hexMD5 string) []byte {
	h, err := hex.DecodeString(hexMD5)
	if err != nil {
		return nil
	}
	return h
}

// HeadObject implements gofakes3.Backend.
func (b *folderBackend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	f, fi, m, err := b.open(bucket, key)
	if err != nil {
		return nil, err
	}
	f.Close()
	return &gofakes3.Object{
		Name:     key,
		Metadata: cloneMeta(m.Metadata),
		Size:     fi.Size(),
		Contents: io.NopCloser(bytes.NewReader(nil)),
		Hash:     hashBytes(m.MD5),
	}, nil
}

// GetObject implements gofakes3.Backend.
func (b *folderBackend) GetObject(bucket, key string, rangeRequest *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	f, fi, m, err := b.open(bucket, key)
	if err != nil {
		return nil, err
	}
	rng, err := rangeRequest.Range(fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	start, length := int64(0), fi.Size()
	if rng != nil {
		start, length = rng.Start, rng.Length
	}
	return &gofakes3.Object{
		Name:     key,
		Metadata: cloneMeta(m.Metadata),
		Size:     fi.Size(),
		Range:    rng,
		Contents: sectionCloser{io.NewSectionReader(f, start, length), f},
		Hash:     hashBytes(m.MD5),
	}, nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionCloser) Close() error { return s.f.Close() }

func cloneMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PutObject implements gofakes3.Backend: the body goes to a temporary file,
// which replaces the object only after it was fully received.
func (b *folderBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	var res gofakes3.PutObjectResult
	if err := b.requireBucket(bucket); err != nil {
		return res, err
	}
	dst, err := b.objectPath(bucket, key)
	if err != nil {
		return res, err
	}
	tmp, err := os.CreateTemp(filepath.Join(b.root, "tmp"), "put-*")
	if err != nil {
		return res, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // fails harmlessly after the rename
	}()
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), input)
	if err != nil {
		var s3err gofakes3.Error
		if errors.As(err, &s3err) { // a bad digest: the client's fault, a 400
			return res, s3err
		}
		return res, fmt.Errorf("s3embed: receive %s/%s: %w", bucket, key, err)
	}
	if size >= 0 && n != size {
		return res, gofakes3.ErrIncompleteBody
	}
	if err := tmp.Sync(); err != nil {
		return res, err
	}
	if err := tmp.Close(); err != nil {
		return res, err
	}
	m := objectMeta{Size: n, MD5: hex.EncodeToString(h.Sum(nil)), Metadata: userMeta(meta), Modified: time.Now().UTC()}
	rawMeta, err := json.Marshal(m)
	if err != nil {
		return res, err
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if conditions != nil {
		info := &gofakes3.ConditionalObjectInfo{}
		if f, _, cur, err := b.openLocked(bucket, key); err == nil {
			f.Close()
			info.Exists, info.Hash = true, hashBytes(cur.MD5)
		}
		if err := gofakes3.CheckPutConditions(conditions, info); err != nil {
			return res, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return res, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "key collides with an existing object used as a folder: "+err.Error())
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return res, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "key is a folder of other keys in the folder backend")
	}
	metaDst, err := b.metaPath(bucket, key)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(filepath.Dir(metaDst), 0o755); err != nil {
		return res, err
	}
	metaTmp := tmp.Name() + ".meta"
	if err := os.WriteFile(metaTmp, rawMeta, 0o644); err != nil {
		return res, err
	}
	defer os.Remove(metaTmp)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return res, err
	}
	if err := os.Rename(metaTmp, metaDst); err != nil {
		return res, err
	}
	return res, nil
}

// openLocked is open for callers already holding b.mu.
func (b *folderBackend) openLocked(bucket, key string) (*os.File, fs.FileInfo, objectMeta, error) {
	p, err := b.objectPath(bucket, key)
	if err != nil {
		return nil, nil, objectMeta{}, err
	}
	f, fi, err := openRegular(p)
	if err != nil {
		return nil, nil, objectMeta{}, err
	}
	m, err := b.loadMeta(bucket, key, fi, f)
	if err != nil {
		f.Close()
		return nil, nil, objectMeta{}, err
	}
	return f, fi, m, nil
}

// userMeta keeps the headers worth storing: user metadata and content headers.
func userMeta(meta map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range meta {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amz-meta-") || lk == "content-type" || lk == "content-encoding" ||
			lk == "content-disposition" || lk == "cache-control" || lk == "content-language" {
			out[k] = v
		}
	}
	return out
}

// DeleteObject implements gofakes3.Backend.
func (b *folderBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.requireBucket(bucket); err != nil {
		return gofakes3.ObjectDeleteResult{}, err
	}
	return gofakes3.ObjectDeleteResult{}, b.deleteLocked(bucket, key)
}

func (b *folderBackend) deleteLocked(bucket, key string) error {
	p, err := b.objectPath(bucket, key)
	if err != nil {
		return nil // such a key cannot exist here
	}
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return err
	}
	mp, err := b.metaPath(bucket, key)
	if err != nil {
		return nil
	}
	if err := os.Remove(mp); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return err
	}
	removeEmptyParents(filepath.Dir(p), b.bucketDir(bucket))
	removeEmptyParents(filepath.Dir(mp), filepath.Join(b.root, "meta", bucket))
	return nil
}

// removeEmptyParents removes empty folders from dir up to, not including, stop.
func removeEmptyParents(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// DeleteMulti implements gofakes3.Backend.
func (b *folderBackend) DeleteMulti(bucket string, objects ...string) (gofakes3.MultiDeleteResult, error) {
	var res gofakes3.MultiDeleteResult
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.requireBucket(bucket); err != nil {
		return res, err
	}
	for _, key := range objects {
		if err := b.deleteLocked(bucket, key); err != nil {
			res.Error = append(res.Error, gofakes3.ErrorResult{Code: gofakes3.ErrInternal, Message: err.Error(), Key: key})
			continue
		}
		res.Deleted = append(res.Deleted, gofakes3.ObjectID{Key: key})
	}
	return res, nil
}

// CopyObject implements gofakes3.Backend.
func (b *folderBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(b, srcBucket, srcKey, dstBucket, dstKey, meta)
}

// ListBucket implements gofakes3.Backend, including pagination.
func (b *folderBackend) ListBucket(bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.requireBucket(bucket); err != nil {
		return nil, err
	}
	root := b.bucketDir(bucket)
	// Walk only the folder the prefix points into. The prefix is matched
	// literally against keys, and keys never hold empty, "." or ".."
	// segments, NULs or backslashes: a prefix whose folder part does cannot
	// match anything, and is never turned into a path.
	start := root
	if prefix.HasPrefix {
		if i := strings.LastIndexByte(prefix.Prefix, '/'); i >= 0 {
			folder := prefix.Prefix[:i]
			if checkKey(folder) != nil {
				return gofakes3.NewObjectList(), nil
			}
			start = filepath.Join(root, filepath.FromSlash(folder))
			if !within(root, start) {
				return gofakes3.NewObjectList(), nil
			}
		}
	}
	type item struct {
		key    string
		prefix bool
		c      *gofakes3.Content
	}
	var items []item
	seenPrefix := map[string]bool{}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() || !within(root, p) {
			return nil // symbolic links and other special files are not objects
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if checkKey(key) != nil {
			return nil
		}
		var match gofakes3.PrefixMatch
		if !prefix.Match(key, &match) {
			return nil
		}
		if match.CommonPrefix {
			cp := match.MatchedPart
			if !seenPrefix[cp] {
				seenPrefix[cp] = true
				items = append(items, item{key: cp, prefix: true})
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while listing
		}
		if err != nil {
			return err
		}
		m, err := b.loadMeta(bucket, key, fi, f)
		f.Close()
		if err != nil {
			return err
		}
		items = append(items, item{key: key, c: &gofakes3.Content{
			Key:          key,
			LastModified: gofakes3.NewContentTime(fi.ModTime()),
			ETag:         `"` + m.MD5 + `"`,
			Size:         fi.Size(),
			StorageClass: gofakes3.StorageStandard,
		}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })
	out := gofakes3.NewObjectList()
	count := int64(0)
	for _, it := range items {
		if page.HasMarker && it.key <= page.Marker {
			continue
		}
		if page.MaxKeys > 0 && count == page.MaxKeys {
			out.IsTruncated = true
			break
		}
		if it.prefix {
			out.AddPrefix(it.key)
		} else {
			out.Add(it.c)
		}
		out.NextMarker = it.key
		count++
	}
	if !out.IsTruncated {
		out.NextMarker = ""
	}
	return out, nil
}
