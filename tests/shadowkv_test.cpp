// ShadowKV components, each against a plain reference, plus end-to-end agreement with the `full` policy.
#include <gtest/gtest.h>
#include <lapacke.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kv/full_kv_cache.h"
#include "kv/shadowkv/chunk_rope.h"
#include "kv/shadowkv/chunk_selector.h"
#include "kv/shadowkv/factor_rows.h"
#include "kv/shadowkv/hot_value_buffer.h"
#include "kv/shadowkv/landmark_panels.h"
#include "kv/shadowkv/landmarks.h"
#include "kv/shadowkv/low_rank_keys.h"
#include "kv/shadowkv/outliers.h"
#include "kv/shadowkv/shadowkv_cache.h"
#include "kv/shadowkv/shadowkv_options.h"
#include "kv/shadowkv/unselected_estimate.h"
#include "kv/shadowkv/value_store.h"
#include "ops/f16.h"
#include "ops/rope.h"
#include "util/error.h"

namespace shadowkv {
namespace {

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

// Plain triple-loop C[m][n] = A[m][k] . B[k][n].
std::vector<float> matmul_ref(const std::vector<float>& a, const std::vector<float>& b, int m, int k, int n) {
  std::vector<float> c((size_t)m * n, 0.0f);
  for (int i = 0; i < m; ++i)
    for (int p = 0; p < k; ++p) {
      const double aip = a[(size_t)i * k + p];
      for (int j = 0; j < n; ++j) c[(size_t)i * n + j] += (float)(aip * b[(size_t)p * n + j]);
    }
  return c;
}

std::vector<float> reconstruct(const KeyBasis& b, const std::vector<float>& k, int64_t rows) {
  std::vector<float> coef((size_t)rows * b.rank);
  project_keys(b, k.data(), rows, coef.data());
  return matmul_ref(coef, b.vt, (int)rows, b.rank, b.width);
}

// Singular values in double precision (independent of the f32 code under test).
std::vector<double> singular_values(const std::vector<float>& k, int m, int n) {
  std::vector<double> a(k.begin(), k.end()), s(std::min(m, n));
  std::vector<double> superb(std::min(m, n));
  EXPECT_EQ(
      LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', m, n, a.data(), n, s.data(), nullptr, 1, nullptr, 1, superb.data()),
      0);
  return s;
}

// Keys with singular values 1, 0.8, 0.8^2, ... (orthonormal factors from QR of random matrices).
std::vector<float> decaying_matrix(int m, int n, std::mt19937& rng) {
  auto orth = [&](int rows, int cols) {
    std::vector<double> a(rows * (size_t)cols), tau(cols);
    for (double& x : a) x = std::normal_distribution<double>()(rng);
    LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, rows, cols, a.data(), cols, tau.data());
    LAPACKE_dorgqr(LAPACK_ROW_MAJOR, rows, cols, cols, a.data(), cols, tau.data());
    return a;
  };
  const int r = std::min(m, n);
  std::vector<double> u = orth(m, r), v = orth(n, r);
  std::vector<float> k((size_t)m * n, 0.0f);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < r; ++p) s += u[(size_t)i * r + p] * std::pow(0.8, p) * v[(size_t)j * r + p];
      k[(size_t)i * n + j] = (float)(10.0 * s);
    }
  return k;
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(ShadowKvLowRank, ReconstructsExactRankMatrix) {
  std::mt19937 rng(1);
  const int t = 200, w = 48, r = 6;
  std::vector<float> a = randn((size_t)t * r, rng), b = randn((size_t)r * w, rng);
  std::vector<float> k = matmul_ref(a, b, t, r, w);
  float kmax = 0;
  for (float x : k) kmax = std::max(kmax, std::fabs(x));
  for (KeyFactorMethod m : {KeyFactorMethod::kGramEig, KeyFactorMethod::kSvd}) {
    KeyBasis basis = fit_key_basis(k.data(), t, w, r, m);
    std::vector<float> rec = reconstruct(basis, k, t);
    EXPECT_LT(max_abs_diff(rec.data(), k.data(), k.size()) / kmax, 2e-5) << "method " << (int)m;
    // Rank r-1 cannot reconstruct it: the test would notice a wrong basis.
    KeyBasis small = fit_key_basis(k.data(), t, w, r - 1, m);
    std::vector<float> rec2 = reconstruct(small, k, t);
    EXPECT_GT(max_abs_diff(rec2.data(), k.data(), k.size()) / kmax, 1e-2);
  }
}

TEST(ShadowKvLowRank, TruncationErrorEqualsDiscardedSpectrum) {
  std::mt19937 rng(2);
  const int t = 300, w = 64;
  std::vector<float> k = decaying_matrix(t, w, rng);
  const std::vector<double> s = singular_values(k, t, w);
  for (int r : {4, 16, 40}) {
    double discarded = 0;
    for (int j = r; j < w; ++j) discarded += s[j] * s[j];
    for (KeyFactorMethod m : {KeyFactorMethod::kGramEig, KeyFactorMethod::kSvd}) {
      KeyBasis basis = fit_key_basis(k.data(), t, w, r, m);
      for (int j = 0; j < r; ++j) EXPECT_NEAR(basis.sigma[j], s[j], 1e-4 * s[0]);
      std::vector<float> rec = reconstruct(basis, k, t);
      double err = 0;
      for (size_t i = 0; i < k.size(); ++i) err += (double)(rec[i] - k[i]) * (rec[i] - k[i]);
      EXPECT_NEAR(err, discarded, 2e-3 * discarded + 1e-6) << "rank " << r << " method " << (int)m;
    }
  }
}

