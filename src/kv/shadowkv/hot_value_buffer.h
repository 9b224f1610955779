// Cache-aware fetch (the authors' "cached gather copy", kernels/map.cuh), with room for more: per KV head, slots
// holding the rebuilt post-RoPE keys and the values of chunks. A selection's chunks already in a slot are hits;
// the misses take free slots, else the slots of the chunks selected least recently, so a chunk that left the
// selection and returns a few steps later (most misses at long contexts: Qwen2.5-Coder 0.5B at 16K, 41% of the
// misses had left within the last two steps) is still there: a hit skips the key rebuild and the value-store
// read. The buffer holds the selection plus `extra` slots; attention reads the selected slots' rows through an
// index (KeyValueRows::index). Rows are f16 (default, the authors keep bf16 on the GPU) or f32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
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

  // Makes `selected` (distinct candidate indices) the selection of `head`, with room for `extra` more chunks
  // (slots only grow), and returns the misses, whose slots the caller must fill (put_keys, value_slot). Counts hits
  // and misses.
  const std::vector<Miss>& update(int head, const int64_t* selected, int64_t n_selected, int64_t extra);

  // Fills a slot's keys (a miss of the last update) with chunk*head_dim floats.
  void put_keys(int head, int slot, const float* keys);
  // A slot's chunk*head_dim values, to be written by the caller in the buffer's type (halves if f16(), else
  // floats), e.g. straight from a value store of the same type.
  void* value_slot(int head, int slot) { return &heads_[head].vals[(size_t)slot * slot_bytes()]; }
  bool f16() const { return f16_; }
  // The selection of `head` as size(head)*chunk attention rows (gathered by index; no positions: all in the
  // query's past), in selection order.
  KeyValueRows rows(int head) const;
  int size(int head) const { return (int)(heads_[head].index.size() / chunk_); }  // selected chunks
  int64_t chunk_at(int head, int i) const {                                       // i < size(head)
    return heads_[head].ids[heads_[head].index[(size_t)i * chunk_] / chunk_];
  }
  int slots(int head) const { return (int)heads_[head].ids.size(); }

  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  int64_t bytes() const;

 private:
  struct Head {
    std::vector<int64_t> ids;                  // slot -> candidate index, -1 if free
    std::vector<int64_t> last;                 // slot -> update (tick) that last selected it
    std::vector<int> slot_of;                  // candidate index -> slot, -1 if absent (grows with the candidates)
    std::vector<uint8_t> keys, vals;           // [slots][chunk][head_dim] of f16 or f32
    std::vector<int64_t> index;                // the selection's rows, in its order: slot * chunk + r
    std::vector<Miss> misses;                  // result of the last update
    std::vector<int> free_slots;               // scratch of take_slots
    std::vector<std::pair<int64_t, int>> old;  // scratch of take_slots: (last selected, slot)
    int64_t tick = 0;
  };
  void grow(Head& h, int64_t n_slots) const;
  // Slots for n misses, after freeing the chunks selected least recently (none of this update's hits) until at
  // most cap chunks will be held.
  const std::vector<int>& take_slots(Head& h, size_t n, int64_t cap) const;
  int64_t row_elems_ = 0;  // chunk * head_dim
  int chunk_ = 0;
  bool f16_ = true;
  size_t slot_bytes() const { return (size_t)row_elems_ * (f16_ ? 2 : 4); }
  std::vector<Head> heads_;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace shadowkv
