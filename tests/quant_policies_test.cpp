// The survey's quantisation and query-aware policies (q8, q4, kivi, quest) against reference implementations of
// their formats and selection, and against `full` on the synthetic inputs of kv_test_util.h.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kv/decoded_attention.h"
#include "kv/dense_layer_store.h"
#include "kv/full_kv_cache.h"
#include "kv/kivi_kv_cache.h"
#include "kv/quantized_kv_cache.h"
#include "kv/quest_kv_cache.h"
#include "kv_test_util.h"
#include "ops/f16.h"
#include "ops/quant.h"
#include "ops/quantize.h"
#include "util/error.h"

namespace shadowkv {
namespace {
using namespace kvtest;

constexpr int kGlobal[] = {0, 2};  // layers of make_geometry() that follow the policy (global index 0, 1)

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// ---- Plain reference of ggml's Q8_0 / Q4_0 blocks (34 / 18 bytes: f16 d, then the codes). ----

std::vector<uint8_t> ref_quantize(GgmlType t, const float* x, int n) {
  const int bb = t == GgmlType::Q8_0 ? 34 : 18;
  std::vector<uint8_t> out((size_t)n / 32 * bb);
  for (int b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    uint8_t* ob = &out[(size_t)b * bb];
    float amax = 0, signed_max = 0;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(xb[j]) > amax) amax = std::fabs(xb[j]), signed_max = xb[j];
    const float d = t == GgmlType::Q8_0 ? amax / 127 : signed_max / -8;
    const float id = d == 0 ? 0 : 1 / d;
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(ob, &dh, 2);
    for (int j = 0; j < 32; ++j) {
      if (t == GgmlType::Q8_0) {
        ob[2 + j] = (uint8_t)(int8_t)std::round(xb[j] * id);
      } else {
        const int qv = std::min(15, (int)(xb[j] * id + 8.5f));
        ob[2 + j % 16] |= (uint8_t)(qv << (j < 16 ? 0 : 4));
      }
    }
  }
  return out;
}

std::vector<float> ref_dequantize(GgmlType t, const uint8_t* bytes, int n) {
  const int bb = t == GgmlType::Q8_0 ? 34 : 18;
  std::vector<float> y(n);
  for (int b = 0; b < n / 32; ++b) {
    const uint8_t* ib = bytes + (size_t)b * bb;
    uint16_t dh;
    std::memcpy(&dh, ib, 2);
    const float d = f16_to_f32(dh);
    for (int j = 0; j < 32; ++j) {
      const int qv = t == GgmlType::Q8_0 ? (int)(int8_t)ib[2 + j] : ((ib[2 + j % 16] >> (j < 16 ? 0 : 4)) & 15) - 8;
      y[b * 32 + j] = d * (float)qv;
    }
  }
  return y;
}

// Inputs whose global-layer keys and values are replaced by their reference quantise->dequantise round trip.
Inputs ref_rounded(const KvGeometry& g, Inputs in, GgmlType t) {
  for (int l : kGlobal)
    for (int64_t p = 0; p < in.n; ++p)
      for (int h = 0; h < kKv; ++h)
        for (std::vector<float>* m : {&in.k[l], &in.v[l]}) {
          float* row = &(*m)[p * kW + h * kHd];
          const std::vector<float> y = ref_dequantize(t, ref_quantize(t, row, kHd).data(), kHd);
          std::copy(y.begin(), y.end(), row);
        }
  return in;
}

TEST(BlockQuant, MatchesReferenceFormatAndOpsDequantisation) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<float> x(256);
      const float gain = std::pow(10.0f, (float)(trial % 7) - 3);
      for (float& v : x) v = gain * nd(rng);
      if (trial == 0) std::fill(x.begin(), x.begin() + 32, 0.0f);  // an all-zero block
      if (trial == 1) x[5] = -40 * gain;                           // a negative extreme
      std::vector<uint8_t> q(row_bytes(t, 256));
      quantize_row(t, x.data(), q.data(), 256);
      ASSERT_EQ(q, ref_quantize(t, x.data(), 256)) << traits(t).name << " trial " << trial;
      std::vector<float> y(256);
      dequantize_row(t, q.data(), y.data(), 256);  // ops/quant (SIMD or scalar), the policy's read path
      ASSERT_EQ(max_abs_diff(y, ref_dequantize(t, q.data(), 256)), 0.0f);
      for (int b = 0; b < 8; ++b) {  // round trip within one step (q8: half a step) plus the f16 scale's rounding
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        const float step = t == GgmlType::Q8_0 ? amax / 127 : amax / 8;
        for (int j = 0; j < 32; ++j)
          EXPECT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]),
                    (t == GgmlType::Q8_0 ? 0.5f : 1.0f) * step + 2e-3f * amax);
      }
    }
  }
  std::vector<float> x(40);
  std::vector<uint8_t> q(64);
  EXPECT_THROW(quantize_row(GgmlType::Q8_0, x.data(), q.data(), 40), Error);
  EXPECT_THROW(quantize_row(GgmlType::Q4_1, x.data(), q.data(), 32), Error);
}

