// Hands the heap's free pages back to the kernel (glibc keeps freed memory below its top for reuse otherwise).
#pragma once

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace shadowkv {

// Called after a prompt's prefill: the prefill's large scratch (a long prompt's dense keys and values before a
// policy compresses them, attention and SVD workspaces) would otherwise stay in the resident set for the rest of
// the process, counted against every later sequence.
inline void return_free_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace shadowkv
