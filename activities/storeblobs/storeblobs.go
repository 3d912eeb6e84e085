// Package storeblobs adapts the S3 object store (store.Store) to the
// activities.Blobs interface.
package storeblobs

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/store"
)

// Blobs implements activities.Blobs over a *store.Store.
type Blobs struct {
	S *store.Store
}

var _ activities.Blobs = Blobs{}

// Get reads an object; a missing one wraps activities.ErrNotFound.
func (b Blobs) Get(ctx context.Context, key string) ([]byte, error) {
	data, _, err := b.S.GetBytes(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", activities.ErrNotFound, err)
	}
	return data, err
}

// Put writes an object.
func (b Blobs) Put(ctx context.Context, key string, data []byte) error {
	_, err := b.S.PutBytes(ctx, key, data)
	return err
}

// Exists reports whether an object exists.
func (b Blobs) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.S.Head(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, err
}

// List returns the sorted keys under prefix.
func (b Blobs) List(ctx context.Context, prefix string) ([]string, error) {
	infos, err := b.S.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(infos))
	for _, o := range infos {
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	return keys, nil
}

// Copy copies one object through this process.
func (b Blobs) Copy(ctx context.Context, src, dst string) error {
	data, err := b.Get(ctx, src)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := b.Put(ctx, dst, data); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// GetVersioned reads an object and its ETag; a missing one wraps
// activities.ErrNotFound.
func (b Blobs) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	data, info, err := b.S.GetBytes(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("%w: %w", activities.ErrNotFound, err)
	}
	if err != nil {
		return nil, "", err
	}
	if info.ETag == "" {
		return nil, "", fmt.Errorf("read %s: the store returned no ETag", key)
	}
	return data, info.ETag, nil
}

// PutIf writes an object with an S3 conditional write: If-Match on version,
// or If-None-Match: * when version is "". A lost race wraps
// activities.ErrPreconditionFailed.
func (b Blobs) PutIf(ctx context.Context, key string, data []byte, version string) error {
	cond := store.Condition{IfMatch: version, IfNoneMatch: version == ""}
	_, err := b.S.PutBytesIf(ctx, key, data, cond)
	// The store reports If-Match on a deleted object as a failed condition
	// too (S3 answers it with 404): the object changed.
	if errors.Is(err, store.ErrPreconditionFailed) {
		return fmt.Errorf("%w: %w", activities.ErrPreconditionFailed, err)
	}
	return err
}