void check_block_policy(const char* name, GgmlType t, double max_rel) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 340;
  Inputs in(g, total + 1, 0, 1.0f, 31);  // one more position to replay on a clone
  FullKvCache full(g, KvOptions{});
  QuantizedKvCache qc(g, t);
  std::unique_ptr<KvCache> made = make_kv_cache(g, opts(name));
  EXPECT_STREQ(made->policy(), name);
  Inputs rounded = ref_rounded(g, in, t);
  FullKvCache ref(g, KvOptions{});  // exact attention over the reference-dequantised rows
  auto fo = feed(full, in, 0, prompt, 128), qo = feed(qc, in, 0, prompt, 128), ro = feed(ref, rounded, 0, prompt, 128);
  const auto mo = feed(*made, in, 0, prompt, 128);
  full.end_prefill(), qc.end_prefill(), ref.end_prefill(), made->end_prefill();
  const auto fd = feed(full, in, prompt, total, 1), qd = feed(qc, in, prompt, total, 1);
  const auto rd = feed(ref, rounded, prompt, total, 1);
  EXPECT_EQ(compare(qo, ro).max_abs, 0.0f);  // prefill (tiled kernel)
  EXPECT_EQ(compare(qd, rd).max_abs, 0.0f);  // decode (row blocks)
  EXPECT_EQ(compare(mo, qo).max_abs, 0.0f);
  const Diff dp = compare(qo, fo), dd = compare(qd, fd);
  EXPECT_LT(dp.rel, max_rel) << name;
  EXPECT_LT(dd.rel, max_rel) << name;
  EXPECT_GT(dd.max_abs, 0.0f);
  printf("%s rel err vs full: prefill %.2e, decode %.2e\n", name, dp.rel, dd.rel);
  EXPECT_EQ(max_abs_diff(qo[1], fo[1]), 0.0f);  // the sliding layer is exact
  EXPECT_EQ(max_abs_diff(qd[1], fd[1]), 0.0f);
  // Stored bytes are the reference's block bytes of the input rows.
  for (int gi = 0; gi < 2; ++gi)
    for (int64_t p : {int64_t{0}, int64_t{129}, total - 1}) {
      const std::vector<uint8_t> rk = ref_quantize(t, &in.k[kGlobal[gi]][p * kW + kHd], kHd);
      ASSERT_EQ(std::memcmp(qc.key_bytes(gi, 1, p), rk.data(), rk.size()), 0);
      const std::vector<uint8_t> rv = ref_quantize(t, &in.v[kGlobal[gi]][p * kW + kHd], kHd);
      ASSERT_EQ(std::memcmp(qc.value_bytes(gi, 1, p), rv.data(), rv.size()), 0);
    }
  // Clone continues identically.
  std::unique_ptr<KvCache> copy = qc.clone();
  EXPECT_EQ(compare(feed(*copy, in, total, total + 1, 1), feed(qc, in, total, total + 1, 1)).max_abs, 0.0f);
}

TEST(QuantPolicies, Q8IsCloseToFullAndExactOverItsRoundedRows) { check_block_policy("q8", GgmlType::Q8_0, 0.01); }

