// Outlier chunks (ShadowKV step 3): chunks whose keys are badly summarised by their landmark stay dense (exact
// post-RoPE K and V) for the whole decode. A chunk's score is the minimum cosine similarity of its keys to its
// landmark; the lowest scores are the outliers.
#pragma once
#include <cstdint>
#include <vector>

namespace shadowkv {

// scores[c] = min over the chunk's rows of cos(key, landmark[c]); layouts as in chunk_landmarks().
void chunk_min_cosine(const float* keys, int64_t row_stride, const float* landmarks, int64_t n_chunks, int chunk,
                      int head_dim, float* scores);

// The `count` chunks with the lowest score (ties: lower index first), returned in increasing chunk order.
std::vector<int64_t> pick_outliers(const float* scores, int64_t n_chunks, int64_t count);

}  // namespace shadowkv
