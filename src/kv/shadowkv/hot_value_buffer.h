// Cache-aware fetch (the authors' "cached gather copy", kernels/map.cuh): per KV head, a buffer of slots holding
// the rebuilt post-RoPE keys and the values of the chunks selected at the previous decode step. A new selection
// keeps its hits where they are and refills only the slots of chunks that dropped out (plus new capacity) with the
// misses, so a hit skips both the key rebuild and the value-store read. The used slots are always [0, size) and
// hold exactly the current selection, so attention reads them as one contiguous row set (order is irrelevant).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace shadowkv {

class HotValueBuffer {
 public:
  HotValueBuffer() = default;
  HotValueBuffer(int n_heads, int chunk, int head_dim);

  struct Miss {
    int64_t chunk;  // candidate index (landmark / value-store slot)
    int slot;       // buffer slot to fill
  };

  // Makes the buffer of `head` hold exactly `selected` (distinct candidate indices) and returns the misses,
  // whose slots the caller must fill via keys()/values(). Counts hits and misses.
  const std::vector<Miss>& update(int head, const int64_t* selected, int64_t n_selected);

  float* keys(int head, int slot) { return &heads_[head].keys[(size_t)slot * row_elems_]; }
  float* values(int head, int slot) { return &heads_[head].vals[(size_t)slot * row_elems_]; }
  const float* keys(int head) const { return heads_[head].keys.data(); }
  const float* values(int head) const { return heads_[head].vals.data(); }
  int size(int head) const { return (int)heads_[head].ids.size(); }  // slots in use (chunks)
  int64_t chunk_at(int head, int slot) const { return heads_[head].ids[slot]; }

  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  int64_t bytes() const;

 private:
  struct Head {
    std::vector<int64_t> ids;       // slot -> candidate index
    std::vector<int> slot_of;       // candidate index -> slot, -1 if absent (grows with the candidates)
    std::vector<float> keys, vals;  // [slots][chunk][head_dim]
    std::vector<char> keep;         // scratch: slot survives this update
    std::vector<Miss> misses;       // result of the last update
  };
  int64_t row_elems_ = 0;  // chunk * head_dim
  std::vector<Head> heads_;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace shadowkv
