// Cache-aware fetch (the authors' "cached gather copy", kernels/map.cuh): per KV head, a buffer of slots holding
// the rebuilt post-RoPE keys and the values of the chunks selected at the previous decode step. A new selection
// keeps its hits where they are and refills only the slots of chunks that dropped out (plus new capacity) with the
// misses, so a hit skips both the key rebuild and the value-store read. The used slots are always [0, size) and
// hold exactly the current selection, so attention reads them as one contiguous row set (order is irrelevant).
// Rows are f16 (default, the authors keep bf16 on the GPU) or f32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/attention.h"

namespace shadowkv {

class HotValueBuffer {
 public:
  HotValueBuffer() = default;
  HotValueBuffer(int n_heads, int chunk, int head_dim, bool f16);

  struct Miss {
    int64_t chunk;  // candidate index (landmark / value-store slot)
    int slot;       // buffer slot to fill
  };

  // Makes the buffer of `head` hold exactly `selected` (distinct candidate indices) and returns the misses,
  // whose slots the caller must fill via keys()/values(). Counts hits and misses.
  const std::vector<Miss>& update(int head, const int64_t* selected, int64_t n_selected);

  // Fills a slot's keys (a miss of the last update) with chunk*head_dim floats.
  void put_keys(int head, int slot, const float* keys);
  // A slot's chunk*head_dim values, to be written by the caller in the buffer's type (halves if f16(), else
  // floats), e.g. straight from a value store of the same type.
  void* value_slot(int head, int slot) { return &heads_[head].vals[(size_t)slot * slot_bytes()]; }
  bool f16() const { return f16_; }
  // The slots in use of `head` as size(head)*chunk attention rows (no positions: all in the query's past).
  KeyValueRows rows(int head) const;
  int size(int head) const { return (int)heads_[head].ids.size(); }  // slots in use (chunks)
  int64_t chunk_at(int head, int slot) const { return heads_[head].ids[slot]; }

  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  int64_t bytes() const;

 private:
  struct Head {
    std::vector<int64_t> ids;         // slot -> candidate index
    std::vector<int> slot_of;         // candidate index -> slot, -1 if absent (grows with the candidates)
    std::vector<uint8_t> keys, vals;  // [slots][chunk][head_dim] of f16 or f32
    std::vector<char> keep;           // scratch: slot survives this update
    std::vector<Miss> misses;         // result of the last update
  };
  int64_t row_elems_ = 0;  // chunk * head_dim
  int chunk_ = 0;
  bool f16_ = true;
  size_t slot_bytes() const { return (size_t)row_elems_ * (f16_ ? 2 : 4); }
  std::vector<Head> heads_;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace shadowkv
