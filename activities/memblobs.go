package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// MemBlobs is an in-memory Blobs, safe for concurrent use: for tests and
// single-process development runs. Its zero value is ready to use.
type MemBlobs struct {
	mu   sync.Mutex
	objs map[string][]byte
}

// version is the version tag of an object's content (like an S3 ETag).
func version(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// Get returns a copy of the object or an error wrapping ErrNotFound.
func (m *MemBlobs) Get(ctx context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("object %s: %w", key, ErrNotFound)
	}
	return append([]byte(nil), b...), nil
}

// Put stores a copy of data.
func (m *MemBlobs) Put(ctx context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objs == nil {
		m.objs = map[string][]byte{}
	}
	m.objs[key] = append([]byte(nil), data...)
	return nil
}

// Exists reports whether key exists.
func (m *MemBlobs) Exists(ctx context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.objs[key]
	return ok, nil
}

// List returns the sorted keys under prefix.
func (m *MemBlobs) List(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Copy copies src to dst.
func (m *MemBlobs) Copy(ctx context.Context, src, dst string) error {
	b, err := m.Get(ctx, src)
	if err != nil {
		return err
	}
	return m.Put(ctx, dst, b)
}

// GetVersioned returns a copy of the object and its version tag.
func (m *MemBlobs) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, "", fmt.Errorf("object %s: %w", key, ErrNotFound)
	}
	return append([]byte(nil), b...), version(b), nil
}

// PutIf stores a copy of data if the object still has version tag ver, or
// with ver "", if it does not exist.
func (m *MemBlobs) PutIf(ctx context.Context, key string, data []byte, ver string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objs[key]
	switch {
	case ver == "" && ok:
		return fmt.Errorf("create %s: object exists: %w", key, ErrPreconditionFailed)
	case ver != "" && (!ok || version(cur) != ver):
		return fmt.Errorf("replace %s: object changed: %w", key, ErrPreconditionFailed)
	}
	if m.objs == nil {
		m.objs = map[string][]byte{}
	}
	m.objs[key] = append([]byte(nil), data...)
	return nil
}
