// Attention kernels: attend_group against a double-precision softmax reference, and the prefill tile kernel
// (attend_tile) equal to per-query attend_group, for f32/f16 rows, append-only and ring (windowed) sets, and sink
// sets that ignore the window.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/f16.h"

namespace shadowkv {
namespace {

struct Rows {
  std::vector<float> kf, vf;
  std::vector<uint16_t> kh, vh;
  std::vector<int64_t> pos;
  KeyValueRows view(KvDType dt, bool with_pos) const {
    KeyValueRows r;
    r.dtype = dt;
    r.keys = dt == KvDType::F32 ? (const void*)kf.data() : (const void*)kh.data();
    r.vals = dt == KvDType::F32 ? (const void*)vf.data() : (const void*)vh.data();
    r.n = (int64_t)pos.size();
    r.pos = with_pos ? pos.data() : nullptr;
    return r;
  }
  float key(KvDType dt, int64_t i, int d, int hd) const {
    return dt == KvDType::F32 ? kf[i * hd + d] : f16_to_f32(kh[i * hd + d]);
  }
  float val(KvDType dt, int64_t i, int d, int hd) const {
    return dt == KvDType::F32 ? vf[i * hd + d] : f16_to_f32(vh[i * hd + d]);
  }
};

Rows random_rows(int64_t n, int hd, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Rows r;
  r.kf.resize(n * hd);
  r.vf.resize(n * hd);
  for (auto& x : r.kf) x = nd(rng);
  for (auto& x : r.vf) x = nd(rng);
  for (float x : r.kf) r.kh.push_back(f32_to_f16(x));
  for (float x : r.vf) r.vh.push_back(f32_to_f16(x));
  for (int64_t i = 0; i < n; ++i) r.pos.push_back(i);
  return r;
}

// Rows [b, e) of r.
Rows slice(const Rows& r, int64_t b, int64_t e, int hd) {
  Rows s;
  s.kf.assign(r.kf.begin() + b * hd, r.kf.begin() + e * hd), s.vf.assign(r.vf.begin() + b * hd, r.vf.begin() + e * hd);
  s.kh.assign(r.kh.begin() + b * hd, r.kh.begin() + e * hd), s.vh.assign(r.vh.begin() + b * hd, r.vh.begin() + e * hd);
  s.pos.assign(r.pos.begin() + b, r.pos.begin() + e);
  return s;
}

// Softmax attention in double over rows visible to q_pos (pos <= q_pos, within the window; rows before index
// sink_rows ignore the window).
std::vector<double> reference(const float* q, int n_q, int hd, float scale, const Rows& r, KvDType dt, int64_t q_pos,
                              int window, int64_t sink_rows = 0) {
  std::vector<double> out((size_t)n_q * hd, 0.0);
  for (int h = 0; h < n_q; ++h) {
    std::vector<double> s;
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < (int64_t)r.pos.size(); ++i) {
      const int64_t p = r.pos[i];
      if (p < 0 || p > q_pos || (window > 0 && i >= sink_rows && q_pos - p >= window)) continue;
      double d = 0;
      for (int k = 0; k < hd; ++k) d += (double)q[h * hd + k] * r.key(dt, i, k, hd);
      s.push_back(scale * d);
      ids.push_back(i);
    }
    double m = -1e300, l = 0;
    for (double x : s) m = std::max(m, x);
    for (size_t j = 0; j < s.size(); ++j) {
      const double p = std::exp(s[j] - m);
      l += p;
      for (int k = 0; k < hd; ++k) out[h * hd + k] += p * r.val(dt, ids[j], k, hd);
    }
    for (int k = 0; k < hd && l > 0; ++k) out[h * hd + k] /= l;
  }
  return out;
}

TEST(Attention, GroupMatchesDoubleReference) {
  std::mt19937 rng(7);
  const int hd = 40, n_q = 3;
  const float scale = 1.0f / std::sqrt((float)hd);
  for (KvDType dt : {KvDType::F32, KvDType::F16}) {
    for (int64_t n : {1, 63, 64, 65, 300, 5000}) {  // 5000 rows split over threads
      Rows r = random_rows(n, hd, rng);
      std::vector<float> q((size_t)n_q * hd), out((size_t)n_q * hd);
      for (auto& x : q) x = std::normal_distribution<float>(0, 1)(rng);
      const KeyValueRows kv = r.view(dt, false);
      attend_group(q.data(), n_q, hd, scale, &kv, 1, n - 1, 0, out.data());
      const auto ref = reference(q.data(), n_q, hd, scale, r, dt, n - 1, 0);
      for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-5) << "n=" << n;
    }
  }
}

