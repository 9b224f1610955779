#include "kv/shadowkv/outliers.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/vec.h"

namespace shadowkv {

void chunk_min_cosine(const float* keys, int64_t row_stride, const float* landmarks, int64_t n_chunks, int chunk,
                      int head_dim, float* scores) {
#pragma omp parallel for if (n_chunks * chunk * head_dim > (1 << 16))
  for (int64_t c = 0; c < n_chunks; ++c) {
    const float* lm = landmarks + c * head_dim;
    const float lm_norm = std::sqrt(dot_f32(lm, lm, head_dim));
    float worst = 1.0f;
    for (int t = 0; t < chunk; ++t) {
      const float* k = keys + (c * chunk + t) * row_stride;
      const float denom = std::sqrt(dot_f32(k, k, head_dim)) * lm_norm;
      // A zero key or landmark has no direction: treat it as perfectly summarised (cos 1) rather than NaN.
      const float cs = denom > 0.0f ? dot_f32(k, lm, head_dim) / denom : 1.0f;
      worst = std::min(worst, cs);
    }
    scores[c] = worst;
  }
}

std::vector<int64_t> pick_outliers(const float* scores, int64_t n_chunks, int64_t count) {
  count = std::clamp<int64_t>(count, 0, n_chunks);
  std::vector<int64_t> idx(n_chunks);
  std::iota(idx.begin(), idx.end(), 0);
  auto lower = [&](int64_t a, int64_t b) { return scores[a] < scores[b] || (scores[a] == scores[b] && a < b); };
  std::nth_element(idx.begin(), idx.begin() + count, idx.end(), lower);
  idx.resize(count);
  std::sort(idx.begin(), idx.end());
  return idx;
}

void OutlierRows::append(const float* keys, const float* vals, int64_t n) {
  const size_t count = (size_t)n * hd_;
  n_ += n;
  if (!f16_) {
    kf_.insert(kf_.end(), keys, keys + count);
    vf_.insert(vf_.end(), vals, vals + count);
    return;
  }
  const size_t old = kh_.size();
  kh_.resize(old + count);
  vh_.resize(old + count);
  f32_to_f16_row(keys, kh_.data() + old, (int64_t)count);
  f32_to_f16_row(vals, vh_.data() + old, (int64_t)count);
}

KeyValueRows OutlierRows::rows() const {
  if (f16_) return {kh_.data(), vh_.data(), KvDType::F16, n_, nullptr};
  return {kf_.data(), vf_.data(), KvDType::F32, n_, nullptr};
}

}  // namespace shadowkv
