#include "kv/shadowkv/value_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

RamValueStore::RamValueStore(int n_streams, int64_t chunk_elems, bool f16) : chunk_elems_(chunk_elems), f16_(f16) {
  if (n_streams < 0 || chunk_elems < 1) throw Error("value store: bad shape");
  if (f16_) {
    f16s_.resize(n_streams);
  } else {
    f32_.resize(n_streams);
  }
}

int64_t RamValueStore::append(int stream, const float* vals) {
  if (f16_) {
    auto& s = f16s_.at(stream);
    const size_t off = s.size();
    s.resize(off + chunk_elems_);
    f32_to_f16_row(vals, s.data() + off, chunk_elems_);
    return (int64_t)(off / chunk_elems_);
  }
  auto& s = f32_.at(stream);
  s.insert(s.end(), vals, vals + chunk_elems_);
  return (int64_t)(s.size() / chunk_elems_) - 1;
}

void RamValueStore::read(int stream, const int64_t* slots, int n, float* const* dst) const {
  const int64_t have = n_slots(stream);
  for (int i = 0; i < n; ++i) {
    if (slots[i] < 0 || slots[i] >= have)
      throw Error("value store: slot " + std::to_string(slots[i]) + " out of range (" + std::to_string(have) + ")");
    if (f16_) {
      f16_to_f32_row(f16s_[stream].data() + slots[i] * chunk_elems_, dst[i], chunk_elems_);
    } else {
      std::copy_n(f32_[stream].data() + slots[i] * chunk_elems_, chunk_elems_, dst[i]);
    }
  }
}

int64_t RamValueStore::n_slots(int stream) const {
  return (int64_t)(f16_ ? f16s_.at(stream).size() : f32_.at(stream).size()) / chunk_elems_;
}

int64_t RamValueStore::bytes() const {
  int64_t b = 0;
  for (const auto& s : f32_) b += (int64_t)s.size() * 4;
  for (const auto& s : f16s_) b += (int64_t)s.size() * 2;
  return b;
}

namespace {

int create_unlinked(const std::string& dir) {
  std::string path = dir + "/shadowkv-values-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) throw Error("value store: cannot create a file in " + dir + ": " + std::strerror(errno));
  unlink(path.c_str());  // the file lives exactly as long as the descriptor
  return fd;
}

}  // namespace

MmapValueStore::MmapValueStore(std::string dir, int n_streams, int64_t chunk_elems, bool f16)
    : dir_(std::move(dir)), chunk_elems_(chunk_elems), f16_(f16), n_slots_(std::max(0, n_streams), 0) {
  if (n_streams < 0 || chunk_elems < 1) throw Error("value store: bad shape");
  extents_.resize(n_streams);
  fd_ = create_unlinked(dir_);
}

MmapValueStore::MmapValueStore(const MmapValueStore& o)
    : dir_(o.dir_), chunk_elems_(o.chunk_elems_), f16_(o.f16_), n_slots_(o.n_slots_), extents_(o.extents_) {
  fd_ = create_unlinked(dir_);
  grow(o.file_bytes_);
  for (int64_t off = 0; off < o.file_bytes_; off += 1 << 20) {  // copy 1 MiB at a time, releasing as we go
    const int64_t n = std::min<int64_t>(1 << 20, o.file_bytes_ - off);
    std::memcpy(base_ + off, o.base_ + off, n);
    release(base_ + off, n);
    o.release(o.base_ + off, n);
  }
}

MmapValueStore::~MmapValueStore() {
  if (base_) munmap(base_, mapped_);
  if (fd_ >= 0) close(fd_);
}

void MmapValueStore::grow(int64_t min_bytes) {
  if (min_bytes <= file_bytes_) return;
  if (ftruncate(fd_, min_bytes) != 0)
    throw Error("value store: cannot grow the value file to " + std::to_string(min_bytes) +
                " bytes: " + std::strerror(errno));
  file_bytes_ = min_bytes;
  if (min_bytes <= mapped_) return;
  const int64_t want = std::max(min_bytes, 2 * mapped_);  // doubling: few remaps
  void* p = base_ ? mremap(base_, mapped_, want, MREMAP_MAYMOVE)
                  : mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) throw Error(std::string("value store: cannot map the value file: ") + std::strerror(errno));
  base_ = static_cast<uint8_t*>(p);
  mapped_ = want;
}

// Drops the pages touching [p, p + n) from this process. The mapping is shared, so the page cache (and then the
// file) keeps every byte written, also of the neighbouring slots on the same pages; a later access faults the page
// back in from there.
void MmapValueStore::release(const uint8_t* p, int64_t n) const {
  static const int64_t page = sysconf(_SC_PAGESIZE);
  const uintptr_t b = (uintptr_t)p / page * page, e = ((uintptr_t)p + n + page - 1) / page * page;
  madvise((void*)b, e - b, MADV_DONTNEED);
}

uint8_t* MmapValueStore::slot_ptr(int stream, int64_t slot) const {
  return base_ + extents_[stream][slot / kExtentSlots] + slot % kExtentSlots * slot_bytes();
}

int64_t MmapValueStore::append(int stream, const float* vals) {
  const int64_t slot = n_slots_.at(stream);
  if (slot % kExtentSlots == 0) {
    extents_[stream].push_back(file_bytes_);
    grow(file_bytes_ + kExtentSlots * slot_bytes());
  }
  uint8_t* dst = slot_ptr(stream, slot);
  if (f16_)
    f32_to_f16_row(vals, reinterpret_cast<uint16_t*>(dst), chunk_elems_);
  else
    std::memcpy(dst, vals, sizeof(float) * chunk_elems_);
  ++n_slots_[stream];
  if (slot % kExtentSlots == kExtentSlots - 1)
    release(slot_ptr(stream, slot + 1 - kExtentSlots), kExtentSlots * slot_bytes());
  return slot;
}

void MmapValueStore::read(int stream, const int64_t* slots, int n, float* const* dst) const {
  const int64_t have = n_slots(stream);
  for (int i = 0; i < n; ++i) {
    if (slots[i] < 0 || slots[i] >= have)
      throw Error("value store: slot " + std::to_string(slots[i]) + " out of range (" + std::to_string(have) + ")");
    const uint8_t* src = slot_ptr(stream, slots[i]);
    if (f16_)
      f16_to_f32_row(reinterpret_cast<const uint16_t*>(src), dst[i], chunk_elems_);
    else
      std::memcpy(dst[i], src, sizeof(float) * chunk_elems_);
    release(src, slot_bytes());
  }
}

bool is_value_store_spec(const std::string& spec) {
  return spec == "ram" || spec == "mmap" || spec.rfind("mmap:", 0) == 0;
}

std::unique_ptr<ValueStore> make_value_store(const std::string& spec, int n_streams, int64_t chunk_elems, bool f16) {
  if (!is_value_store_spec(spec))
    throw Error("shadowkv: value store must be ram, mmap or mmap:DIR (got '" + spec + "')");
  if (spec == "ram") return std::make_unique<RamValueStore>(n_streams, chunk_elems, f16);
  std::string dir = spec.size() > 5 ? spec.substr(5) : "";
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = t && *t ? t : "/tmp";
  }
  return std::make_unique<MmapValueStore>(dir, n_streams, chunk_elems, f16);
}

}  // namespace shadowkv