TEST(Attention, GatheredRowsMatchTheirCopy) {
  // A set read through an index (a hot buffer's selected slots among others) attends exactly as the gathered rows
  // copied into a contiguous set, whole and split into slices (attend_group splits long sets over threads);
  // the prefill tile kernel refuses gathered rows.
  std::mt19937 rng(9);
  const int hd = 32, n_q = 4;
  for (KvDType dt : {KvDType::F32, KvDType::F16}) {
    const Rows all = random_rows(3000, hd, rng);
    std::vector<int64_t> index;
    for (int64_t i = 2999; i >= 0; i -= 3) index.push_back(i);  // every third row, backwards
    Rows picked;
    for (int64_t i : index) {
      const Rows one = slice(all, i, i + 1, hd);
      for (auto* v : {&picked.kf, &picked.vf}) v->insert(v->end(), hd, 0.0f);
      std::copy(one.kf.begin(), one.kf.end(), picked.kf.end() - hd);
      std::copy(one.vf.begin(), one.vf.end(), picked.vf.end() - hd);
      picked.kh.insert(picked.kh.end(), one.kh.begin(), one.kh.end());
      picked.vh.insert(picked.vh.end(), one.vh.begin(), one.vh.end());
      picked.pos.push_back((int64_t)picked.pos.size());
    }
    KeyValueRows gathered = all.view(dt, false);
    gathered.n = (int64_t)index.size();
    gathered.index = index.data();
    const KeyValueRows copy = picked.view(dt, false);
    std::vector<float> q((size_t)n_q * hd), a((size_t)n_q * hd), b((size_t)n_q * hd);
    for (auto& x : q) x = std::normal_distribution<float>(0, 1)(rng);
    attend_group(q.data(), n_q, hd, 0.2f, &gathered, 1, 5000, 0, a.data());
    attend_group(q.data(), n_q, hd, 0.2f, &copy, 1, 5000, 0, b.data());
    EXPECT_EQ(a, b);
    const KeyValueRows parts[2] = {slice_rows(gathered, 0, 400, hd), slice_rows(gathered, 400, gathered.n, hd)};
    attend_group(q.data(), n_q, hd, 0.2f, parts, 2, 5000, 0, a.data());
    const auto ref = reference(q.data(), n_q, hd, 0.2f, picked, dt, 5000, 0);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], ref[i], 2e-5);
    EXPECT_THROW(attend_tile(q.data(), n_q * hd, 1, n_q, hd, 0.2f, &gathered, 1, 5000, 0, a.data(), n_q * hd),
                 std::exception);
  }
}

TEST(Attention, NothingVisibleGivesZeros) {
  std::mt19937 rng(8);
  Rows r = random_rows(10, 8, rng);
  for (auto& p : r.pos) p += 100;  // every row is in the future of q_pos 5
  std::vector<float> q(8, 1.0f), out(8, 9.0f);
  const KeyValueRows kv = r.view(KvDType::F32, true);
  attend_group(q.data(), 1, 8, 1.0f, &kv, 1, 5, 0, out.data());
  for (float x : out) EXPECT_EQ(x, 0.0f);
}

