// vec.h kernels on every supported backend against double-precision references; f16 conversions bit-exact.
#include "ops/vec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ops/f16.h"
#include "ops/gemm_i8.h"
#include "ops/quant_dispatch.h"

namespace shadowkv {
namespace {

struct BackendGuard {
  explicit BackendGuard(simd::Backend b) { simd::set_backend(b); }
  ~BackendGuard() { simd::reset_backend(); }
};

std::vector<simd::Backend> backends() {
  std::vector<simd::Backend> v;
  for (simd::Backend b : {simd::Backend::kScalar, simd::Backend::kAvx2, simd::Backend::kAvx512})
    if (simd::supported(b)) v.push_back(b);
  return v;
}

const int64_t kSizes[] = {0, 1, 7, 8, 9, 31, 33, 256, 1000};

std::vector<float> randv(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}
std::vector<uint16_t> to_half(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  return h;
}

TEST(Vec, DotsMatchDoubleReference) {
  std::mt19937 rng(3);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int64_t n : kSizes) {
      const auto a = randv(n, rng), c = randv(n, rng);
      const auto h = to_half(c);
      double r32 = 0, r16 = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        r32 += (double)a[i] * c[i];
        r16 += (double)a[i] * f16_to_f32(h[i]);
        mag += std::fabs((double)a[i] * c[i]);
      }
      const double tol = 1e-6 * n * mag / std::max<int64_t>(n, 1) * 10 + 1e-6 * mag + 1e-12;
      EXPECT_NEAR(dot_f32(a.data(), c.data(), n), r32, tol) << "n=" << n << " " << simd::backend_name(b);
      EXPECT_NEAR(dot_f16(a.data(), h.data(), n), r16, tol) << "n=" << n << " " << simd::backend_name(b);
    }
  }
}

TEST(Vec, AxpyAndScale) {
  std::mt19937 rng(4);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int64_t n : kSizes) {
      const auto x = randv(n, rng), y0 = randv(n, rng);
      const auto h = to_half(x);
      std::vector<float> y1 = y0, y2 = y0, y3 = y0;
      axpy_f32(0.37f, x.data(), y1.data(), n);
      axpy_f16(-1.5f, h.data(), y2.data(), n);
      scale_f32(2.5f, y3.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        // One rounding (FMA) or two (mul + add): within 2 ulp of the exact value.
        EXPECT_NEAR(y1[i], y0[i] + 0.37 * x[i], 2.5e-7 * (std::fabs(y0[i]) + std::fabs(0.37 * x[i])) + 1e-30);
        EXPECT_NEAR(y2[i], y0[i] - 1.5 * f16_to_f32(h[i]),
                    2.5e-7 * (std::fabs(y0[i]) + std::fabs(1.5 * f16_to_f32(h[i]))) + 1e-30);
        EXPECT_EQ(y3[i], y0[i] * 2.5f);  // a single product: exact rounding on every backend
      }
    }
  }
}

TEST(Vec, HalfConversionsBitExact) {
  // Specials, subnormals, rounding ties, overflow to inf, plus random values over the whole half range.
  std::vector<float> v = {0.0f,  -0.0f,          1.0f,           -2.0f,          65504.0f,       65520.0f,
                          1e6f,  -1e6f,          6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.98023259e-08f,
                          1e-9f, 1.00048828125f, 1.00146484375f, 3.14159f,       INFINITY,       -INFINITY};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> e(-26.0f, 17.0f);
  for (int i = 0; i < 2000; ++i) v.push_back((i & 1 ? -1.0f : 1.0f) * std::exp2(e(rng)));
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = (uint16_t)i;
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    std::vector<uint16_t> h(v.size());
    f32_to_f16_row(v.data(), h.data(), (int64_t)v.size());
    for (size_t i = 0; i < v.size(); ++i)
      ASSERT_EQ(h[i], f32_to_f16(v[i])) << "value " << v[i] << " on " << simd::backend_name(b);
    std::vector<float> f(all.size());
    f16_to_f32_row(all.data(), f.data(), (int64_t)all.size());
    for (int i = 0; i < 65536; ++i) {
      const float want = f16_to_f32((uint16_t)i);
      if (std::isnan(want)) {
        ASSERT_TRUE(std::isnan(f[i])) << i;
      } else {
        ASSERT_EQ(0, std::memcmp(&f[i], &want, 4)) << "half 0x" << std::hex << i << " on " << simd::backend_name(b);
      }
    }
  }
}

