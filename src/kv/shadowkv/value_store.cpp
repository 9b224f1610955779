// The value stores of ShadowKV's cold tier: per-stream vectors in RAM, or an unlinked file (value_store.h).
#include "kv/shadowkv/value_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

namespace {
void check_slot(int64_t slot, int64_t have) {
  if (slot < 0 || slot >= have)
    throw Error("value store: slot " + std::to_string(slot) + " out of range (" + std::to_string(have) + ")");
}
}  // namespace

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

void RamValueStore::read(int stream, int64_t slot, void* dst) const {
  check_slot(slot, n_slots(stream));
  if (f16_)
    std::memcpy(dst, f16s_[stream].data() + slot * chunk_elems_, (size_t)chunk_elems_ * 2);
  else
    std::memcpy(dst, f32_[stream].data() + slot * chunk_elems_, (size_t)chunk_elems_ * 4);
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

// Reads or writes exactly n bytes at off (retrying short transfers and EINTR), or throws naming the errno.
template <class Io, class Ptr>
void io_exact(Io io, int fd, Ptr p, int64_t n, int64_t off, const char* what) {
  auto* b = (uint8_t*)p;
  while (n > 0) {
    const ssize_t got = io(fd, b, (size_t)n, (off_t)off);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      throw Error(std::string("value store: cannot ") + what +
                  " the value file: " + (got < 0 ? std::strerror(errno) : "unexpected end of file"));
    b += got, n -= got, off += got;
  }
}

}  // namespace

FileValueStore::FileValueStore(std::string dir, int n_streams, int64_t chunk_elems, bool f16)
    : dir_(std::move(dir)), chunk_elems_(chunk_elems), f16_(f16), n_slots_(std::max(0, n_streams), 0) {
  if (n_streams < 0 || chunk_elems < 1) throw Error("value store: bad shape");
  extents_.resize(n_streams);
  fd_ = create_unlinked(dir_);
}

// The copy's bytes move inside the kernel (copy_file_range), or through a small buffer where it cannot.
FileValueStore::FileValueStore(const FileValueStore& o)
    : dir_(o.dir_),
      chunk_elems_(o.chunk_elems_),
      f16_(o.f16_),
      file_bytes_(o.file_bytes_),
      n_slots_(o.n_slots_),
      extents_(o.extents_) {
  fd_ = create_unlinked(dir_);
  loff_t in = 0, out = 0;
  while (in < o.file_bytes_) {
    const ssize_t got = copy_file_range(o.fd_, &in, fd_, &out, (size_t)(o.file_bytes_ - in), 0);
    if (got > 0) continue;
    if (got < 0 && errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
      throw Error(std::string("value store: cannot copy the value file: ") + std::strerror(errno));
    std::vector<uint8_t> buf(1 << 20);
    for (; in < o.file_bytes_; in += (loff_t)buf.size(), out = in) {
      const int64_t n = std::min<int64_t>((int64_t)buf.size(), o.file_bytes_ - in);
      io_exact(pread, o.fd_, buf.data(), n, in, "read");
      io_exact(pwrite, fd_, buf.data(), n, out, "write");
    }
  }
}

FileValueStore::~FileValueStore() {
  if (fd_ >= 0) close(fd_);
}

int64_t FileValueStore::slot_offset(int stream, int64_t slot) const {
  return extents_[stream][slot / kExtentSlots] + slot % kExtentSlots * slot_bytes();
}

int64_t FileValueStore::append(int stream, const float* vals) {
  const int64_t slot = n_slots_.at(stream);
  if (slot % kExtentSlots == 0) {
    extents_[stream].push_back(file_bytes_);
    if (ftruncate(fd_, file_bytes_ + kExtentSlots * slot_bytes()) != 0)  // sparse until written
      throw Error("value store: cannot grow the value file: " + std::string(std::strerror(errno)));
    file_bytes_ += kExtentSlots * slot_bytes();
  }
  if (f16_) {
    std::vector<uint16_t> h(chunk_elems_);
    f32_to_f16_row(vals, h.data(), chunk_elems_);
    io_exact(pwrite, fd_, h.data(), slot_bytes(), slot_offset(stream, slot), "write");
  } else {
    io_exact(pwrite, fd_, vals, slot_bytes(), slot_offset(stream, slot), "write");
  }
  ++n_slots_[stream];
  return slot;
}

void FileValueStore::read(int stream, int64_t slot, void* dst) const {
  check_slot(slot, n_slots(stream));
  io_exact(pread, fd_, dst, slot_bytes(), slot_offset(stream, slot), "read");
}

bool is_value_store_spec(const std::string& spec) {
  return spec == "ram" || spec == "file" || spec.rfind("file:", 0) == 0 || spec == "mmap" ||
         spec.rfind("mmap:", 0) == 0;
}

std::unique_ptr<ValueStore> make_value_store(const std::string& spec, int n_streams, int64_t chunk_elems, bool f16) {
  if (!is_value_store_spec(spec))
    throw Error("shadowkv: value store must be ram, file or file:DIR (got '" + spec + "')");
  if (spec == "ram") return std::make_unique<RamValueStore>(n_streams, chunk_elems, f16);
  std::string dir = spec.size() > 5 ? spec.substr(5) : "";
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = t && *t ? t : "/tmp";
  }
  return std::make_unique<FileValueStore>(dir, n_streams, chunk_elems, f16);
}

}  // namespace shadowkv