TEST(QuantPolicies, Q4IsCloseToFullAndExactOverItsRoundedRows) { check_block_policy("q4", GgmlType::Q4_0, 0.10); }

// ---- kivi ----

// Reference KIVI quantiser: f16 scale (max-min)/(2^bits-1) and zero min, codes against the rounded parameters.
float ref_kivi(float x, float lo, float hi, int bits) {
  const float s = f16_to_f32(f32_to_f16((hi - lo) / (float)((1 << bits) - 1))), mn = f16_to_f32(f32_to_f16(lo));
  float c = s > 0 ? std::nearbyint((x - mn) / s) : 0.0f;
  c = std::clamp(c, 0.0f, (float)((1 << bits) - 1));
  return mn + c * s;
}

void check_kivi_rows(int bits, int group, int residual) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 337;
  Inputs in(g, total, 0, 1.0f, 41);
  KiviKvCache kc(g, opts("kivi", {{"bits", std::to_string(bits)},
                                  {"group", std::to_string(group)},
                                  {"residual", std::to_string(residual)}}));
  feed(kc, in, 0, prompt, 128);
  kc.end_prefill();
  feed(kc, in, prompt, total, 1);
  for (int gi = 0; gi < 2; ++gi) {
    const int64_t kq = kc.quantized_keys(gi), vq = kc.quantized_values(gi);
    EXPECT_EQ(kq, std::max<int64_t>(0, (total - residual) / group) * group);
    EXPECT_EQ(vq, std::max<int64_t>(0, total - residual));
    const std::vector<float>&K = in.k[kGlobal[gi]], &V = in.v[kGlobal[gi]];
    for (int h = 0; h < kKv; ++h) {
      std::vector<float> k(total * kHd), v(total * kHd);
      kc.decode_rows(gi, h, 0, total, k.data(), v.data());
      for (int64_t t = 0; t < total; ++t)
        for (int c = 0; c < kHd; ++c) {
          const float x = K[t * kW + h * kHd + c], y = V[t * kW + h * kHd + c];
          float want_k = x, want_v = y;
          if (t < kq) {  // per channel over the key group
            const int64_t g0 = t / group * group;
            float lo = x, hi = x;
            for (int64_t u = g0; u < g0 + group; ++u) {
              lo = std::min(lo, K[u * kW + h * kHd + c]);
              hi = std::max(hi, K[u * kW + h * kHd + c]);
            }
            want_k = ref_kivi(x, lo, hi, bits);
          }
          if (t < vq) {  // per token over the channel group
            const int c0 = c / group * group, c1 = std::min(kHd, c0 + group);
            float lo = y, hi = y;
            for (int u = c0; u < c1; ++u) {
              lo = std::min(lo, V[t * kW + h * kHd + u]);
              hi = std::max(hi, V[t * kW + h * kHd + u]);
            }
            want_v = ref_kivi(y, lo, hi, bits);
          }
          // Exact rows are bit-exact; quantised ones equal the reference up to float rounding.
          ASSERT_NEAR(k[t * kHd + c], want_k, t < kq ? 1e-5f : 0.0f) << "key t " << t << " c " << c;
          ASSERT_NEAR(v[t * kHd + c], want_v, t < vq ? 1e-5f : 0.0f) << "value t " << t << " c " << c;
        }
    }
  }
}

TEST(KiviPolicy, KeptRowsExactQuantisedRowsMatchReference) {
  check_kivi_rows(2, 32, 128);
  check_kivi_rows(4, 32, 64);
  check_kivi_rows(2, 24, 0);   // channel groups 24 + 8; every value quantised
  check_kivi_rows(4, 16, 17);  // residual not a multiple of the group
}

TEST(KiviPolicy, ResidualCoveringEverythingEqualsFull) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 360;
  Inputs in(g, total, 0, 1.0f, 42);
  FullKvCache full(g, KvOptions{});
  std::unique_ptr<KvCache> kc = make_kv_cache(g, opts("kivi", {{"residual", "360"}}));
  EXPECT_EQ(compare(feed(*kc, in, 0, prompt, 128), feed(full, in, 0, prompt, 128)).max_abs, 0.0f);
  kc->end_prefill();
  EXPECT_EQ(compare(feed(*kc, in, prompt, total, 1), feed(full, in, prompt, total, 1)).max_abs, 0.0f);
  EXPECT_EQ(counter_map(*kc)["values_quantized"], 0.0);
}