TEST(Vec, Int8RowsScaleExactly) {
  // y = scale * x is one rounding per element, so every backend gives the scalar bits; all 256 values, and lengths
  // with and without a vector tail.
  std::vector<int8_t> x(256 + 13);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (int8_t)(i * 37 + 11);
  for (float scale : {0.0123456f, -3.75e-3f, 1.0f}) {
    std::vector<float> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = scale * (float)x[i];
    for (simd::Backend b : backends()) {
      BackendGuard g(b);
      for (int64_t n : {(int64_t)0, (int64_t)5, (int64_t)8, (int64_t)x.size()}) {
        std::vector<float> y(x.size() + 1, 7.0f);
        i8_to_f32_row(x.data(), scale, y.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], want[i]) << i << " of " << n << " on " << simd::backend_name(b);
        EXPECT_EQ(y[n], 7.0f) << "wrote past n = " << n << " on " << simd::backend_name(b);
      }
    }
  }
}

TEST(Vec, RmsNorm) {
  std::mt19937 rng(6);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int64_t n : {1, 7, 64, 640, 1001}) {
      const auto x = randv(n, rng), w = randv(n, rng);
      double ss = 0;
      for (float v : x) ss += (double)v * v;
      const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
      std::vector<float> y(n), yi = x, yn(n);
      rmsnorm(x.data(), w.data(), y.data(), n, 1e-6f);
      rmsnorm(yi.data(), w.data(), yi.data(), n, 1e-6f);  // in place
      rmsnorm(x.data(), nullptr, yn.data(), n, 1e-6f);
      for (int64_t i = 0; i < n; ++i) {
        const double want = x[i] * inv * w[i], want_n = x[i] * inv;
        EXPECT_NEAR(y[i], want, 1e-5 * std::fabs(want) + 1e-7) << n << " " << simd::backend_name(b);
        EXPECT_EQ(yi[i], y[i]);
        EXPECT_NEAR(yn[i], want_n, 1e-5 * std::fabs(want_n) + 1e-7);
      }
    }
  }
}

TEST(Vec, GatedActivationsMatchDoubleReference) {
  // GELU (tanh form, as Gemma's GeGLU) and SiLU against double-precision formulas, over ordinary values and the
  // tails where a vector exp must clamp (|u| up to 100 and infinities would give NaN if it overflowed).
  std::mt19937 rng(8);
  std::vector<float> u = randv(1003, rng);
  for (float& v : u) v *= 4.0f;
  for (float v : {-100.0f, -30.0f, -9.0f, 0.0f, 9.0f, 30.0f, 100.0f, 1e-30f, -1e-30f}) u.push_back(v);
  const std::vector<float> up = randv((int64_t)u.size(), rng);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (bool gelu : {true, false}) {
      std::vector<float> g_out = u;
      glu_f32(gelu, g_out.data(), up.data(), (int64_t)u.size());
      for (size_t i = 0; i < u.size(); ++i) {
        const double x = u[i];
        const double act = gelu ? 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
                                : x / (1.0 + std::exp(-x));
        const double want = act * up[i];
        ASSERT_TRUE(std::isfinite(g_out[i])) << u[i] << " " << simd::backend_name(b);
        EXPECT_NEAR(g_out[i], want, 2e-6 * std::fabs(want) + 1e-7 * std::fabs(x * up[i]) + 1e-30)
            << (gelu ? "gelu(" : "silu(") << u[i] << ") on " << simd::backend_name(b);
      }
    }
  }
}

