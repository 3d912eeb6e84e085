//go:build !linux

package torchrt

// ReleaseMemory would return free C heap memory to the operating system;
// only glibc (Linux) offers malloc_trim, so elsewhere it does nothing and
// reports false.
func ReleaseMemory() bool { return false }

// CHeap describes the C allocator's heap; see the Linux version.
type CHeap struct {
	// InUse is the number of bytes in allocated chunks.
	InUse uint64
	// Free is the number of bytes in free chunks held by the allocator.
	Free uint64
}

// CHeapStats returns zeros: the figures come from glibc's mallinfo2,
// which only Linux has.
func CHeapStats() CHeap { return CHeap{} }
