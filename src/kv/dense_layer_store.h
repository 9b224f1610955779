// Exact post-RoPE keys and values of one attention layer, head-major ([kv_head][slot][head_dim]), f32 or f16.
// Global layers append (slot = position - origin; drop_front() moves the origin, for policies that compress the
// oldest tokens); sliding-window layers keep exactly `window` slots in a ring: a prefill chunk attends over the
// ring plus its own keys (held aside) before it overwrites the ring.
#pragma once
#include <cstdint>
#include <vector>

#include "kv/kv_cache.h"
#include "ops/attention.h"

namespace shadowkv {

class DenseLayerStore {
 public:
  DenseLayerStore() = default;
  DenseLayerStore(const LayerGeometry& g, bool f16);

  // Appends n tokens (rows of n_kv_head*head_dim floats) at positions pos0...
  void append(int64_t pos0, int n, const float* k, const float* v);
  // Stores n new tokens and writes their causal (and windowed) attention over everything stored, themselves
  // included. q and out are [n, n_head*head_dim].
  void append_and_attend(int64_t pos0, int n, const float* q, const float* k, const float* v, float* out);
  // The rows of one KV head as an attention input (with positions when this is a ring).
  KeyValueRows rows(int kv_head) const;
  // Append-only stores: forgets positions [origin, origin + n) and releases their memory.
  void drop_front(int64_t n);
  // Append-only f32 stores: row of `pos` (origin <= pos < n_positions) of one KV head's keys / values.
  const float* key_row(int kv_head, int64_t pos) const;
  const float* value_row(int kv_head, int64_t pos) const;

  int64_t n_positions() const { return n_pos_; }
  int64_t origin() const { return origin_; }  // first position held (append-only)
  int64_t bytes() const;                      // bytes of the slots in use
  bool is_ring() const { return ring_cap_ > 0; }

 private:
  size_t elem() const { return f16_ ? 2 : 4; }
  void reserve(int64_t slots);

  LayerGeometry g_;
  bool f16_ = false;
  int64_t ring_cap_ = 0;                     // 0: append-only
  int64_t cap_ = 0;                          // slots allocated per head
  int64_t n_pos_ = 0;                        // positions appended so far
  int64_t origin_ = 0;                       // append-only: position of slot 0
  std::vector<std::vector<uint8_t>> k_, v_;  // per kv head
  std::vector<int64_t> slot_pos_;            // ring only: position held by each slot (-1 empty)
};

}  // namespace shadowkv