TEST(ShadowKvLowRank, GramEigSubspaceMatchesSvd) {
  std::mt19937 rng(3);
  const int t = 400, w = 64, r = 20;
  std::vector<float> k = decaying_matrix(t, w, rng);
  KeyBasis g = fit_key_basis(k.data(), t, w, r, KeyFactorMethod::kGramEig);
  KeyBasis s = fit_key_basis(k.data(), t, w, r, KeyFactorMethod::kSvd);
  // Compare projectors V V^T (sign- and rotation-invariant).
  auto projector = [&](const KeyBasis& b) {
    std::vector<double> p((size_t)w * w, 0.0);
    for (int j = 0; j < r; ++j)
      for (int a = 0; a < w; ++a)
        for (int c = 0; c < w; ++c) p[(size_t)a * w + c] += (double)b.vt[(size_t)j * w + a] * b.vt[(size_t)j * w + c];
    return p;
  };
  std::vector<double> pg = projector(g), ps = projector(s);
  double d = 0;
  for (size_t i = 0; i < pg.size(); ++i) d = std::max(d, std::fabs(pg[i] - ps[i]));
  EXPECT_LT(d, 1e-4);
  // Orthonormal rows.
  for (int a = 0; a < r; ++a)
    for (int c = 0; c < r; ++c) {
      double dot = 0;
      for (int i = 0; i < w; ++i) dot += (double)g.vt[(size_t)a * w + i] * g.vt[(size_t)c * w + i];
      EXPECT_NEAR(dot, a == c ? 1.0 : 0.0, 1e-5);
    }
}

// balance_columns keeps coef . vt (the rebuilt keys) while every coefficient column gets RMS 1, and it makes int8
// rows with one scale each rebuild keys closer than the unbalanced U.S rows on a steep spectrum.
TEST(ShadowKvLowRank, BalancedColumnsKeepTheKeysAndHelpInt8Rows) {
  std::mt19937 rng(13);
  const int t = 256, w = 64, r = 24;
  const std::vector<float> k = decaying_matrix(t, w, rng);
  KeyBasis basis = fit_key_basis(k.data(), t, w, r, KeyFactorMethod::kGramEig);
  std::vector<float> coef((size_t)t * r);
  project_keys(basis, k.data(), t, coef.data());
  auto rebuild = [&](const std::vector<float>& c, const KeyBasis& b) {
    std::vector<float> out((size_t)t * w);
    const std::vector<float> vt = split_basis_by_head(b, 1, w);
    rebuild_keys(c.data(), t, vt.data(), r, w, out.data());
    return out;
  };
  auto via_q8 = [&](const std::vector<float>& c) {
    FactorRows rows(r, FactorType::Q8);
    rows.append(c.data(), t);
    std::vector<float> out(c.size());
    rows.read(0, t, out.data());
    return out;
  };
  const std::vector<float> plain = rebuild(coef, basis), plain_q8 = rebuild(via_q8(coef), basis);
  KeyBasis bal = basis;
  std::vector<float> bcoef = coef;
  balance_columns(bcoef.data(), t, &bal);
  EXPECT_LT(max_abs_diff(rebuild(bcoef, bal).data(), plain.data(), plain.size()), 1e-4f);
  for (int j = 0; j < r; ++j) {
    double sq = 0;
    for (int i = 0; i < t; ++i) sq += (double)bcoef[(size_t)i * r + j] * bcoef[(size_t)i * r + j];
    EXPECT_NEAR(std::sqrt(sq / t), 1.0, 1e-4) << "column " << j;
  }
  const std::vector<float> bal_q8 = rebuild(via_q8(bcoef), bal);
  double e_plain = 0, e_bal = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    e_plain += (plain_q8[i] - plain[i]) * (plain_q8[i] - plain[i]);
    e_bal += (bal_q8[i] - plain[i]) * (bal_q8[i] - plain[i]);
  }
  EXPECT_LT(e_bal, 0.5 * e_plain) << "balanced " << e_bal << " vs plain " << e_plain;
}

TEST(ShadowKvLowRank, RejectsBadRank) {
  std::vector<float> k(32, 1.0f);
  EXPECT_THROW(fit_key_basis(k.data(), 4, 8, 0, KeyFactorMethod::kGramEig), Error);
  EXPECT_THROW(fit_key_basis(k.data(), 4, 8, 9, KeyFactorMethod::kGramEig), Error);
}