TEST(KiviPolicy, CloseToFullAndFourBitsCloserThanTwo) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 400;
  Inputs in(g, total, 0, 1.0f, 43);
  FullKvCache full(g, KvOptions{});
  KiviKvCache k2(g, opts("kivi", {{"residual", "32"}})), k4(g, opts("kivi", {{"bits", "4"}, {"residual", "32"}}));
  feed(full, in, 0, prompt, 128), feed(k2, in, 0, prompt, 128), feed(k4, in, 0, prompt, 128);
  full.end_prefill(), k2.end_prefill(), k4.end_prefill();
  const auto f = feed(full, in, prompt, total, 1), o2 = feed(k2, in, prompt, total, 1),
             o4 = feed(k4, in, prompt, total, 1);
  const Diff d2 = compare(o2, f), d4 = compare(o4, f);
  printf("kivi rel err vs full: 2 bits %.3f, 4 bits %.3f\n", d2.rel, d4.rel);
  EXPECT_TRUE(d2.finite && d4.finite);
  EXPECT_LT(d2.rel, 0.5);
  EXPECT_LT(d4.rel, 0.1);
  EXPECT_LT(d4.rel, 0.5 * d2.rel);
  EXPECT_EQ(max_abs_diff(o2[1], f[1]), 0.0f);  // the sliding layer is exact
  const std::unique_ptr<KvCache> copy = k2.clone();
  EXPECT_EQ(counter_map(*copy)["keys_quantized"], counter_map(k2)["keys_quantized"]);
  EXPECT_GT(counter_map(k2)["keys_quantized"], 0.8);
}

// ---- quest ----

// Brute force: f16-rounded keys of the input, page min/max, the bound per head, max over the group.
std::vector<float> ref_page_scores(const Inputs& in, int layer, int h, int64_t n, int page, const float* qg) {
  std::vector<float> scores;
  for (int64_t p0 = 0; p0 < n; p0 += page) {
    std::vector<float> lo(kHd, INFINITY), hi(kHd, -INFINITY);
    for (int64_t t = p0; t < std::min(n, p0 + page); ++t)
      for (int c = 0; c < kHd; ++c) {
        const float x = f16_to_f32(f32_to_f16(in.k[layer][t * kW + h * kHd + c]));
        lo[c] = std::min(lo[c], x), hi[c] = std::max(hi[c], x);
      }
    float best = -INFINITY;
    for (int j = 0; j < kHeads / kKv; ++j) {
      float b = 0;
      for (int c = 0; c < kHd; ++c) b += std::max(qg[j * kHd + c] * lo[c], qg[j * kHd + c] * hi[c]);
      best = std::max(best, b);
    }
    scores.push_back(best);
  }
  return scores;
}

TEST(QuestPolicy, BudgetCoveringEverythingEqualsFullF16) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 360;
  Inputs in(g, total, 0, 1.0f, 51);
  FullKvCache f16(g, opts("full", {{"kv-f16", "true"}})), f32(g, KvOptions{});
  std::unique_ptr<KvCache> qc = make_kv_cache(g, opts("quest", {{"budget", "360"}, {"page", "16"}}));
  auto a = feed(*qc, in, 0, prompt, 128), b = feed(f16, in, 0, prompt, 128), c = feed(f32, in, 0, prompt, 128);
  qc->end_prefill(), f16.end_prefill(), f32.end_prefill();
  auto ad = feed(*qc, in, prompt, total, 1), bd = feed(f16, in, prompt, total, 1), cd = feed(f32, in, prompt, total, 1);
  for (int l : kGlobal) {
    EXPECT_EQ(max_abs_diff(a[l], b[l]), 0.0f);
    EXPECT_EQ(max_abs_diff(ad[l], bd[l]), 0.0f);
  }
  EXPECT_EQ(max_abs_diff(a[1], c[1]), 0.0f);  // the sliding layer stays exact f32
  EXPECT_EQ(max_abs_diff(ad[1], cd[1]), 0.0f);
  EXPECT_EQ(counter_map(*qc)["pages_selected_fraction"], 1.0);
}