TEST(Vec, EveryBackendTableIsComplete) {
  // The kernel tables are aggregates of function pointers: a kernel left out of one backend's initialiser would be
  // a null pointer that only crashes when that backend runs that kernel.
  auto all_set = [](const auto& table) {
    constexpr size_t n = sizeof(table) / sizeof(void*);
    static_assert(sizeof(table) == n * sizeof(void*));
    void* p[n];
    std::memcpy(p, &table, sizeof(table));
    for (size_t i = 0; i < n; ++i)
      if (!p[i]) return false;
    return true;
  };
  EXPECT_TRUE(all_set(simd::kScalarVecOps));
  EXPECT_TRUE(all_set(simd::kAvx2VecOps));
  EXPECT_TRUE(all_set(simd::avx512_vec_ops()));
  EXPECT_TRUE(all_set(simd::kAvx512VecKernels));
  EXPECT_TRUE(all_set(simd::kScalarQuantOps));
  EXPECT_TRUE(all_set(simd::kAvx2QuantOps));
  EXPECT_TRUE(all_set(simd::kAvx512QuantOps));
  EXPECT_TRUE(all_set(simd::kAvx2GemmI8Ops));
  EXPECT_TRUE(all_set(simd::kAvx512GemmI8Ops));
}

TEST(Vec, ExpShiftSumMatchesDoubleReference) {
  // Softmax numerators of attention's tiled prefill: e^(x - m) to float precision, masked (-inf) scores exactly 0,
  // and the returned sum their total, on every backend and for lengths with and without a vector tail.
  std::mt19937 rng(29);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int64_t n : kSizes) {
      std::vector<float> x = randv(n, rng);
      for (int64_t i = 0; i < n; ++i) x[i] *= 8.0f;
      for (int64_t i = 2; i < n; i += 5) x[i] = -std::numeric_limits<float>::infinity();
      const float m = n ? *std::max_element(x.begin(), x.end()) : 0.0f;
      std::vector<float> y = x;
      const float sum = exp_shift_sum(y.data(), n, m);
      double ref_sum = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const double ref = std::exp((double)(x[i] - m));  // of the float difference, as attention forms it
        ref_sum += ref;
        if (std::isinf(x[i]))
          EXPECT_EQ(y[i], 0.0f) << "n=" << n << " i=" << i << " " << simd::backend_name(b);
        else
          EXPECT_NEAR(y[i], ref, 1e-6 * ref + 1e-37) << "n=" << n << " i=" << i << " " << simd::backend_name(b);
      }
      EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum + 1e-30) << "n=" << n << " " << simd::backend_name(b);
    }
  }
}

