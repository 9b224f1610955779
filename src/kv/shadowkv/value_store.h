// The cold tier of ShadowKV: values of compressed chunks. One stream per (layer, KV head); a stream is a sequence
// of chunk slots, each slot the chunk's [chunk][head_dim] values stored contiguously, so fetching a chunk is one
// contiguous read. Slot numbers are dense (0, 1, 2, ... in append order), which maps directly onto a file offset
// (the file store) or a device buffer index (a GPU tier) implementing the same interface.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shadowkv {

class ValueStore {
 public:
  virtual ~ValueStore() = default;

  // Appends one chunk (chunk_elems() floats) to `stream` and returns its slot.
  virtual int64_t append(int stream, const float* vals) = 0;

  // Copies the chunk at `slot` of `stream` into dst as stored (chunk_elems() halves if f16(), else floats): its
  // reader, the hot buffer, keeps the same type, so nothing is converted. Safe to call concurrently on different
  // or equal streams; throws Error on a slot out of range.
  virtual void read(int stream, int64_t slot, void* dst) const = 0;
  virtual bool f16() const = 0;

  virtual int64_t n_slots(int stream) const = 0;
  virtual int64_t chunk_elems() const = 0;
  virtual int64_t bytes() const = 0;
  virtual std::unique_ptr<ValueStore> clone() const = 0;
};

// Values in RAM, f32 or IEEE f16 (f16 halves the cold tier).
class RamValueStore : public ValueStore {
 public:
  RamValueStore(int n_streams, int64_t chunk_elems, bool f16);

  int64_t append(int stream, const float* vals) override;
  void read(int stream, int64_t slot, void* dst) const override;
  bool f16() const override { return f16_; }
  int64_t n_slots(int stream) const override;
  int64_t chunk_elems() const override { return chunk_elems_; }
  int64_t bytes() const override;
  std::unique_ptr<ValueStore> clone() const override { return std::make_unique<RamValueStore>(*this); }

 private:
  int64_t chunk_elems_;
  bool f16_;
  std::vector<std::vector<float>> f32_;      // per stream, slot-major
  std::vector<std::vector<uint16_t>> f16s_;  // per stream, slot-major
};

// Values in a file (the disk tier), read and written with pread/pwrite: a file created in `dir` and unlinked at
// once, so it disappears with the sequence or the process, whatever way that ends. Each stream owns extents of
// kExtentSlots slots; the file grows by whole extents. Nothing is mapped into the process: the page cache keeps
// what fits in RAM and the kernel writes the rest to disk, so batch x context can exceed RAM and the process's
// resident set does not grow with the cold tier. (A shared mapping released after every access, its first
// design, kept up to 16 neighbouring pages per read resident: the kernel maps a fault's neighbours from the page
// cache along with it.)
class FileValueStore : public ValueStore {
 public:
  FileValueStore(std::string dir, int n_streams, int64_t chunk_elems, bool f16);
  FileValueStore(const FileValueStore& o);
  FileValueStore& operator=(const FileValueStore&) = delete;
  ~FileValueStore() override;

  int64_t append(int stream, const float* vals) override;
  void read(int stream, int64_t slot, void* dst) const override;
  bool f16() const override { return f16_; }
  int64_t n_slots(int stream) const override { return n_slots_.at(stream); }
  int64_t chunk_elems() const override { return chunk_elems_; }
  int64_t bytes() const override { return file_bytes_; }
  std::unique_ptr<ValueStore> clone() const override { return std::make_unique<FileValueStore>(*this); }

  static constexpr int64_t kExtentSlots = 256;

 private:
  int64_t slot_bytes() const { return chunk_elems_ * (f16_ ? 2 : 4); }
  int64_t slot_offset(int stream, int64_t slot) const;

  std::string dir_;
  int64_t chunk_elems_;
  bool f16_;
  int fd_ = -1;
  int64_t file_bytes_ = 0;
  std::vector<int64_t> n_slots_;
  std::vector<std::vector<int64_t>> extents_;  // per stream: file offsets of its extents
};

// True for the specs make_value_store accepts: "ram", "file", "file:DIR" ("mmap[:DIR]", the older name, too).
bool is_value_store_spec(const std::string& spec);

// "ram" -> RamValueStore; "file" or "file:DIR" -> FileValueStore in DIR (default $TMPDIR or /tmp). Throws
// shadowkv::Error for anything else or a directory where a file cannot be created.
std::unique_ptr<ValueStore> make_value_store(const std::string& spec, int n_streams, int64_t chunk_elems, bool f16);

}  // namespace shadowkv
