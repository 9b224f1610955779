// Exact post-RoPE keys and values of one attention layer, head-major ([kv_head][slot][head_dim]), f32 or f16.
// Global layers append (slot = position - origin; drop_front() moves the origin, for policies that compress the
// oldest tokens); sliding-window layers keep exactly `window` slots in a ring: a prefill chunk attends over the
// ring plus its own keys (held aside) before it overwrites the ring. Append-only stores can be paged: rows in
// blocks of block_tokens from the shared block pool (kv/block_pool.h) instead of one growing buffer per head.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kv/block_pool.h"
#include "kv/kv_cache.h"
#include "kv/kv_policy.h"
#include "ops/attention.h"

namespace shadowkv {

class DenseLayerStore {
 public:
  DenseLayerStore() = default;
  // block_tokens > 0: an append-only store keeps its rows in blocks of that many tokens (rings ignore it).
  DenseLayerStore(const LayerGeometry& g, bool f16, int64_t block_tokens = 0);

  // Appends n tokens (rows of n_kv_head*head_dim floats) at positions pos0...
  void append(int64_t pos0, int n, const float* k, const float* v);
  // Stores n new tokens and writes their causal (and windowed) attention over everything stored, themselves
  // included. q and out are [n, n_head*head_dim].
  void append_and_attend(int64_t pos0, int n, const float* q, const float* k, const float* v, float* out);
  // The rows of one KV head as an attention input (with positions when this is a ring).
  KeyValueRows rows(int kv_head) const;
  // Append-only stores that are not paged: forgets positions [origin, origin + n) and releases their memory.
  void drop_front(int64_t n);
  // Append-only stores: row of `pos` (origin <= pos < n_positions) of one KV head's keys / values, in the store's
  // dtype (key_row / value_row: f32 stores only).
  const void* key_ptr(int kv_head, int64_t pos) const;
  const float* key_row(int kv_head, int64_t pos) const;
  const float* value_row(int kv_head, int64_t pos) const;

  int64_t n_positions() const { return n_pos_; }
  int64_t origin() const { return origin_; }  // first position held (append-only)
  int64_t bytes() const;                      // bytes of the slots in use
  int64_t reserved_bytes() const;             // bytes allocated: slots in use, spare capacity, partly used blocks
  int64_t blocks() const;                     // pool blocks held (paged stores; keys and values)
  bool is_ring() const { return ring_cap_ > 0; }
  bool is_paged() const { return block_tokens_ > 0; }

 private:
  size_t elem() const { return f16_ ? 2 : 4; }
  void reserve(int64_t slots);
  // Slot i of KV head h's keys (value = false) or values.
  const uint8_t* slot(bool value, int h, int64_t i) const;
  uint8_t* mutable_slot(bool value, int h, int64_t i) { return const_cast<uint8_t*>(slot(value, h, i)); }

  LayerGeometry g_;
  bool f16_ = false;
  int64_t ring_cap_ = 0;                     // 0: append-only
  int64_t cap_ = 0;                          // slots allocated per head
  int64_t n_pos_ = 0;                        // positions appended so far
  int64_t origin_ = 0;                       // append-only: position of slot 0
  int64_t block_tokens_ = 0;                 // paged append-only store: tokens per block
  std::vector<std::vector<uint8_t>> k_, v_;  // per kv head (not paged)
  std::vector<BlockTable> kp_, vp_;          // per kv head (paged)
  std::vector<int64_t> slot_pos_;            // ring only: position held by each slot (-1 empty)
};

// The settings of a policy whose global layers keep dense tokens in DenseLayerStores: --paged, --block-tokens.
std::vector<KvSetting> paged_settings();
// Tokens per block when o has --paged (checked: 1..65536), else 0.
int64_t block_tokens_of(const KvOptions& o);
// Counters of the append-only (global-layer) stores of a set: global_reserved_bytes (allocated), global_fragmentation
// (the share of those bytes not holding a token: spare capacity, or the unused end of each head's last block) and,
// when paged, kv_blocks (pool blocks held).
std::vector<std::pair<std::string, double>> dense_store_counters(const std::vector<const DenseLayerStore*>& stores);

}  // namespace shadowkv
