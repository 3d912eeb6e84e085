//go:build linux

package torchrt

/*
#include <malloc.h>
*/
import "C"

// ReleaseMemory returns the free memory that the C allocator (glibc
// malloc, which libtorch and gotch allocate with on CPU) still holds to the
// operating system, with malloc_trim(0). glibc keeps freed chunks of its
// per-thread arenas for reuse and gives back only the top of each heap on
// its own, so after many short-lived tensors of varying sizes the resident
// set stays high although nothing is in use. It reports whether any memory
// was released.
func ReleaseMemory() bool {
	return C.malloc_trim(0) == 1
}

// CHeap describes the C allocator's heap (glibc mallinfo2), summed over
// its arenas.
type CHeap struct {
	// InUse is the number of bytes in allocated chunks (uordblks plus
	// memory-mapped chunks, hblkhd) plus the CPU tensors in the mappings
	// of UseHugePages (HugePageBytes).
	InUse uint64
	// Free is the number of bytes in free chunks held by the allocator
	// (fordblks): resident until reused or released by ReleaseMemory.
	Free uint64
}

// CHeapStats returns the C allocator's current heap figures.
func CHeapStats() CHeap {
	mi := C.mallinfo2()
	return CHeap{InUse: uint64(mi.uordblks) + uint64(mi.hblkhd) + HugePageBytes(), Free: uint64(mi.fordblks)}
}