TEST(ShadowKvLowRank, RopeOfRebuiltKeysMatchesRopeOfOriginalAtFullRank) {
  std::mt19937 rng(4);
  const int t = 64, n_kv = 2, hd = 16, w = n_kv * hd;
  std::vector<float> k = randn((size_t)t * w, rng);
  KeyBasis b = fit_key_basis(k.data(), t, w, w, KeyFactorMethod::kGramEig);
  std::vector<float> svt = split_basis_by_head(b, n_kv, hd), coef((size_t)t * w);
  project_keys(b, k.data(), t, coef.data());
  const RopeSpec rope = RopeSpec::make(RopeSpec::Style::Neox, hd, 10000.0f);
  float worst = 0;
  for (int p = 0; p < t; ++p)
    for (int h = 0; h < n_kv; ++h) {
      std::vector<float> ref(&k[(size_t)p * w + h * hd], &k[(size_t)p * w + (h + 1) * hd]), got(hd);
      rebuild_keys(&coef[(size_t)p * w], 1, &svt[(size_t)h * w * hd], w, hd, got.data());
      const int64_t pos = 1000 + 37 * p;
      apply_rope(rope, ref.data(), 1, hd, pos);
      apply_rope(rope, got.data(), 1, hd, pos);
      worst = std::max(worst, max_abs_diff(ref.data(), got.data(), hd));
    }
  EXPECT_LT(worst, 1e-4);
}

TEST(ShadowKvLowRank, RebuildKeysMatchesDoubleReference) {
  // One SGEMM for any number of rows (a batch of missed chunks) and the shapes of both real models.
  std::mt19937 rng(9);
  struct Shape {
    int rows, hd, rank;
  };
  for (const Shape& sh : {Shape{256, 256, 96}, Shape{8, 64, 48}, Shape{1, 16, 1}, Shape{9, 128, 33}}) {
    const std::vector<float> coef = randn((size_t)sh.rows * sh.rank, rng), svt = randn((size_t)sh.rank * sh.hd, rng);
    std::vector<float> got((size_t)sh.rows * sh.hd, NAN);
    rebuild_keys(coef.data(), sh.rows, svt.data(), sh.rank, sh.hd, got.data());
    for (int i = 0; i < sh.rows; ++i)
      for (int d = 0; d < sh.hd; ++d) {
        double want = 0, mag = 0;
        for (int j = 0; j < sh.rank; ++j) {
          want += (double)coef[(size_t)i * sh.rank + j] * svt[(size_t)j * sh.hd + d];
          mag += std::fabs((double)coef[(size_t)i * sh.rank + j] * svt[(size_t)j * sh.hd + d]);
        }
        EXPECT_NEAR(got[(size_t)i * sh.hd + d], want, 1e-6 * sh.rank * mag + 1e-12)
            << sh.rows << "x" << sh.hd << "x" << sh.rank << " [" << i << "," << d << "]";
      }
  }
}

TEST(ShadowKvChunkRope, RunMatchesPerRowApplyRope) {
  std::mt19937 rng(8);
  for (auto style : {RopeSpec::Style::Neox, RopeSpec::Style::Norm}) {
    const int hd = 64;
    const RopeSpec rope = RopeSpec::make(style, 48, 1000000.0f);  // partial rotation: dims 48.. pass through
    for (int64_t pos0 : {0L, 7L, 123457L}) {
      std::vector<float> a = randn((size_t)16 * hd, rng), b = a;
      std::vector<float> c = a;
      apply_rope_run(rope, a.data(), 16, hd, hd, pos0);
      for (int r = 0; r < 16; ++r) apply_rope(rope, &b[(size_t)r * hd], 1, hd, pos0 + r);
      EXPECT_LT(max_abs_diff(a.data(), b.data(), a.size()), 2e-6) << pos0;
      // The table's angles at pos0 (a multiple of its stride, in either of its two rows' ranges).
      const RunAngles angles(rope, pos0 == 7 ? 7 : 1, pos0 + 1);
      ASSERT_TRUE(angles.covers(pos0));
      apply_rope_run(rope, c.data(), 16, hd, hd, pos0, &angles);
      EXPECT_LT(max_abs_diff(c.data(), b.data(), c.size()), 2e-6) << pos0;
    }
  }
}

TEST(ShadowKvLandmarks, MeanOfEachChunk) {
  const int chunk = 4, hd = 3, n_chunks = 3, stride = 5;  // rows padded to 5 floats (stride != head_dim)
  std::vector<float> keys((size_t)n_chunks * chunk * stride, 99.0f);
  for (int r = 0; r < n_chunks * chunk; ++r)
    for (int d = 0; d < hd; ++d) keys[(size_t)r * stride + d] = (float)(r * 10 + d);
  std::vector<float> lm((size_t)n_chunks * hd);
  chunk_landmarks(keys.data(), stride, n_chunks, chunk, hd, lm.data());
  for (int c = 0; c < n_chunks; ++c)
    for (int d = 0; d < hd; ++d) EXPECT_FLOAT_EQ(lm[(size_t)c * hd + d], (float)((c * chunk + 1.5) * 10 + d));
}

