#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

int32_t argmax(const float* logits, int n) {
  // Jumps from record to record with the SIMD scan (one pass over a 262K vocabulary instead of a compare-and-branch
  // per logit); the first of equal maxima wins, and a NaN is never a record (as with a plain `>` loop).
  int64_t best = 0;
  const float inf = std::numeric_limits<float>::infinity();
  while (best < n && logits[best] != inf) {
    const int64_t i = next_at_least(logits, best + 1, n, std::nextafter(logits[best], inf));
    if (i >= n) break;
    best = i;
  }
  return (int32_t)best;
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {
  if (!(p.top_p > 0.0f)) throw Error("--top-p must be > 0");
  if (std::isnan(p.temperature)) throw Error("--temp must be a number");
}

int32_t Sampler::sample(const float* logits, int n) {
  if (p_.temperature <= 0.0f) return argmax(logits, n);
  // Top-k by partial sort, then softmax at the temperature, then the top-p nucleus, then a draw.
  const int k = (p_.top_k > 0 && p_.top_k < n) ? p_.top_k : n;
  auto greater = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  // The k best (logit, id) pairs in one pass through a heap whose top is the worst kept: with a small k (the usual
  // 40 of a 262K vocabulary) almost every logit is one comparison, and nothing is copied.
  cand_.clear();
  for (int i = 0; i < k; ++i) cand_.push_back({logits[i], i});
  std::make_heap(cand_.begin(), cand_.end(), greater);
  // Only a logit >= the worst kept can enter (an equal one loses the tie to the lower id, which is kept already).
  for (int64_t i = next_at_least(logits, k, n, cand_.front().first); i < n;
       i = next_at_least(logits, i + 1, n, cand_.front().first)) {
    const std::pair<float, int> c{logits[i], (int)i};
    if (!greater(c, cand_.front())) continue;
    std::pop_heap(cand_.begin(), cand_.end(), greater);
    cand_.back() = c;
    std::push_heap(cand_.begin(), cand_.end(), greater);
  }
  std::sort_heap(cand_.begin(), cand_.end(), greater);
  const float mx = cand_[0].first;
  double sum = 0;
  for (auto& c : cand_) sum += (c.first = std::exp((c.first - mx) / p_.temperature));
  size_t keep = cand_.size();
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].first / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += cand_[i].first;
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= cand_[i].first;
    if (r <= 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

double log_sum_exp(const float* x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp((double)x[i] - mx);
  return mx + std::log(sum);
}

void log_softmax(const float* x, int n, std::vector<float>& out) {
  const float lse = (float)log_sum_exp(x, n);
  out.resize(n);
  for (int i = 0; i < n; ++i) out[i] = x[i] - lse;
}

}  // namespace shadowkv
