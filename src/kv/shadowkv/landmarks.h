// Chunk landmarks (ShadowKV step 2): the mean post-RoPE key of each chunk of `chunk` consecutive tokens, per KV
// head. At decode time a query scores landmarks instead of keys to pick which chunks to rebuild.
#pragma once
#include <cstdint>

namespace shadowkv {

// keys: one head's post-RoPE keys, rows `row_stride` floats apart (row t of chunk c is keys[(c*chunk+t)*stride]).
// out[c][head_dim] = mean of chunk c's rows, for c in [0, n_chunks).
void chunk_landmarks(const float* keys, int64_t row_stride, int64_t n_chunks, int chunk, int head_dim, float* out);

}  // namespace shadowkv
