// Sampler: top-k keeps exactly the k best logits (ties to the lower id), so with top_p = 1 and a tiny temperature
// it returns the argmax, and a seeded sampler's draws follow the reference distribution over those k.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

namespace shadowkv {
namespace {

std::vector<float> random_logits(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = std::round(nd(rng) * 4.0f) / 4.0f;  // many ties
  return v;
}

// The plain loop argmax() must agree with: the first of equal maxima, NaN never chosen unless it is first.
int reference_argmax(const std::vector<float>& x) {
  int best = 0;
  for (int i = 1; i < (int)x.size(); ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

TEST(Sampler, ArgmaxMatchesAPlainLoopWithTiesNansAndInfinities) {
  const float nan = std::nanf(""), inf = INFINITY;
  for (int n : {1, 7, 8, 9, 63, 1000, 4099})
    for (uint32_t seed = 0; seed < 20; ++seed) {
      std::vector<float> v = random_logits(n, seed);
      std::mt19937 rng(seed + 100);
      for (int j = 0; j < (int)(seed % 4); ++j) v[rng() % n] = (seed & 1) ? nan : (seed & 2) ? inf : -inf;
      if (seed == 7) v[0] = nan;
      if (seed == 9) std::fill(v.begin(), v.end(), -inf);
      EXPECT_EQ(argmax(v.data(), n), reference_argmax(v)) << "n " << n << " seed " << seed;
    }
}

TEST(Sampler, TopKDrawsOnlyTheKBestWithReferenceFrequencies) {
  const int n = 5000, k = 5;
  const std::vector<float> logits = random_logits(n, 3);
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  const std::vector<int> best(order.begin(), order.begin() + k);
  double z = 0;
  for (int id : best) z += std::exp(logits[id] - logits[best[0]]);
  Sampler s({1.0f, k, 1.0f, 42});
  std::map<int, int> count;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) ++count[s.sample(logits.data(), n)];
  for (const auto& [id, c] : count) EXPECT_NE(std::find(best.begin(), best.end(), id), best.end()) << id;
  for (int id : best) {
    const double p = std::exp(logits[id] - logits[best[0]]) / z;
    EXPECT_NEAR((double)count[id] / draws, p, 4 * std::sqrt(p * (1 - p) / draws) + 1e-3) << id;
  }
}

TEST(Sampler, ColdTopKIsTheArgmax) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> logits = random_logits(3001, seed);
    logits[argmax(logits.data(), 3001)] += 0.1f;  // a unique best (a cold draw may pick any of tied bests)
    Sampler cold({1e-4f, 40, 1.0f, seed}), greedy({0.0f, 40, 1.0f, seed});
    EXPECT_EQ(cold.sample(logits.data(), 3001), argmax(logits.data(), 3001));
    EXPECT_EQ(greedy.sample(logits.data(), 3001), argmax(logits.data(), 3001));
  }
}

}  // namespace
}  // namespace shadowkv