TEST(Vec, GroupScoresAndAccumulateMatchDoubleReference) {
  // Decode attention's two kernels on every backend: scores of n_q query heads against selected key rows, and the
  // weighted sum of selected value rows into n_q accumulators, f32, f16 and int8 value rows (keys f32 but with f16
  // values), every head-count remainder.
  std::mt19937 rng(11);
  constexpr int kLd = 64;
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    const simd::VecOps& ops = simd::vec_ops();
    for (int hd : {8, 12, 16, 32, 48, 64, 128, 256})
      for (int n_q : {1, 2, 3, 4, 5, 6, 7, 8, 9, 14})
        for (int nv : {1, 2, 3, 5, 13, 16, 17, 64})
          for (simd::RowType vt : {simd::RowType::kF32, simd::RowType::kF16, simd::RowType::kI8}) {
            const bool f16 = vt == simd::RowType::kF16;
            const int64_t rows = 80;
            const auto q = randv((int64_t)n_q * hd, rng), kf = randv(rows * hd, rng), vf = randv(rows * hd, rng);
            const auto kh = to_half(kf), vh = to_half(vf);
            std::vector<int8_t> vi(vf.size());
            for (size_t i = 0; i < vi.size(); ++i) vi[i] = (int8_t)std::clamp(std::lrint(vf[i] * 40.0f), -127L, 127L);
            std::vector<int64_t> idx(nv);
            for (int j = 0; j < nv; ++j) idx[j] = (j * 7 + 3) % rows;  // scattered rows
            auto key = [&](int64_t r, int c) { return f16 ? (double)f16_to_f32(kh[r * hd + c]) : kf[r * hd + c]; };
            auto val = [&](int64_t r, int c) {
              return f16                        ? (double)f16_to_f32(vh[r * hd + c])
                     : vt == simd::RowType::kI8 ? vi[r * hd + c]
                                                : vf[r * hd + c];
            };
            const void* vals = f16                        ? (const void*)vh.data()
                               : vt == simd::RowType::kI8 ? (const void*)vi.data()
                                                          : vf.data();
            std::vector<float> s((size_t)n_q * kLd, 0.0f), p = randv((int64_t)n_q * kLd, rng);
            std::vector<float> acc = randv((int64_t)n_q * hd, rng), acc0 = acc;
            ops.group_scores(q.data(), n_q, hd, 0.5f, f16 ? (const void*)kh.data() : kf.data(), f16, idx.data(), nv,
                             s.data(), kLd);
            ops.group_accumulate(p.data(), kLd, n_q, hd, vals, vt, idx.data(), nv, acc.data());
            for (int h = 0; h < n_q; ++h) {
              for (int j = nv; j < kLd; ++j)
                ASSERT_EQ(s[h * kLd + j], 0.0f) << "score written past nv: hd " << hd << " n_q " << n_q << " nv " << nv;
              for (int j = 0; j < nv; ++j) {
                double want = 0, mag = 0;
                for (int c = 0; c < hd; ++c)
                  want += q[h * hd + c] * key(idx[j], c), mag += std::fabs(q[h * hd + c] * key(idx[j], c));
                ASSERT_NEAR(s[h * kLd + j], 0.5 * want, 1e-6 * mag + 1e-7)
                    << "scores hd " << hd << " n_q " << n_q << " nv " << nv << " f16 " << f16 << " "
                    << simd::backend_name(b);
              }
              for (int c = 0; c < hd; ++c) {
                double want = acc0[h * hd + c], mag = std::fabs(want);
                for (int j = 0; j < nv; ++j)
                  want += p[h * kLd + j] * val(idx[j], c), mag += std::fabs(p[h * kLd + j] * val(idx[j], c));
                ASSERT_NEAR(acc[h * hd + c], want, 1e-6 * mag + 1e-7)
                    << "accumulate hd " << hd << " n_q " << n_q << " nv " << nv << " type " << (int)vt << " "
                    << simd::backend_name(b);
              }
            }
          }
  }
}

TEST(Vec, GroupScoresGiveTheSameBitsForAnyHeadCount) {
  // A head's scores must not depend on how many heads share its call: with 6 or more heads the AVX-512 backend
  // takes its column kernel, with one its row kernel, and the two must add in the same order (a different order
  // moves near-tied argmaxes in the model tests). Every backend, the 16-row block's edges, head widths the column
  // kernel takes and does not (8 mod 16, over 128), f32 and f16 keys.
  std::mt19937 rng(12);
  constexpr int kLd = 80;
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    const simd::VecOps& ops = simd::vec_ops();
    for (int hd : {8, 16, 24, 40, 48, 64, 128, 136, 144})
      for (int n_q : {6, 7, 8, 11, 14})
        for (int nv : {1, 15, 16, 17, 33, 70})
          for (bool f16 : {false, true}) {
            const int64_t rows = 90;
            const auto q = randv((int64_t)n_q * hd, rng), kf = randv(rows * hd, rng);
            const auto kh = to_half(kf);
            const void* keys = f16 ? (const void*)kh.data() : kf.data();
            std::vector<int64_t> idx(nv);
            for (int j = 0; j < nv; ++j) idx[j] = (j * 11 + 5) % rows;
            std::vector<float> all((size_t)n_q * kLd, 0.0f), one(kLd, 0.0f);
            ops.group_scores(q.data(), n_q, hd, 0.125f, keys, f16, idx.data(), nv, all.data(), kLd);
            for (int h = 0; h < n_q; ++h) {
              ops.group_scores(q.data() + (int64_t)h * hd, 1, hd, 0.125f, keys, f16, idx.data(), nv, one.data(), kLd);
              for (int j = 0; j < nv; ++j)
                ASSERT_EQ(std::memcmp(&all[h * kLd + j], &one[j], sizeof(float)), 0)
                    << all[h * kLd + j] << " vs " << one[j] << ": hd " << hd << " n_q " << n_q << " head " << h
                    << " row " << j << " f16 " << f16 << " " << simd::backend_name(b);
              for (int j = nv; j < kLd; ++j) ASSERT_EQ(all[h * kLd + j], 0.0f) << "score written past nv";
            }
          }
  }
}

