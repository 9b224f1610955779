// Attention over keys and values kept in a compact form only their policy can read (block-quantised, bit-packed):
// the policy decodes a range of one KV head's rows to f32, and these helpers run the exact kernels of
// ops/attention.h over the decoded rows. Used by the q8/q4 and kivi policies on their global layers.
#pragma once
#include <cstdint>

#include "kv/kv_cache.h"

namespace shadowkv {

class RowDecoder {
 public:
  virtual ~RowDecoder() = default;
  // Rows [begin, begin + n) of KV head kv_head as f32 keys and values, k and v [n][head_dim]. Called from several
  // threads at once (on disjoint buffers); row i holds position i.
  virtual void decode(int kv_head, int64_t begin, int64_t n, float* k, float* v) const = 0;
};

// Causal attention of n query tokens at positions pos0.. of a global layer (window 0) over rows 0 .. pos0+n-1 of
// every KV head, as DenseLayerStore::append_and_attend computes it for f32 rows: q and out [n, n_head*head_dim].
// n == 1 decodes a block of rows at a time (no buffer of the whole head); n > 1 decodes one KV head's rows at a time
// into a transient buffer and runs the tiled prefill kernel on it.
void attend_decoded(const LayerGeometry& g, const RowDecoder& rows, int64_t pos0, int n, const float* q, float* out);

}  // namespace shadowkv
