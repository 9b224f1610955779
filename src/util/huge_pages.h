// An allocator whose large blocks sit in 2 MiB-aligned anonymous memory marked for transparent huge pages.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

namespace shadowkv {

// Data streamed from DRAM at every decode step (the model's weights) on 4 KiB pages needs a page walk per 4 KiB; 2
// MiB pages (THP in "madvise" mode, Debian's default, needs the advice) cut those 512-fold. (The dense KV stores stay
// on the heap: in huge pages Gemma's 32K batch-8 decode fell 8%, probably as the sequences' equally aligned buffers
// met in the same cache sets; ShadowKV's cold tier gained nothing measurable.) Every block is zero-filled when
// allocated, so elements constructed without arguments are left as that zero (not written twice: a vector of the
// model's size resized before it is filled would hold every page at once). Blocks
// under 2 MiB come from the heap; larger ones from mmap, 2 MiB-aligned, advised for huge pages up to their last whole
// 2 MiB (the tail stays on 4 KiB pages, so no block holds more than 4 KiB it did not ask for), and
// returned to the kernel on free.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHuge = size_t(2) << 20, kPage = 4096;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHuge) return static_cast<T*>(std::memset(::operator new(bytes), 0, bytes));
    const size_t len = round_up(bytes, kPage);
    void* m = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t lo = (uintptr_t)m, p = round_up(lo, kHuge), hi = lo + len + kHuge;
    if (p > lo) munmap(m, p - lo);
    if (hi > p + len) munmap((void*)(p + len), hi - (p + len));
#ifdef MADV_HUGEPAGE
    madvise((void*)p, len / kHuge * kHuge, MADV_HUGEPAGE);  // advice only: without it the block works on 4 KiB pages
#endif
    return reinterpret_cast<T*>(p);
  }
  template <class U>
  void construct(U* p) {
    ::new ((void*)p) U;  // default-initialised: a trivial U keeps the block's zero
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new ((void*)p) U(std::forward<Args>(args)...);
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHuge)
      ::operator delete(p);
    else
      munmap(p, round_up(bytes, kPage));
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const {
    return false;
  }

 private:
  static size_t round_up(size_t b, size_t to) { return (b + to - 1) / to * to; }
};

template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace shadowkv
