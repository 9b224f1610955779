#include "kv/shadowkv/chunk_selector.h"

#include <algorithm>
#include <cmath>
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
  for (int h = 0; h < n_q; ++h) {
    float* l = &logits_[(size_t)h * n_cand];
    const float m = *std::max_element(l, l + n_cand);
    double z = 0.0;
    for (int64_t c = 0; c < n_cand; ++c) {
      l[c] = std::exp(l[c] - m);
      z += l[c];
    }
    const float inv = (float)(1.0 / z);
    for (int64_t c = 0; c < n_cand; ++c) score_[c] = std::max(score_[c], l[c] * inv);
  }
  order_.resize(n_cand);
  std::iota(order_.begin(), order_.end(), 0);
  const float* s = score_.data();
  auto better = [s](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); };
  if (k < n_cand) std::nth_element(order_.begin(), order_.begin() + k, order_.end(), better);
  selected->assign(order_.begin(), order_.begin() + k);
}

}  // namespace shadowkv
