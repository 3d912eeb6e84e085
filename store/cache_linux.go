package store

import (
	"os"
	"syscall"
)

// inodeAndCtime returns the file's inode and status-change time.
func inodeAndCtime(fi os.FileInfo) (uint64, int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return st.Ino, st.Ctim.Nano()
}
