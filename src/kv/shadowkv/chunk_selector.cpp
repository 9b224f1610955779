#include "kv/shadowkv/chunk_selector.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "ops/vec.h"

namespace shadowkv {

void ChunkSelector::select(const float* q, int n_q, int head_dim, float scale, const LandmarkPanels& landmarks,
                           int64_t k, std::vector<int64_t>* selected) {
  selected->clear();
  const int64_t n_cand = landmarks.size(), n_panels = landmarks.n_panels(), ld = n_panels * kPanelRows;
  k = std::min(k, n_cand);
  score_.resize(k > 0 ? n_cand : 0);
  if (k <= 0) return;
  logits_.resize((size_t)n_q * ld);
  max_.resize(n_q);
  ld_ = ld;
  const bool par = n_cand * n_q * head_dim > (1 << 17);
  const int64_t panel_bytes = (int64_t)head_dim * kPanelRows * (landmarks.f16() ? 2 : 4);
  constexpr int64_t kPer = 16;  // panels per job
#pragma omp parallel for if (par)
  for (int64_t p0 = 0; p0 < n_panels; p0 += kPer)
    panel_scores(q, n_q, head_dim, scale, (const uint8_t*)landmarks.data() + p0 * panel_bytes, landmarks.f16(),
                 std::min(kPer, n_panels - p0), &logits_[p0 * kPanelRows], ld);
  std::fill(score_.begin(), score_.end(), 0.0f);
  float* score = score_.data();
  for (int h = 0; h < n_q; ++h) {  // softmax per head (vectorised exp), then max over the group
    float* l = &logits_[(size_t)h * ld];
    max_[h] = max_f32(l, n_cand);
    const float inv = 1.0f / exp_shift_sum(l, n_cand, max_[h]);
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
