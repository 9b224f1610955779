#include "kv/shadowkv/chunk_selector.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "ops/vec.h"

namespace shadowkv {

void ChunkSelector::select(const float* q, int n_q, int head_dim, float scale, const float* landmarks, int64_t n_cand,
                           int64_t k, std::vector<int64_t>* selected) {
  select_rows(q, n_q, head_dim, scale, landmarks, n_cand, k, selected);
}

void ChunkSelector::select(const float* q, int n_q, int head_dim, float scale, const uint16_t* landmarks,
                           int64_t n_cand, int64_t k, std::vector<int64_t>* selected) {
  select_rows(q, n_q, head_dim, scale, landmarks, n_cand, k, selected);
}

template <class T>
void ChunkSelector::select_rows(const float* q, int n_q, int head_dim, float scale, const T* landmarks, int64_t n_cand,
                                int64_t k, std::vector<int64_t>* selected) {
  selected->clear();
  k = std::min(k, n_cand);
  if (k <= 0) return;
  logits_.resize((size_t)n_q * n_cand);
  score_.resize(n_cand);
  const bool par = n_cand * n_q * head_dim > (1 << 17);
  // Landmark-major so each landmark row is read once for all heads of the group.
  constexpr int64_t kPer = 256;
#pragma omp parallel for if (par)
  for (int64_t c0 = 0; c0 < n_cand; c0 += kPer)
    group_scores(q, n_q, head_dim, scale, landmarks + c0 * head_dim, std::min(kPer, n_cand - c0), &logits_[c0], n_cand);
  std::fill(score_.begin(), score_.end(), 0.0f);
  float* score = score_.data();
  for (int h = 0; h < n_q; ++h) {  // softmax per head (vectorised exp), then max over the group
    float* l = &logits_[(size_t)h * n_cand];
    const float inv = 1.0f / exp_shift_sum(l, n_cand, max_f32(l, n_cand));
    for (int64_t c = 0; c < n_cand; ++c) score[c] = std::max(score[c], l[c] * inv);
  }
  if (k == n_cand) {
    selected->resize(n_cand);
    std::iota(selected->begin(), selected->end(), 0);
    return;
  }
  // The k-th largest score t, found on a copy of the values; then every chunk above t and, of those equal to t,
  // the lowest indices: the k best with ties to the lower index.
  top_.assign(score, score + n_cand);
  std::nth_element(top_.begin(), top_.begin() + (k - 1), top_.end(), std::greater<float>());
  const float t = top_[k - 1];
  int64_t above = 0;
  for (int64_t c = 0; c < n_cand; ++c) above += score[c] > t;
  int64_t ties = k - above;
  selected->resize(k);
  int64_t* out = selected->data();
  for (int64_t c = 0; c < n_cand; ++c)
    if (score[c] > t || (score[c] == t && ties-- > 0)) *out++ = c;
}

}  // namespace shadowkv
