package torchrt

/*
#include "torchrt.h"
*/
import "C"

import "fmt"

// HugePageThreshold is the size from which a CPU tensor's memory gets a
// huge-page mapping of its own: more than 32 MiB, the ceiling of glibc's
// dynamic mmap threshold. Below it glibc serves allocations from its heap
// and reuses freed chunks without faulting them in again; at 2 MiB the
// fresh mappings made batched bert-base scoring about 15% slower and the
// fine-tune step no faster than this threshold does.
const HugePageThreshold = 32<<20 + 1

// UseHugePages makes libtorch allocate CPU tensors larger than 32 MiB
// (HugePageThreshold) in mappings of their own that are aligned to 2 MiB and
// advised for transparent huge pages (madvise MADV_HUGEPAGE), released
// when the tensor is freed. glibc maps allocations of that size afresh every
// time, and the kernel faults them in 4 KiB at a time: a bert-base
// fine-tune step creates several (the word-embedding gradient alone is 94
// MB), and those faults were a quarter of its CPU samples on the
// development machine. With transparent huge pages off
// (/sys/kernel/mm/transparent_hugepage/enabled set to never) the mappings
// get ordinary pages and behave as glibc's own.
//
// It affects the whole process and cannot be undone; the first call
// installs the allocator and later calls do nothing. It reports whether the
// allocator is in place (false on systems without MADV_HUGEPAGE, where it
// does nothing).
func UseHugePages() (bool, error) {
	var ok C.int
	if err := cError(C.torchrt_use_huge_pages(C.uint64_t(HugePageThreshold), &ok)); err != nil {
		return false, fmt.Errorf("use huge pages: %w", err)
	}
	return ok != 0, nil
}

// HugePageBytes returns the number of bytes of CPU tensors held in the
// mappings of UseHugePages now.
func HugePageBytes() uint64 {
	return uint64(C.torchrt_huge_page_bytes())
}
