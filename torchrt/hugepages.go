package torchrt

/*
#include "torchrt.h"
*/
import "C"

import "fmt"

// hugePageThreshold is the size from which a CPU tensor's memory gets its
// own huge-page mapping: one transparent huge page. Smaller allocations
// stay with glibc malloc, which reuses freed chunks of its heap.
const hugePageThreshold = 2 << 20

// UseHugePages makes libtorch allocate CPU tensors of 2 MiB and more in
// mappings of their own that are aligned to 2 MiB and advised for
// transparent huge pages (madvise MADV_HUGEPAGE), released when the tensor
// is freed. Without it every large tensor a training step creates
// (activations, gradients) is fresh memory that the kernel faults in
// 4 KiB at a time; on the development machine that was half the time of a
// bert-base fine-tune step. With transparent huge pages off
// (/sys/kernel/mm/transparent_hugepage/enabled set to never) the mappings
// get ordinary pages and behave as glibc's own.
//
// It affects the whole process and cannot be undone; the first call
// installs the allocator and later calls do nothing. It reports whether the
// allocator is in place (false on systems without MADV_HUGEPAGE, where it
// does nothing).
func UseHugePages() (bool, error) {
	var ok C.int
	if err := cError(C.torchrt_use_huge_pages(C.uint64_t(hugePageThreshold), &ok)); err != nil {
		return false, fmt.Errorf("use huge pages: %w", err)
	}
	return ok != 0, nil
}

// HugePageBytes returns the number of bytes of CPU tensors held in the
// mappings of UseHugePages now.
func HugePageBytes() uint64 {
	return uint64(C.torchrt_huge_page_bytes())
}
