// Package workdir picks the folder a command works in: the one the user
// named, or a temporary one removed when the work is done.
package workdir

import (
	"fmt"
	"os"
)

// OrTemp returns dir when it is not empty, with a cleanup that does
// nothing; otherwise it creates a temporary folder named after pattern (as
// os.MkdirTemp does) and returns it with a cleanup that removes it and all
// it holds. Call cleanup when the work is done.
func OrTemp(dir, pattern string) (path string, cleanup func(), err error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, fmt.Errorf("create a temporary work folder: %w", err)
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}