TEST(QuestPolicy, SelectionMatchesBruteForceAndAttendsExactlyOverIt) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 203, total = 230;
  const int page = 8;
  Inputs in(g, total, 4, 2.0f, 52);
  QuestKvCache qc(g, opts("quest", {{"budget", "64"}, {"page", std::to_string(page)}}));
  EXPECT_EQ(qc.pages_per_step(), 8);
  feed(qc, in, 0, prompt, 128);
  qc.end_prefill();
  for (int64_t pos = prompt; pos < total; ++pos) {
    const auto out = feed(qc, in, pos, pos + 1, 1);
    const int64_t n = pos + 1, n_pages = (n + page - 1) / page;
    for (int gi = 0; gi < 2; ++gi) {
      const int l = kGlobal[gi];
      for (int h = 0; h < kKv; ++h) {
        const float* qg = &in.q[l][pos * kQw + h * 2 * kHd];
        const std::vector<float> ref = ref_page_scores(in, l, h, n, page, qg);
        ASSERT_EQ(qc.page_scores(gi, h, qg), ref);
        std::vector<int64_t> want;  // top 7 by (score, lower index), plus the last page
        for (int64_t p = 0; p + 1 < n_pages; ++p) want.push_back(p);
        std::sort(want.begin(), want.end(),
                  [&](int64_t a, int64_t b) { return ref[a] > ref[b] || (ref[a] == ref[b] && a < b); });
        want.resize(7);
        std::sort(want.begin(), want.end());
        want.push_back(n_pages - 1);
        const std::vector<int64_t> sel = qc.select_pages(gi, h, qg);
        ASSERT_EQ(sel, want) << "pos " << pos;
        // The step's output is exact softmax attention (double) over the selected pages' f16 rows.
        for (int j = 0; j < 2; ++j) {
          std::vector<double> w, acc(kHd, 0.0);
          std::vector<int64_t> toks;
          for (int64_t p : sel)
            for (int64_t t = p * page; t < std::min(n, (p + 1) * page); ++t) toks.push_back(t);
          double m = -INFINITY, z = 0;
          for (int64_t t : toks) {
            double s = 0;
            for (int c = 0; c < kHd; ++c)
              s += (double)qg[j * kHd + c] * f16_to_f32(f32_to_f16(in.k[l][t * kW + h * kHd + c]));
            w.push_back(s * g.layers[l].scale);
            m = std::max(m, w.back());
          }
          for (size_t i = 0; i < toks.size(); ++i) {
            const double e = std::exp(w[i] - m);
            z += e;
            for (int c = 0; c < kHd; ++c) acc[c] += e * f16_to_f32(f32_to_f16(in.v[l][toks[i] * kW + h * kHd + c]));
          }
          for (int c = 0; c < kHd; ++c) ASSERT_NEAR(out[l][(h * 2 + j) * kHd + c], acc[c] / z, 1e-4);
        }
      }
    }
  }
  const double frac = counter_map(qc)["pages_selected_fraction"];
  EXPECT_GT(frac, 8.0 / 29);
  EXPECT_LT(frac, 8.0 / 26);
}

TEST(QuestPolicy, BoundIsAnUpperBoundOfEveryScoreInThePage) {
  const KvGeometry g = make_geometry();
  const int64_t n = 157;
  Inputs in(g, n, 0, 1.0f, 53);
  for (int page : {1, 5, 16}) {
    QuestKvCache qc(g, opts("quest", {{"page", std::to_string(page)}}));
    feed(qc, in, 0, n, 64);
    std::mt19937 rng(page);
    std::normal_distribution<float> nd(0, 1);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> qg(2 * kHd);
      for (float& x : qg) x = nd(rng) * (trial % 2 ? 10.0f : 0.1f);
      for (int gi = 0; gi < 2; ++gi)
        for (int h = 0; h < kKv; ++h) {
          const std::vector<float> sc = qc.page_scores(gi, h, qg.data());
          ASSERT_EQ((int64_t)sc.size(), (n + page - 1) / page);
          for (int64_t t = 0; t < n; ++t)
            for (int j = 0; j < 2; ++j) {
              double s = 0;
              for (int c = 0; c < kHd; ++c)
                s += (double)qg[j * kHd + c] * f16_to_f32(f32_to_f16(in.k[kGlobal[gi]][t * kW + h * kHd + c]));
              ASSERT_LE(s, sc[t / page] + 1e-5 * (1 + std::fabs(s))) << "page " << page << " t " << t;
            }
        }
    }
  }
}

