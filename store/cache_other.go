//go:build !linux

package store

import "os"

// inodeAndCtime is not available here: the cache check falls back to size
// and modification time.
func inodeAndCtime(os.FileInfo) (uint64, int64) { return 0, 0 }