TEST(Vec, NextAtLeastFindsTheFirstQualifyingIndex) {
  std::mt19937 rng(10);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int64_t n : kSizes) {
      auto x = randv(n, rng);
      if (n > 3) x[n / 2] = NAN;
      for (float t : {-10.0f, 0.0f, 1.5f, 2.5f, 10.0f})
        for (int64_t from : {(int64_t)0, n / 3, n}) {
          int64_t want = from;
          while (want < n && !(x[want] >= t)) ++want;
          EXPECT_EQ(next_at_least(x.data(), from, n, t), want)
              << n << " " << t << " " << from << " " << simd::backend_name(b);
        }
    }
  }
}

TEST(Vec, MaxF32IsTheLargestElement) {
  // Attention's block maximum and the chunk selector's softmax shift: every length (vector tail or not), the
  // maximum at the first, last or a middle position, -inf entries, on every backend.
  std::mt19937 rng(31);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int64_t n : kSizes) {
      if (n == 0) continue;
      for (int64_t at : {(int64_t)0, n / 2, n - 1}) {
        std::vector<float> x = randv(n, rng);
        for (int64_t i = 1; i < n; i += 3) x[i] = -std::numeric_limits<float>::infinity();
        x[at] = 100.0f + (float)at;
        EXPECT_EQ(max_f32(x.data(), n), x[at]) << n << " " << at << " " << simd::backend_name(b);
      }
      const std::vector<float> ninf(n, -std::numeric_limits<float>::infinity());
      EXPECT_EQ(max_f32(ninf.data(), n), -std::numeric_limits<float>::infinity()) << n;
    }
  }
}

TEST(Vec, PanelScoresMatchDoubleReference) {
  // Landmark scoring: query heads against key rows stored as transposed panels, f32 and f16, head counts that fill
  // and overflow each backend's head groups, odd panel counts (the AVX-512 kernel takes panels in pairs), on every
  // backend; entries past the panels' columns in each head's row are untouched.
  std::mt19937 rng(41);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int hd : {8, 12, 64, 256})
      for (int n_q : {1, 3, 4, 7, 8, 9})
        for (int64_t n_panels : {1, 2, 3, 5})
          for (bool f16 : {false, true}) {
            const int64_t elems = n_panels * hd * kPanelRows, ld = n_panels * kPanelRows + 3;
            const auto q = randv((int64_t)n_q * hd, rng), pf = randv(elems, rng);
            const auto ph = to_half(pf);
            std::vector<float> s((size_t)n_q * ld, 7.0f);
            panel_scores(q.data(), n_q, hd, 0.25f, f16 ? (const void*)ph.data() : pf.data(), f16, n_panels, s.data(),
                         ld);
            for (int h = 0; h < n_q; ++h)
              for (int64_t j = 0; j < ld; ++j) {
                if (j >= n_panels * kPanelRows) {
                  EXPECT_EQ(s[h * ld + j], 7.0f);
                  continue;
                }
                const int64_t p = j / kPanelRows, c = j % kPanelRows;
                double want = 0, mag = 0;
                for (int d = 0; d < hd; ++d) {
                  const int64_t at = (p * hd + d) * kPanelRows + c;
                  const double k = f16 ? (double)f16_to_f32(ph[at]) : pf[at];
                  want += q[h * hd + d] * k, mag += std::fabs(q[h * hd + d] * k);
                }
                EXPECT_NEAR(s[h * ld + j], 0.25 * want, 1e-6 * hd * mag)
                    << simd::backend_name(b) << " hd " << hd << " n_q " << n_q << " h " << h << " j " << j;
              }
          }
  }
}