TEST(QuestPolicy, SmallBudgetIsApproximateAndForksAcrossBudgets) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 360;
  Inputs in(g, total, 4, 2.0f, 54);
  FullKvCache full(g, opts("full", {{"kv-f16", "true"}}));
  QuestKvCache base(g, opts("quest", {{"budget", "4096"}}));
  std::unique_ptr<KvCache> fresh = make_kv_cache(g, opts("quest", {{"budget", "96"}}));
  feed(full, in, 0, prompt, 128), feed(base, in, 0, prompt, 128), feed(*fresh, in, 0, prompt, 128);
  std::unique_ptr<KvCache> forked = base.fork(opts("quest", {{"budget", "96"}}));
  ASSERT_NE(forked, nullptr);
  EXPECT_EQ(base.fork(opts("quest", {{"page", "8"}})), nullptr);
  EXPECT_EQ(base.fork(opts("q8")), nullptr);
  const auto f = feed(full, in, prompt, total, 1), a = feed(*fresh, in, prompt, total, 1);
  EXPECT_EQ(compare(feed(*forked, in, prompt, total, 1), a).max_abs, 0.0f);
  const Diff d = compare(std::vector<std::vector<float>>{a[0], a[2]}, {f[0], f[2]});
  printf("quest budget 96 rel err vs full f16: %.3f\n", d.rel);
  EXPECT_TRUE(d.finite);
  EXPECT_GT(d.max_abs, 0.0f);
  EXPECT_LT(d.rel, 0.5);
  const double frac = counter_map(*fresh)["pages_selected_fraction"];
  EXPECT_GT(frac, 6.0 / 23 - 1e-9);  // 6 of 19..23 pages per step
  EXPECT_LT(frac, 6.0 / 19 + 1e-9);
}

// ---- decoded attention (shared by q8/q4 and kivi) ----

// Serves f32 rows, standing in for a policy's compact rows.
class PlainRows : public RowDecoder {
 public:
  PlainRows(const std::vector<float>& k, const std::vector<float>& v, int n_kv, int hd)
      : k_(k), v_(v), n_kv_(n_kv), hd_(hd) {}
  void decode(int h, int64_t begin, int64_t n, float* k, float* v) const override {
    for (int64_t t = begin; t < begin + n; ++t) {
      std::copy_n(&k_[(t * n_kv_ + h) * hd_], hd_, k + (t - begin) * hd_);
      std::copy_n(&v_[(t * n_kv_ + h) * hd_], hd_, v + (t - begin) * hd_);
    }
  }

 private:
  const std::vector<float>&k_, &v_;
  int n_kv_, hd_;
};

TEST(DecodedAttention, MatchesDenseStoreIncludingSplitLongRows) {
  LayerGeometry g = make_geometry().layers[0];
  g.n_kv_head = 1, g.n_head = 3;  // one KV head (as Gemma 3 270M): a long step is split over threads
  const int64_t n = 5000;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> k(n * kHd), v(n * kHd), q(n * 3 * kHd);
  for (std::vector<float>* x : {&k, &v, &q})
    for (float& e : *x) e = nd(rng);
  DenseLayerStore dense(g, false);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  const PlainRows rows(k, v, 1, kHd);
  std::vector<float> a(3 * kHd * 200), b(3 * kHd * 200);
  for (int64_t p = 0; p < n;) {
    const int m = p < n - 3 ? (int)std::min<int64_t>(200, n - 3 - p) : 1;  // chunks, then three single steps
    dense.append_and_attend(p, m, &q[p * 3 * kHd], &k[p * kHd], &v[p * kHd], a.data());
    attend_decoded(g, rows, p, m, &q[p * 3 * kHd], b.data());
    a.resize(m * 3 * kHd), b.resize(m * 3 * kHd);
    if (m > 1)
      ASSERT_EQ(max_abs_diff(a, b), 0.0f) << "chunk at " << p;
    else
      ASSERT_LT(max_abs_diff(a, b), 1e-5f) << "step at " << p;  // split parts merge in another order
    a.resize(3 * kHd * 200), b.resize(3 * kHd * 200);
    p += m;
  }
  omp_set_num_threads(threads);
}