TEST(ShadowKvOutliers, LowestMinCosineChunksAreOutliers) {
  const int chunk = 4, hd = 4, n_chunks = 6;
  std::vector<float> keys((size_t)n_chunks * chunk * hd);
  std::mt19937 rng(5);
  for (int c = 0; c < n_chunks; ++c)
    for (int t = 0; t < chunk; ++t)
      for (int d = 0; d < hd; ++d)  // every chunk: keys near (1, 1, 1, 1) * (c+1)
        keys[((size_t)c * chunk + t) * hd + d] = (c + 1) * (1.0f + 0.01f * std::normal_distribution<float>()(rng));
  // Chunk 4: one key points the other way (cos ~ -1); chunk 1: one key orthogonal-ish (cos ~ 0).
  for (int d = 0; d < hd; ++d) keys[((size_t)4 * chunk + 2) * hd + d] = -5.0f;
  for (int d = 0; d < hd; ++d) keys[((size_t)1 * chunk + 0) * hd + d] = d < 2 ? 3.0f : -3.0f;
  std::vector<float> lm((size_t)n_chunks * hd), score(n_chunks);
  chunk_landmarks(keys.data(), hd, n_chunks, chunk, hd, lm.data());
  chunk_min_cosine(keys.data(), hd, lm.data(), n_chunks, chunk, hd, score.data());
  // Reference: direct cosine.
  for (int c = 0; c < n_chunks; ++c) {
    double worst = 1;
    for (int t = 0; t < chunk; ++t) {
      double dot = 0, nk = 0, nl = 0;
      for (int d = 0; d < hd; ++d) {
        const double kv = keys[((size_t)c * chunk + t) * hd + d], l = lm[(size_t)c * hd + d];
        dot += kv * l, nk += kv * kv, nl += l * l;
      }
      worst = std::min(worst, dot / std::sqrt(nk * nl));
    }
    EXPECT_NEAR(score[c], worst, 1e-5);
  }
  EXPECT_EQ(pick_outliers(score.data(), n_chunks, 1), (std::vector<int64_t>{4}));
  EXPECT_EQ(pick_outliers(score.data(), n_chunks, 2), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(pick_outliers(score.data(), n_chunks, 0).size(), 0u);
  EXPECT_EQ(pick_outliers(score.data(), n_chunks, 100).size(), (size_t)n_chunks);
}

// Plain reference: softmax per head, max over heads, stable sort by (score desc, index asc).
std::vector<int64_t> select_ref(const std::vector<float>& q, int n_q, int hd, float scale, const std::vector<float>& lm,
                                int n_cand, int k) {
  std::vector<double> score(n_cand, 0.0);
  for (int h = 0; h < n_q; ++h) {
    std::vector<double> l(n_cand);
    double m = -1e300, z = 0;
    for (int c = 0; c < n_cand; ++c) {
      double s = 0;
      for (int d = 0; d < hd; ++d) s += (double)q[(size_t)h * hd + d] * lm[(size_t)c * hd + d];
      l[c] = scale * s;
      m = std::max(m, l[c]);
    }
    for (int c = 0; c < n_cand; ++c) z += std::exp(l[c] - m);
    for (int c = 0; c < n_cand; ++c) score[c] = std::max(score[c], std::exp(l[c] - m) / z);
  }
  std::vector<int64_t> idx(n_cand);
  for (int c = 0; c < n_cand; ++c) idx[c] = c;
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  idx.resize(std::min(k, n_cand));
  std::sort(idx.begin(), idx.end());
  return idx;
}

TEST(ShadowKvLandmarks, PanelsHoldEveryRowTransposed) {
  // Rows appended in runs that start and end inside panels are stored transposed, as appended (f32 exactly, f16 as its
  // rounding); the last panel's unused columns are zero; memory is whole panels.
  std::mt19937 rng(12);
  const int hd = 5;
  for (bool f16 : {false, true}) {
    LandmarkPanels p(hd, f16);
    std::vector<float> all;
    for (int64_t n : {3, 20, 1, 13}) {
      const std::vector<float> rows = randn((size_t)n * hd, rng);
      p.append(rows.data(), n);
      all.insert(all.end(), rows.begin(), rows.end());
    }
    ASSERT_EQ(p.size(), 37);
    ASSERT_EQ(p.n_panels(), 3);
    EXPECT_EQ(p.bytes(), 3 * hd * kPanelRows * (f16 ? 2 : 4));
    for (int64_t i = 0; i < p.size(); ++i)
      for (int d = 0; d < hd; ++d) {
        const float want = all[(size_t)i * hd + d];
        // Transposed: element d of row i sits at [panel][d][column].
        const int64_t at = (i / kPanelRows * hd + d) * kPanelRows + i % kPanelRows;
        const float stored =
            f16 ? f16_to_f32(static_cast<const uint16_t*>(p.data())[at]) : static_cast<const float*>(p.data())[at];
        EXPECT_EQ(stored, f16 ? f16_to_f32(f32_to_f16(want)) : want) << i << " " << d;
      }
    for (int64_t c = 37 % kPanelRows; c < kPanelRows; ++c)
      for (int d = 0; d < hd; ++d) {
        const int64_t at = (2 * hd + d) * kPanelRows + c;
        EXPECT_EQ(f16 ? (float)static_cast<const uint16_t*>(p.data())[at] : static_cast<const float*>(p.data())[at],
                  0.0f);
      }
  }
}

TEST(ShadowKvChunkSelector, SoftmaxThenMaxOverGqaGroup) {
  // Head 0 splits its mass over chunks 0 and 1 (0.5 each); head 1 puts ~0.95 on chunk 2 with a smaller logit.
  // Softmax-then-max must pick chunk 2 first; max over raw logits would pick chunk 0.
  const int hd = 4, n_cand = 4;
  std::vector<float> lm = {10, 0, 0, 0,  //
                           10, 0, 0, 0,  //
                           0,  5, 0, 0,  //
                           0,  0, 0, 0};
  std::vector<float> q = {1, 0, 0, 0,   // head 0
                          0, 1, 0, 0};  // head 1
  ChunkSelector sel;
  std::vector<int64_t> out;
  LandmarkPanels panels(hd, /*f16=*/false);
  panels.append(lm.data(), n_cand);
  sel.select(q.data(), 2, hd, 1.0f, panels, 1, &out);
  EXPECT_EQ(out, (std::vector<int64_t>{2}));
  sel.select(q.data(), 2, hd, 1.0f, panels, 3, &out);
  std::sort(out.begin(), out.end());
  EXPECT_EQ(out, (std::vector<int64_t>{0, 1, 2}));
  // Head 0 alone picks chunk 0 (tie with 1 broken by index).
  sel.select(q.data(), 1, hd, 1.0f, panels, 1, &out);
  EXPECT_EQ(out, (std::vector<int64_t>{0}));
  // k larger than the candidates: all of them.
  sel.select(q.data(), 2, hd, 1.0f, panels, 10, &out);
  EXPECT_EQ(out.size(), (size_t)n_cand);
}

TEST(ShadowKvChunkSelector, MatchesReferenceOnRandomInputs) {
  std::mt19937 rng(6);
  const int hd = 32, n_q = 4;
  for (int n_cand : {7, 300, 5000}) {  // 5000 takes the OpenMP path
    std::vector<float> q = randn((size_t)n_q * hd, rng), lm = randn((size_t)n_cand * hd, rng);
    ChunkSelector sel;
    std::vector<int64_t> out;
    LandmarkPanels panels(hd, /*f16=*/false);
    panels.append(lm.data(), n_cand);
    sel.select(q.data(), n_q, hd, 0.3f, panels, 5, &out);
    std::sort(out.begin(), out.end());
    EXPECT_EQ(out, select_ref(q, n_q, hd, 0.3f, lm, n_cand, 5)) << n_cand;
  }
}

TEST(ShadowKvUnselectedEstimate, MatchesDoubleReference) {
  // Each unselected chunk counts as `chunk` rows with its landmark's logit and its mean value: the softmax state
  // (max, sum, weighted values) of every query head over those chunks, against a double computation that leaves
  // out the chunks whose probability is below kNegligibleShare / n in every head (none at scale 0.05, most at 0.5).
  std::mt19937 rng(8);
  const int hd = 80, n_q = 4, chunk = 8, k = 9;  // hd 80: a 64-column slice and a partial one
  for (float scale : {0.05f, 0.5f})
    for (int n_cand : {5, 300, 5000}) {  // 5: every chunk selected; 5000 takes the OpenMP path
      const std::vector<float> q = randn((size_t)n_q * hd, rng), lm = randn((size_t)n_cand * hd, rng),
                               vals = randn((size_t)n_cand * chunk * hd, rng);
      std::vector<int8_t> means;
      std::vector<float> mean_scales;
      chunk_value_means(vals.data(), hd, n_cand, chunk, hd, &means, &mean_scales);
      ASSERT_EQ(means.size(), (size_t)n_cand * hd);
      ASSERT_EQ(mean_scales.size(), (size_t)n_cand);
      ChunkSelector sel;
      std::vector<int64_t> picked;
      LandmarkPanels panels(hd, /*f16=*/false);
      panels.append(lm.data(), n_cand);
      sel.select(q.data(), n_q, hd, scale, panels, k, &picked);
      std::vector<float> acc((size_t)n_q * hd, 0.0f);
      std::vector<SoftmaxAcc> st(n_q);
      for (int h = 0; h < n_q; ++h) st[h] = {0.0f, 0.0f, &acc[(size_t)h * hd]};
      estimate_unselected(sel, n_q, hd, chunk, means.data(), mean_scales.data(), picked, st.data());
      std::vector<std::vector<double>> l(n_q, std::vector<double>(n_cand));
      std::vector<double> m(n_q, -1e300);
      for (int h = 0; h < n_q; ++h)
        for (int c = 0; c < n_cand; ++c) {
          double s = 0;
          for (int d = 0; d < hd; ++d) s += (double)q[(size_t)h * hd + d] * lm[(size_t)c * hd + d];
          l[h][c] = scale * s;
          m[h] = std::max(m[h], l[h][c]);
        }
      std::vector<double> z(n_q, 0.0);  // softmax denominators over every candidate
      for (int h = 0; h < n_q; ++h)
        for (int c = 0; c < n_cand; ++c) z[h] += std::exp(l[h][c] - m[h]);
      std::set<int64_t> rest;  // unselected and not negligible
      const std::set<int64_t> chosen(picked.begin(), picked.end());
      for (int c = 0; c < n_cand; ++c) {
        double most = 0;
        for (int h = 0; h < n_q; ++h) most = std::max(most, std::exp(l[h][c] - m[h]) / z[h]);
        if (!chosen.count(c) && most >= kNegligibleShare / n_cand) rest.insert(c);
      }
      if (scale > 0.1f && n_cand == 5000) {
        EXPECT_LT(rest.size(), (size_t)n_cand / 2);  // the skip is exercised
      }
      double half_step = 0;  // the int8 rounding of a mean: at most half its row's scale
      for (int64_t c : rest) half_step = std::max(half_step, 0.5 * mean_scales[c]);
      for (int h = 0; h < n_q; ++h) {
        std::vector<double> ref(hd, 0.0);
        double sum = 0;
        for (int64_t c : rest) {
          const double w = std::exp(l[h][c] - m[h]);
          sum += w;
          for (int d = 0; d < hd; ++d) {
            double mean = 0;
            for (int t = 0; t < chunk; ++t) mean += vals[((size_t)c * chunk + t) * hd + d] / chunk;
            ref[d] += w * mean;
          }
        }
        if (rest.empty()) {  // nothing unselected: an empty state that merge_acc skips
          EXPECT_EQ(st[h].l, 0.0f);
          continue;
        }
        EXPECT_NEAR(st[h].m, m[h] + std::log((double)chunk), 1e-4) << n_cand;
        EXPECT_NEAR(st[h].l / sum, 1.0, 1e-4) << n_cand;
        for (int d = 0; d < hd; ++d)  // means pass through int8: a weighted average of errors below half a step
          EXPECT_NEAR(acc[(size_t)h * hd + d] / sum, ref[d] / sum, half_step + 1e-5)
              << n_cand << " head " << h << " dim " << d;
      }
    }
}

// Runs one update of `buf` and fills each miss with its chunk id (keys -id, values id); then checks the hit and miss
// counts and that the rows attention reads (through the index) hold exactly the selection's chunks, in order.
void hot_step(HotValueBuffer& buf, int chunk, int hd, int head, std::vector<int64_t> sel, int64_t extra,
              int64_t want_misses) {
  const int64_t h0 = buf.hits(), m0 = buf.misses();
  const auto& misses = buf.update(head, sel.data(), (int64_t)sel.size(), extra);
  EXPECT_EQ((int64_t)misses.size(), want_misses);
  for (const auto& m : misses) {
    const std::vector<float> keys(chunk * hd, (float)-m.chunk), vals(chunk * hd, (float)m.chunk);
    buf.put_keys(head, m.slot, keys.data());
    std::memcpy(buf.value_slot(head, m.slot), vals.data(), sizeof(float) * vals.size());
  }
  EXPECT_EQ(buf.misses() - m0, want_misses);
  EXPECT_EQ(buf.hits() - h0, (int64_t)sel.size() - want_misses);
  ASSERT_EQ(buf.size(head), (int)sel.size());
  const KeyValueRows r = buf.rows(head);
  ASSERT_EQ(r.n, (int64_t)sel.size() * chunk);
  ASSERT_NE(r.index, nullptr);
  for (size_t c = 0; c < sel.size(); ++c) {
    EXPECT_EQ(buf.chunk_at(head, (int)c), sel[c]);
    for (int t = 0; t < chunk; ++t)
      for (int d = 0; d < hd; ++d) {
        const int64_t row = r.index[c * chunk + t];
        EXPECT_EQ(static_cast<const float*>(r.vals)[row * hd + d], (float)sel[c]) << "chunk " << sel[c];
        EXPECT_EQ(static_cast<const float*>(r.keys)[row * hd + d], (float)-sel[c]) << "chunk " << sel[c];
      }
  }
}

TEST(ShadowKvHotBuffer, ScriptedSelections) {
  // No extra room: the buffer holds exactly the selection.
  const int chunk = 2, hd = 3;
  HotValueBuffer buf(2, chunk, hd, /*f16=*/false);
  hot_step(buf, chunk, hd, 0, {1, 2, 3}, 0, 3);
  hot_step(buf, chunk, hd, 0, {3, 2, 4}, 0, 1);        // 4 takes 1's slot
  hot_step(buf, chunk, hd, 0, {4, 2, 3}, 0, 0);        // same set, different order: all hits
  hot_step(buf, chunk, hd, 1, {2, 3}, 0, 2);           // heads are independent
  hot_step(buf, chunk, hd, 0, {9, 8, 4, 2, 3}, 0, 2);  // grows
  hot_step(buf, chunk, hd, 0, {3, 10}, 0, 1);          // shrinks: 3 survives, 10 is new
  hot_step(buf, chunk, hd, 0, {}, 0, 0);
  hot_step(buf, chunk, hd, 0, {3}, 0, 1);  // emptied buffer forgets everything
  EXPECT_EQ(buf.hits(), 2 + 3 + 3 + 1);
}

TEST(ShadowKvHotBuffer, ExtraRoomKeepsTheMostRecentlySelected) {
  // With room for 2 chunks beyond a selection of 2, a chunk that left the selection one or two updates ago is still a
  // hit; the least recently selected one is dropped first; slots never exceed the selection + the extra room.
  const int chunk = 2, hd = 3;
  HotValueBuffer buf(1, chunk, hd, /*f16=*/false);
  hot_step(buf, chunk, hd, 0, {1, 2}, 2, 2);
  hot_step(buf, chunk, hd, 0, {3, 4}, 2, 2);  // holds 1 2 3 4
  hot_step(buf, chunk, hd, 0, {1, 5}, 2, 1);  // 1 is back (hit); 5 replaces 2, the least recently selected
  hot_step(buf, chunk, hd, 0, {2, 3}, 2, 1);  // 3 is a hit, 2 was dropped; 4 (selected before 1 and 5) goes
  hot_step(buf, chunk, hd, 0, {1, 5}, 2, 0);  // both still held
  EXPECT_EQ(buf.slots(0), 4);
  EXPECT_EQ(buf.hits(), 1 + 1 + 2);
  hot_step(buf, chunk, hd, 0, {7, 8, 9}, 0, 3);  // no extra room: only the selection stays
  hot_step(buf, chunk, hd, 0, {1, 5, 2}, 0, 3);
}

// U rows read back as stored: f32 exactly, f16 to half precision, q8 to within half a step of each row's scale
// (max |value| / 127), rows of very different size each with their own scale; bytes per row as documented.
TEST(ShadowKvFactorRows, RoundTripPerType) {
  std::mt19937 rng(5);
  const int width = 48;
  std::vector<float> rows = randn(6 * width, rng);
  for (int j = 0; j < width; ++j) rows[2 * width + j] *= 1e-3f, rows[4 * width + j] *= 50.0f;
  std::fill_n(&rows[5 * width], width, 0.0f);  // an all-zero row reads back as zeros
  for (FactorType type : {FactorType::F32, FactorType::F16, FactorType::Q8}) {
    FactorRows f(width, type);
    f.append(rows.data(), 2);
    f.append(rows.data() + 2 * width, 4);
    ASSERT_EQ(f.size(), 6);
    const int64_t per_row = type == FactorType::F32 ? width * 4 : type == FactorType::F16 ? width * 2 : width + 4;
    EXPECT_EQ(f.bytes(), 6 * per_row);
    std::vector<float> out(5 * width);
    f.read(1, 5, out.data());
    for (int r = 1; r < 6; ++r) {
      float amax = 0.0f;
      for (int j = 0; j < width; ++j) amax = std::max(amax, std::fabs(rows[r * width + j]));
      const float tol = type == FactorType::F32 ? 0.0f : type == FactorType::F16 ? amax / 1024 : amax / 254 * 1.0001f;
      for (int j = 0; j < width; ++j)
        ASSERT_LE(std::fabs(out[(r - 1) * width + j] - rows[r * width + j]), tol) << "row " << r << " col " << j;
    }
  }
  EXPECT_EQ(parse_factor_type("q8"), FactorType::Q8);
  EXPECT_THROW(parse_factor_type("q4"), Error);
}

TEST(ShadowKvValueStore, RoundTrip) {
  std::mt19937 rng(7);
  for (bool f16 : {false, true}) {
    RamValueStore store(3, 16, f16);
    std::vector<std::vector<float>> chunks;
    for (int i = 0; i < 10; ++i) {
      chunks.push_back(randn(16, rng));
      EXPECT_EQ(store.append(i % 3, chunks.back().data()), i / 3);
    }
    EXPECT_EQ(store.n_slots(0), 4);
    EXPECT_EQ(store.n_slots(2), 3);
    EXPECT_EQ(store.bytes(), 10 * 16 * (f16 ? 2 : 4));
    // Read as stored: the floats, or their halves.
    EXPECT_EQ(store.f16(), f16);
    std::vector<uint32_t> raw(16);
    for (int64_t slot : {3, 1}) {
      store.read(0, slot, raw.data());
      const std::vector<float>& want = chunks[3 * slot];
      for (int i = 0; i < 16; ++i)
        if (f16)
          EXPECT_EQ(reinterpret_cast<const uint16_t*>(raw.data())[i], f32_to_f16(want[i])) << i;
        else
          EXPECT_EQ(reinterpret_cast<const float*>(raw.data())[i], want[i]) << i;
    }
    auto copy = store.clone();
    EXPECT_EQ(copy->bytes(), store.bytes());
    EXPECT_THROW(store.read(0, 4, raw.data()), Error);
  }
}

// True if the process maps any value file (the file store must keep its values out of the resident set).
bool maps_a_value_file() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find("shadowkv-values") != std::string::npos) return true;
  return false;
}