TEST(Vec, RopeRowsMatchDoubleReference) {
  // Key rebuild's RoPE of a run of rows: row r rotated by theta0 + r * f per pair, from the first row's cos/sin and
  // r steps' cos/sin, both pair layouts, pair counts with and without a vector tail, dims past the pairs untouched.
  std::mt19937 rng(37);
  std::uniform_real_distribution<double> ang(-3.1, 3.1);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (bool neox : {true, false})
      for (int half : {1, 3, 8, 9, 16, 32, 128})
        for (int n_rows : {1, 3, 8}) {
          const int64_t stride = 2 * half + 5;
          std::vector<double> theta(half), f(half);
          std::vector<float> c0(half), s0(half), sc((size_t)n_rows * half), ss((size_t)n_rows * half);
          for (int i = 0; i < half; ++i) {
            theta[i] = ang(rng), f[i] = ang(rng) / 3.0;
            c0[i] = (float)std::cos(theta[i]), s0[i] = (float)std::sin(theta[i]);
            for (int r = 0; r < n_rows; ++r) {
              sc[(size_t)r * half + i] = (float)std::cos(r * f[i]);
              ss[(size_t)r * half + i] = (float)std::sin(r * f[i]);
            }
          }
          const std::vector<float> x0 = randv(n_rows * stride, rng);
          std::vector<float> x = x0;
          rope_rows(x.data(), n_rows, stride, half, neox, c0.data(), s0.data(), sc.data(), ss.data());
          for (int r = 0; r < n_rows; ++r) {
            const float* v0 = &x0[(size_t)r * stride];
            const float* v = &x[(size_t)r * stride];
            for (int i = 0; i < half; ++i) {
              const int ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
              const double t = theta[i] + r * f[i], a = v0[ia], bb = v0[ib];
              const double tol = 1e-6 * (std::fabs(a) + std::fabs(bb)) + 1e-7;
              EXPECT_NEAR(v[ia], a * std::cos(t) - bb * std::sin(t), tol) << simd::backend_name(b) << " " << i;
              EXPECT_NEAR(v[ib], a * std::sin(t) + bb * std::cos(t), tol) << simd::backend_name(b) << " " << i;
            }
            for (int64_t d = 2 * half; d < stride; ++d) EXPECT_EQ(v[d], v0[d]) << "pass-through dim " << d;
          }
        }
  }
}

TEST(Vec, GroupScoresOfContiguousRowsMatchDoubleReference) {
  // ShadowKV's landmark scoring: n key rows back to back (f32 and f16), every head count 1-5, row counts around the
  // 64-row blocks the wrapper hands the backend, results written with a row stride ld > n.
  std::mt19937 rng(31);
  const int hd = 64;
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    for (int n_q = 1; n_q <= 5; ++n_q)
      for (int64_t n : {1, 63, 64, 65, 200}) {
        const std::vector<float> q = randv((int64_t)n_q * hd, rng), k = randv(n * hd, rng);
        const std::vector<uint16_t> k16 = to_half(k);
        const int64_t ld = n + 3;
        std::vector<float> s(n_q * ld, NAN), s16(n_q * ld, NAN);
        group_scores(q.data(), n_q, hd, 0.125f, k.data(), n, s.data(), ld);
        group_scores(q.data(), n_q, hd, 0.125f, k16.data(), n, s16.data(), ld);
        for (int h = 0; h < n_q; ++h)
          for (int64_t j = 0; j < n; ++j) {
            double r = 0.0, r16 = 0.0, mag = 0.0;
            for (int i = 0; i < hd; ++i) {
              r += (double)q[h * hd + i] * k[j * hd + i];
              r16 += (double)q[h * hd + i] * f16_to_f32(k16[j * hd + i]);
              mag += std::fabs((double)q[h * hd + i] * k[j * hd + i]);
            }
            EXPECT_NEAR(s[h * ld + j], 0.125 * r, 1e-6 * mag) << n_q << " " << n << " " << simd::backend_name(b);
            EXPECT_NEAR(s16[h * ld + j], 0.125 * r16, 1e-6 * mag) << n_q << " " << n << " " << simd::backend_name(b);
          }
      }
  }
}

}  // namespace
}  // namespace shadowkv
