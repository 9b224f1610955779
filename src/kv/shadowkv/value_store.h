// The cold tier of ShadowKV: values of compressed chunks. One stream per (layer, KV head); a stream is a sequence
// of chunk slots, each slot the chunk's [chunk][head_dim] values stored contiguously, so fetching a chunk is one
// contiguous read. Slot numbers are dense (0, 1, 2, ... in append order), which maps directly onto a file offset
// (an mmap-disk store) or a device buffer index (a GPU tier) implementing the same interface.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace shadowkv {

class ValueStore {
 public:
  virtual ~ValueStore() = default;

  // Appends one chunk (chunk_elems() floats) to `stream` and returns its slot.
  virtual int64_t append(int stream, const float* vals) = 0;

  // Copies the chunks at slots[i] of `stream` into dst[i] (chunk_elems() floats each). Batched so a disk or
  // device store can coalesce the reads. Safe to call concurrently on different or equal streams.
  virtual void read(int stream, const int64_t* slots, int n, float* const* dst) const = 0;

  virtual int64_t n_slots(int stream) const = 0;
  virtual int64_t chunk_elems() const = 0;
  virtual int64_t bytes() const = 0;
  virtual std::unique_ptr<ValueStore> clone() const = 0;
};

// Values in RAM, f32 or IEEE f16 (f16 halves the cold tier; reads convert back to f32).
class RamValueStore : public ValueStore {
 public:
  RamValueStore(int n_streams, int64_t chunk_elems, bool f16);

  int64_t append(int stream, const float* vals) override;
  void read(int stream, const int64_t* slots, int n, float* const* dst) const override;
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

}  // namespace shadowkv
