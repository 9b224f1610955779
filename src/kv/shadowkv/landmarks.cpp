#include "kv/shadowkv/landmarks.h"

#include <algorithm>

#include "ops/vec.h"

namespace shadowkv {

void chunk_landmarks(const float* keys, int64_t row_stride, int64_t n_chunks, int chunk, int head_dim, float* out) {
#pragma omp parallel for if (n_chunks * chunk * head_dim > (1 << 16))
  for (int64_t c = 0; c < n_chunks; ++c) {
    float* lm = out + c * head_dim;
    std::fill_n(lm, head_dim, 0.0f);
    for (int t = 0; t < chunk; ++t) axpy_f32(1.0f, keys + (c * chunk + t) * row_stride, lm, head_dim);
    scale_f32(1.0f / chunk, lm, head_dim);
  }
}

}  // namespace shadowkv
