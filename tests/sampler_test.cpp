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