// ---- all four ----

TEST(QuantPolicies, HoldFewerBytesThanFull) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300;
  Inputs in(g, prompt, 0, 1.0f, 61);
  FullKvCache full(g, KvOptions{});
  feed(full, in, 0, prompt, 128);
  const int64_t full_bytes = full.memory().total();
  EXPECT_EQ(full_bytes, full_kv_bytes(g, prompt, false));
  std::map<std::string, int64_t> bytes;
  for (const char* name : {"q8", "q4", "kivi", "quest"}) {
    std::unique_ptr<KvCache> c = make_kv_cache(g, opts(name));
    feed(*c, in, 0, prompt, 128);
    c->end_prefill();
    const KvMemory m = c->memory();
    int64_t sum = 0;
    for (const auto& p : m.parts) sum += p.second;
    EXPECT_EQ(sum, m.total()) << name;
    EXPECT_LT(m.total(), full_bytes) << name;
    bytes[name] = m.total();
  }
  const int64_t sliding = full_kv_bytes(g, prompt, false) - 2 * prompt * kW * 4 * 2;
  EXPECT_EQ(bytes["q8"] - sliding, 2 * prompt * kKv * 34 * 2);  // one 34-byte block per row of 32
  EXPECT_EQ(bytes["q4"] - sliding, 2 * prompt * kKv * 18 * 2);
  EXPECT_EQ(bytes["quest"] - sliding, 2 * (prompt * kW * 2 * 2 + 19 * kKv * kHd * 2 * 2));  // f16 + 19 pages min/max
  printf("KV bytes at %lld tokens: full %lld, q8 %lld, q4 %lld, kivi %lld, quest %lld\n", (long long)prompt,
         (long long)full_bytes, (long long)bytes["q8"], (long long)bytes["q4"], (long long)bytes["kivi"],
         (long long)bytes["quest"]);
}

TEST(QuantPolicies, BadSettingsAndGeometryThrow) {
  const KvGeometry g = make_geometry();
  EXPECT_THROW(make_kv_cache(g, opts("kivi", {{"bits", "3"}})), Error);
  EXPECT_THROW(make_kv_cache(g, opts("kivi", {{"bits", "8"}})), Error);
  EXPECT_THROW(make_kv_cache(g, opts("kivi", {{"group", "0"}})), Error);
  EXPECT_THROW(make_kv_cache(g, opts("kivi", {{"residual", "-1"}})), Error);
  EXPECT_THROW(make_kv_cache(g, opts("quest", {{"page", "0"}})), Error);
  EXPECT_THROW(make_kv_cache(g, opts("quest", {{"budget", "-16"}})), Error);
  EXPECT_THROW(make_kv_cache(g, opts("q8", {{"budget", "16"}})), Error);  // q8 has no settings
  EXPECT_NO_THROW(make_kv_cache(g, opts("quest", {{"budget", "0"}})));
  KvGeometry odd = g;
  for (LayerGeometry& l : odd.layers) l.head_dim = 48, l.rope = RopeSpec::make(RopeSpec::Style::Neox, 48, 10000.0f);
  for (const char* name : {"q8", "q4"}) {
    try {
      make_kv_cache(odd, opts(name));
      ADD_FAILURE() << name << " accepted head_dim 48";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("multiple of 32"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(make_kv_cache(odd, opts("kivi")));
  EXPECT_NO_THROW(make_kv_cache(odd, opts("quest")));
}

}  // namespace
}  // namespace shadowkv