// Each query of a tile must get what attend_group gives it alone (up to float rounding).
void check_tile_matches_group(KvDType dt, bool ring, int window) {
  std::mt19937 rng(11);
  const int hd = 32, n_q = 4, n_tok = 37;
  const float scale = 0.17f;
  const int64_t q_pos0 = ring ? 500 : 300;
  // Append-only: rows 0..q_pos0+n_tok-1 at their index. Ring: 96 slots holding scattered older positions (some
  // empty) plus the tile's own new rows in a second set.
  Rows a = random_rows(ring ? 96 : q_pos0 + n_tok, hd, rng);
  Rows fresh = random_rows(n_tok, hd, rng);
  if (ring) {
    for (int64_t i = 0; i < 96; ++i) a.pos[i] = i % 7 == 3 ? -1 : q_pos0 - 96 + i;
    for (int t = 0; t < n_tok; ++t) fresh.pos[t] = q_pos0 + t;
  }
  KeyValueRows sets[2] = {a.view(dt, ring), fresh.view(dt, true)};
  const int n_sets = ring ? 2 : 1;
  const int64_t stride = (int64_t)n_q * hd + 5;  // rows of q/out need not be packed
  std::vector<float> q(n_tok * stride), tile_out(n_tok * stride, -1.0f), one(n_q * hd);
  for (auto& x : q) x = std::normal_distribution<float>(0, 1)(rng);
  attend_tile(q.data(), stride, n_tok, n_q, hd, scale, sets, n_sets, q_pos0, window, tile_out.data(), stride);
  for (int t = 0; t < n_tok; ++t) {
    KeyValueRows per[2] = {sets[0], sets[1]};
    if (!ring) per[0].n = q_pos0 + t + 1;
    attend_group(q.data() + t * stride, n_q, hd, scale, per, n_sets, q_pos0 + t, window, one.data());
    for (int i = 0; i < n_q * hd; ++i) ASSERT_NEAR(tile_out[t * stride + i], one[i], 2e-5) << "token " << t;
    if (!ring) {
      const auto ref = reference(q.data() + t * stride, n_q, hd, scale, a, dt, q_pos0 + t, window);
      for (int i = 0; i < n_q * hd; ++i) ASSERT_NEAR(tile_out[t * stride + i], ref[i], 2e-5);
    }
  }
}

TEST(Attention, TileEqualsPerQueryAppendOnlyF32) { check_tile_matches_group(KvDType::F32, false, 0); }
TEST(Attention, TileEqualsPerQueryAppendOnlyF16) { check_tile_matches_group(KvDType::F16, false, 0); }
TEST(Attention, TileEqualsPerQueryRingWindowF16) { check_tile_matches_group(KvDType::F16, true, 64); }
TEST(Attention, TileEqualsPerQueryRingWindowF32) { check_tile_matches_group(KvDType::F32, true, 64); }

// Sink rows stay visible outside the window, in attend_group and attend_tile alike; the other set keeps its window.
TEST(Attention, SinkSetIgnoresTheWindow) {
  std::mt19937 rng(12);
  const int hd = 32, n_q = 2, n_tok = 20, window = 32;
  const float scale = 0.2f;
  for (KvDType dt : {KvDType::F32, KvDType::F16}) {
    Rows all = random_rows(4 + 80, hd, rng);  // rows 0..3: sinks at positions 0..3; then positions 180..259
    for (int64_t i = 4; i < 84; ++i) all.pos[i] = 176 + i;
    const Rows sinks = slice(all, 0, 4, hd), recent = slice(all, 4, 84, hd);
    KeyValueRows sets[2] = {sinks.view(dt, true), recent.view(dt, true)};
    sets[0].sink = true;
    std::vector<float> q((size_t)n_tok * n_q * hd), tile((size_t)n_tok * n_q * hd), one((size_t)n_q * hd);
    for (auto& x : q) x = std::normal_distribution<float>(0, 1)(rng);
    const int64_t q_pos0 = 240;
    attend_tile(q.data(), n_q * hd, n_tok, n_q, hd, scale, sets, 2, q_pos0, window, tile.data(), n_q * hd);
    for (int t = 0; t < n_tok; ++t) {
      const float* qt = q.data() + (size_t)t * n_q * hd;
      attend_group(qt, n_q, hd, scale, sets, 2, q_pos0 + t, window, one.data());
      const auto ref = reference(qt, n_q, hd, scale, all, dt, q_pos0 + t, window, 4);
      for (int i = 0; i < n_q * hd; ++i) {
        ASSERT_NEAR(one[i], ref[i], 2e-5) << "token " << t;
        ASSERT_NEAR(tile[(size_t)t * n_q * hd + i], ref[i], 2e-5) << "token " << t;
      }
    }
  }
}

}  // namespace
}  // namespace shadowkv
