// HeadRows (per-KV-head kept rows) and attention with per-row probabilities: keep() compacts in order, and the
// probabilities of a query group sum to its head count and weight the values into the attention output; a decode
// step's attention over one KV head gives the same bits alone (query heads split over threads) and inside a batch's
// parallel region (one job for the whole group).
#include "kv/head_rows.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <numeric>
#include <random>
#include <vector>

#include "util/error.h"

namespace shadowkv {
namespace {

TEST(HeadRows, KeepCompactsInOrder) {
  const int hd = 4;
  HeadRows r(hd);
  for (int p = 0; p < 10; ++p) {
    std::vector<float> k(hd, (float)p), v(hd, -(float)p);
    r.append(100 + p, k.data(), v.data());
  }
  r.keep({1, 4, 5, 9});
  EXPECT_EQ(r.positions(), (std::vector<int64_t>{101, 104, 105, 109}));
  EXPECT_EQ(r.key(2)[3], 5.0f);
  EXPECT_EQ(r.value(3)[0], -9.0f);
  EXPECT_EQ(r.kv_bytes(), 4 * hd * 2 * 4);
  const KeyValueRows view = r.view();
  EXPECT_EQ(view.n, 4);
  EXPECT_EQ(view.pos[1], 104);
  EXPECT_THROW(r.keep({2, 1}), Error);
}

TEST(HeadRows, ProbabilitiesSumToTheGroupAndGiveTheOutput) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int hd = 16, n_q = 3, n = 50;
  HeadRows r(hd);
  for (int p = 0; p < n; ++p) {
    std::vector<float> k(hd), v(hd);
    for (float& x : k) x = nd(rng);
    for (float& x : v) x = nd(rng);
    r.append(p, k.data(), v.data());
  }
  std::vector<float> q(n_q * hd), out(n_q * hd), probs(n, 0.0f);
  for (float& x : q) x = nd(rng);
  const int64_t q_pos = 30;  // rows after it are not visible
  attend_with_probs(q.data(), n_q, hd, 0.3f, r.view(), q_pos, out.data(), probs.data());
  EXPECT_NEAR(std::accumulate(probs.begin(), probs.end(), 0.0), n_q, 1e-5);
  for (int i = q_pos + 1; i < n; ++i) EXPECT_EQ(probs[i], 0.0f);
  // With one head the probabilities are its softmax weights: out = sum_i p_i v_i.
  std::vector<float> one(hd), p1(n, 0.0f);
  attend_with_probs(q.data(), 1, hd, 0.3f, r.view(), q_pos, one.data(), p1.data());
  for (int d = 0; d < hd; ++d) {
    double s = 0;
    for (int i = 0; i < n; ++i) s += (double)p1[i] * r.value(i)[d];
    EXPECT_NEAR(one[d], s, 1e-5);
    EXPECT_EQ(one[d], out[d]);
  }
}

TEST(HeadRows, DecodeStepIsTheSameInsideABatchParallelRegion) {
  std::mt19937 rng(6);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  LayerGeometry g;
  g.n_head = 4, g.n_kv_head = 1, g.head_dim = 32, g.scale = 0.2f;  // Gemma 3's shape: one KV head, four queries
  const int n = 300;                                               // short: attend_layer splits the query heads
  HeadRows r(g.head_dim);
  for (int p = 0; p < n; ++p) {
    std::vector<float> k(g.head_dim), v(g.head_dim);
    for (float& x : k) x = nd(rng);
    for (float& x : v) x = nd(rng);
    r.append(p, k.data(), v.data());
  }
  std::vector<float> q(g.n_head * g.head_dim);
  for (float& x : q) x = nd(rng);
  const HeadSets sets = [&](int, KeyValueRows* s) {
    s[0] = r.view();
    return 1;
  };
  std::vector<float> alone(q.size()), batched(2 * q.size(), 0.0f);
  attend_layer(g, n - 1, 1, q.data(), 0, sets, alone.data());
  int threads = 1;
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 2; ++i) {
    attend_layer(g, n - 1, 1, q.data(), 0, sets, &batched[i * q.size()]);
    if (i == 1) threads = omp_get_num_threads();
  }
  EXPECT_EQ(threads, 2);
  for (size_t i = 0; i < q.size(); ++i) {
    ASSERT_EQ(alone[i], batched[i]) << i;
    ASSERT_EQ(alone[i], batched[q.size() + i]) << i;
  }
}

}  // namespace
}  // namespace shadowkv