TEST(ShadowKvValueStore, FileStoreMatchesRamStoreAcrossExtentsAndLeavesNoFile) {
  // Streams appended out of step, past several extents, read back exactly as the RAM store gives them; a clone
  // (of a file whose last extents are partly written) reads the same; nothing of the file is mapped into the
  // process; the file is unlinked from its directory from the start; bad specs and directories throw.
  const std::string dir = ::testing::TempDir() + "skv-file-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  std::mt19937 rng(8);
  for (bool f16 : {false, true}) {
    const int64_t elems = 8 * 64;
    std::unique_ptr<ValueStore> ram = make_value_store("ram", 2, elems, f16);
    std::unique_ptr<ValueStore> disk = make_value_store((f16 ? "file:" : "mmap:") + dir, 2, elems, f16);
    const int64_t n = 2 * FileValueStore::kExtentSlots + 37;
    for (int64_t i = 0; i < n; ++i)
      for (int s = 0; s < 2; ++s) {
        if (s == 1 && i % 3 == 0) continue;  // stream 1 grows more slowly
        const std::vector<float> v = randn(elems, rng);
        EXPECT_EQ(disk->append(s, v.data()), ram->append(s, v.data()));
      }
    std::unique_ptr<ValueStore> copy = disk->clone();
    EXPECT_EQ(disk->n_slots(1), ram->n_slots(1));
    EXPECT_GE(disk->bytes(), ram->bytes());
    std::vector<uint8_t> want(elems * 4), got(elems * 4), got2(elems * 4);
    for (int s = 0; s < 2; ++s)
      for (int64_t slot = 0; slot < ram->n_slots(s); slot += 7) {
        ram->read(s, slot, want.data());
        disk->read(s, slot, got.data());
        copy->read(s, slot, got2.data());
        ASSERT_EQ(want, got) << "stream " << s << " slot " << slot << (f16 ? " f16" : " f32");
        ASSERT_EQ(want, got2) << "clone, stream " << s << " slot " << slot;
      }
    EXPECT_THROW(disk->read(0, disk->n_slots(0), got.data()), Error);
    EXPECT_FALSE(maps_a_value_file());
  }
  EXPECT_EQ(rmdir(dir.c_str()), 0) << "the value files must not stay in the directory";
  EXPECT_THROW(make_value_store("file:/nonexistent-dir/x", 1, 8, true), Error);
  EXPECT_THROW(make_value_store("disk", 1, 8, true), Error);
}

TEST(ShadowKvOptions, ParsesAndValidates) {
  bool pct;
  double v;
  parse_budget("2048", &pct, &v);
  EXPECT_FALSE(pct);
  EXPECT_EQ(v, 2048);
  parse_budget("1.56%", &pct, &v);
  EXPECT_TRUE(pct);
  EXPECT_DOUBLE_EQ(v, 1.56);
  for (const char* bad : {"abc", "-5", "%", "12.5", "150%", "1e400", "20x"})
    EXPECT_THROW(parse_budget(bad, &pct, &v), Error) << bad;
  // Found by fuzz_server_request: a request's {"kv": {"policy": "shadowkv", "budget": "1e300"}} (or 1e18) was
  // accepted and end_prefill cast 1e300 to int64_t / overflowed budget * 24 (undefined behaviour); now an Error.
  for (const char* huge : {"1e300", "1e18", "1073741825"}) EXPECT_THROW(parse_budget(huge, &pct, &v), Error) << huge;
  parse_budget("1073741824", &pct, &v);
  EXPECT_EQ(v, 1073741824.0);
  ShadowKvConfig c;
  EXPECT_EQ(budget_tokens(c, 100000), 2048);  // the authors' budget whatever the prompt
  EXPECT_EQ(budget_tokens(c, 1000), 2048);
  EXPECT_EQ(tail_block_tokens(c), 1024);  // half the default dense tail
  c.dense_tail = 0;
  EXPECT_EQ(tail_block_tokens(c), 8);  // at least one chunk
  c.dense_tail = 100;
  EXPECT_EQ(tail_block_tokens(c), 48);  // whole chunks
  c.budget_percent = true;
  c.budget_value = 10;
  EXPECT_EQ(budget_tokens(c, 1000), 100);
  EXPECT_EQ(outlier_chunks(c, 2048), 48);
  EXPECT_EQ(outlier_chunks(c, 256), 6);
  EXPECT_EQ(outlier_chunks(c, 10), 1);
  EXPECT_EQ(default_rank(1024, 8), 160);  // Llama-3-8B, the paper's setting
  EXPECT_EQ(default_rank(128, 2), 48);    // Qwen2.5-Coder 0.5B
  EXPECT_EQ(default_rank(256, 1), 160);   // Gemma 3 270M: one KV head
  EXPECT_EQ(default_rank(512, 2), 96);
  EXPECT_EQ(default_rank(2, 1), 1);
  EXPECT_TRUE(estimates_unselected(c, 1));   // auto: a single KV head estimates its unselected chunks...
  EXPECT_FALSE(estimates_unselected(c, 2));  // ...more heads drop them
  c.unselected = ShadowKvConfig::Unselected::Mean;
  EXPECT_TRUE(estimates_unselected(c, 2));
  c.unselected = ShadowKvConfig::Unselected::Drop;
  EXPECT_FALSE(estimates_unselected(c, 1));

  KvGeometry g;
  LayerGeometry l;
  l.n_head = 4, l.n_kv_head = 2, l.head_dim = 8;
  g.layers = {l};
  KvOptions o("shadowkv");
  EXPECT_NO_THROW(make_kv_cache(g, o));
  o.set("rank", "17");
  EXPECT_THROW(make_kv_cache(g, o), Error);
  o.set("rank", "16");
  EXPECT_NO_THROW(make_kv_cache(g, o));
  o.set("chunk", "0");
  EXPECT_THROW(make_kv_cache(g, o), Error);
  o.set("chunk", "8").set("dense-tail", "-2");
  EXPECT_THROW(make_kv_cache(g, o), Error);
  o.set("dense-tail", "0");
  EXPECT_NO_THROW(make_kv_cache(g, o));
  o.set("budget", "lots");
  EXPECT_THROW(make_kv_cache(g, o), Error);
  o.set("budget", "64").set("unselected", "sometimes");
  EXPECT_THROW(make_kv_cache(g, o), Error);
  o.set("unselected", "mean");
  EXPECT_NO_THROW(make_kv_cache(g, o));
  o.set("budget", "64").set("rank", "x");  // wrong type
  EXPECT_THROW(make_kv_cache(g, o), Error);
  o.settings.erase("rank");
  o.set("bogus", "1");  // not a setting of shadowkv
  EXPECT_THROW(make_kv_cache(g, o), Error);
  EXPECT_THROW(make_kv_cache(g, KvOptions("full").set("rank", "8")), Error);  // full has no rank
  EXPECT_THROW(make_kv_cache(g, KvOptions("nonesuch")), Error);
  EXPECT_THROW(make_kv_cache(g, KvOptions("shadowkv").set("value-store", "floppy")), Error);
  EXPECT_NO_THROW(make_kv_cache(g, KvOptions("shadowkv").set("value-store", "file")));
}

}  // namespace
}  // namespace shadowkv
