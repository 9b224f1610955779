// Dequantisation must match gguf-py bit for bit (golden fixtures from scripts/gen-quant-fixtures) on every SIMD
// backend the CPU supports; dot_row must match a double-precision reference within a stated bound.
#include "ops/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "ops/quant_dispatch.h"
#include "util/error.h"

namespace shadowkv {
namespace {

constexpr int64_t kFixtureElems = 1024;  // elements per fixture row

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path << " (run scripts/gen-quant-fixtures)";
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// The first `rows` rows of x (n elements each) quantised as the active backend's dot kernels take them for type t:
// row r at data + r * bytes (one spare byte, so a kind with no bytes still gives a valid pointer).
struct Acts {
  simd::ActKind kind;
  int64_t bytes;  // per row
  std::vector<uint8_t> data;
  const uint8_t* row(int r) const { return data.data() + r * bytes; }
};
Acts quantize_rows(GgmlType t, const float* x, int64_t n, int rows) {
  const simd::QuantOps& ops = simd::quant_ops();
  Acts a{ops.act_kind(t), 0, {}};
  a.bytes = simd::act_bytes(a.kind, n);
  a.data.resize(a.bytes * rows + 1);
  for (int r = 0; r < rows; ++r) ops.quantize_act(a.kind, x + r * n, a.data.data() + r * a.bytes, n);
  return a;
}

struct Fixture {
  std::vector<uint8_t> raw;
  std::vector<float> expected;
  int64_t rows = 0;
};

Fixture load_fixture(GgmlType t) {
  std::string name = traits(t).name;
  for (char& c : name) c = (char)std::tolower((unsigned char)c);
  const std::string base = std::string(SHADOWKV_SOURCE_DIR) + "/tests/fixtures/quant/" + name;
  Fixture fx;
  fx.raw = read_file(base + ".raw");
  const std::vector<uint8_t> f = read_file(base + ".f32");
  fx.expected.resize(f.size() / 4);
  std::memcpy(fx.expected.data(), f.data(), f.size());
  fx.rows = (int64_t)fx.expected.size() / kFixtureElems;
  return fx;
}

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                              GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K};

std::vector<simd::Backend> backends() {
  std::vector<simd::Backend> v;
  for (simd::Backend b : {simd::Backend::kScalar, simd::Backend::kAvx2, simd::Backend::kAvx512})
    if (simd::supported(b)) v.push_back(b);
  return v;
}

struct BackendGuard {
  explicit BackendGuard(simd::Backend b) { simd::set_backend(b); }
  ~BackendGuard() { simd::reset_backend(); }
};

TEST(QuantDispatch, UsesTheCpusSimd) {
  // If the CPU has AVX2/FMA/F16C, the AVX2 kernels must be selectable (otherwise the other tests would silently
  // only cover the scalar path).
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    EXPECT_TRUE(simd::supported(simd::Backend::kAvx2));
  }
  {
    BackendGuard g(simd::Backend::kScalar);
    EXPECT_STREQ(simd_backend(), "scalar");
  }
  // Likewise AVX-512 with VNNI (its int8 dot products).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") &&
      simd::supported(simd::Backend::kAvx2)) {
    EXPECT_TRUE(simd::supported(simd::Backend::kAvx512));
  }
  const char* env = std::getenv("SHADOWKV_SIMD");
  if (!env || !*env) {
    EXPECT_STREQ(simd_backend(), simd::supported(simd::Backend::kAvx512) ? "avx512"
                                 : simd::supported(simd::Backend::kAvx2) ? "avx2"
                                                                         : "scalar");
  }
}

TEST(QuantDequant, BitExactAgainstGgufPy) {
  for (GgmlType t : kAllTypes) {
    const Fixture fx = load_fixture(t);
    ASSERT_GE(fx.rows, 2) << traits(t).name;
    const int64_t rb = row_bytes(t, kFixtureElems);
    ASSERT_EQ((int64_t)fx.raw.size(), rb * fx.rows) << traits(t).name;
    for (simd::Backend b : backends()) {
      BackendGuard g(b);
      std::vector<float> out(fx.expected.size(), -12345.0f);
      for (int64_t r = 0; r < fx.rows; ++r)
        dequantize_row(t, fx.raw.data() + r * rb, out.data() + r * kFixtureElems, kFixtureElems);
      EXPECT_EQ(0, std::memcmp(out.data(), fx.expected.data(), out.size() * 4))
          << traits(t).name << " on " << simd_backend();
      // All rows as one long row, too (exercises the loop tails and block pointer arithmetic).
      std::vector<float> all(fx.expected.size(), -1.0f);
      dequantize_row(t, fx.raw.data(), all.data(), (int64_t)all.size());
      EXPECT_EQ(0, std::memcmp(all.data(), fx.expected.data(), all.size() * 4))
          << traits(t).name << " (one long row) on " << simd_backend();
      // Short rows for the plain float types (not a multiple of 8 lanes).
      if (traits(t).block_elems == 1) {
        std::vector<float> s(13, -1.0f);
        dequantize_row(t, fx.raw.data(), s.data(), 13);
        EXPECT_EQ(0, std::memcmp(s.data(), fx.expected.data(), 13 * 4)) << traits(t).name << " short row";
      }
    }
  }
}

// Error bound of dot_row: f32 accumulation, plus, when the backend quantises x to int8 blocks of size `blk`, each
// x[i] moves by at most amax(block)/254 (round to nearest of x*127/amax).
double dot_bound(const float* w, const float* x, int64_t n, int64_t blk) {
  double mag = 0.0, qerr = 0.0;
  for (int64_t i = 0; i < n; ++i) mag += std::fabs((double)w[i] * x[i]);
  if (blk > 0) {
    for (int64_t i0 = 0; i0 < n; i0 += blk) {
      double amax = 0.0, wsum = 0.0;
      for (int64_t i = i0; i < i0 + blk; ++i) {
        amax = std::max(amax, (double)std::fabs(x[i]));
        wsum += std::fabs((double)w[i]);
      }
      qerr += amax / 254.0 * wsum * 1.001;
    }
  }
  return qerr + 2e-5 * mag + 1e-30;
}

TEST(QuantDot, MatchesDoubleReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (GgmlType t : kAllTypes) {
    const Fixture fx = load_fixture(t);
    const int64_t rb = row_bytes(t, kFixtureElems);
    std::vector<float> x(kFixtureElems);
    for (simd::Backend b : backends()) {
      BackendGuard g(b);
      const simd::ActKind kind = simd::quant_ops().act_kind(t);
      const int64_t blk = kind == simd::ActKind::kQ8x256 ? 256 : kind == simd::ActKind::kNone ? 0 : 32;
      for (int64_t r = 0; r < fx.rows; ++r) {
        for (float& v : x) v = nd(rng);
        const float* w = fx.expected.data() + r * kFixtureElems;
        double ref = 0.0;
        for (int64_t i = 0; i < kFixtureElems; ++i) ref += (double)w[i] * x[i];
        const float got = dot_row(t, fx.raw.data() + r * rb, x.data(), kFixtureElems);
        EXPECT_NEAR(got, ref, dot_bound(w, x.data(), kFixtureElems, blk))
            << traits(t).name << " row " << r << " on " << simd_backend();
      }
    }
  }
}

TEST(QuantDot, IntegerKernelsAreCloseOnTypicalData) {
  // The stated worst-case bound above is loose; on Gaussian data the int8 activation path should land within
  // 1% of sum|w*x| (typically far less), which catches a kernel that is wrong by a scale or a sub-block.
  if (!simd::supported(simd::Backend::kAvx2)) GTEST_SKIP() << "no SIMD backend on this CPU";
  BackendGuard g(simd::Backend::kAvx2);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0, GgmlType::Q4_1,
                     GgmlType::Q5_1, GgmlType::Q5_K}) {
    const Fixture fx = load_fixture(t);
    std::vector<float> x(kFixtureElems);
    for (float& v : x) v = nd(rng);
    const float* w = fx.expected.data();
    double ref = 0.0, mag = 0.0;
    for (int64_t i = 0; i < kFixtureElems; ++i) {
      ref += (double)w[i] * x[i];
      mag += std::fabs((double)w[i] * x[i]);
    }
    EXPECT_NEAR(dot_row(t, fx.raw.data(), x.data(), kFixtureElems), ref, 0.01 * mag) << traits(t).name;
  }
}

TEST(QuantDot, Avx512GivesTheAvx2ResultsBitForBit) {
  // The AVX-512 backend is the AVX2 kernels with VNNI int8 dots, which give the same int32 sums: a model must not
  // change its output with the CPU it runs on. Extreme quants (-128/127 weights, +-127 activations) included.
  if (!simd::supported(simd::Backend::kAvx512)) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  constexpr int kRows = simd::kMaxDotRows;
  std::vector<float> x(kRows * kFixtureElems);
  for (float& v : x) v = nd(rng);
  for (int64_t i = 0; i < kFixtureElems; i += 32) x[i] = (i / 32) % 2 ? 50.0f : -50.0f;  // quants of +-127
  for (GgmlType t : kAllTypes) {
    Fixture fx = load_fixture(t);
    const int64_t rb = row_bytes(t, kFixtureElems);
    if (t == GgmlType::Q8_0)  // every weight quant -128 or 127 in the first row
      for (int64_t i = 0; i < kFixtureElems / 32; ++i)
        for (int j = 0; j < 32; ++j) fx.raw[i * 34 + 2 + j] = j % 3 ? 0x80 : 0x7F;
    std::vector<float> y[2];
    for (int k = 0; k < 2; ++k) {
      BackendGuard g(k ? simd::Backend::kAvx512 : simd::Backend::kAvx2);
      const simd::QuantOps& ops = simd::quant_ops();
      const Acts a = quantize_rows(t, x.data(), kFixtureElems, kRows);
      y[k].assign((kRows + 1) * fx.rows, NAN);  // kRows rows at once, then row 0 alone after them
      ops.dot_rows(t, fx.raw.data(), rb, fx.rows, x.data(), a.row(0), a.bytes, kRows, kFixtureElems, y[k].data(),
                   fx.rows);
      ops.dot_rows(t, fx.raw.data(), rb, fx.rows, x.data(), a.row(0), a.bytes, 1, kFixtureElems,
                   y[k].data() + kRows * fx.rows, fx.rows);
    }
    EXPECT_EQ(std::memcmp(y[0].data(), y[1].data(), 4 * y[0].size()), 0) << traits(t).name;
  }
}

TEST(QuantDot, RowsKernelsEqualOneRowDotBitForBit) {
  // dot_rows shares a weight row's unpacking across up to kMaxDotRows activation rows; each row must come out
  // exactly as dot() gives it alone (batching must not change a sequence's logits), on every backend.
  std::mt19937 rng(13);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  constexpr int kRows = simd::kMaxDotRows;
  for (GgmlType t : kAllTypes) {
    const Fixture fx = load_fixture(t);
    std::vector<float> x(kRows * kFixtureElems);
    for (float& v : x) v = nd(rng);
    for (simd::Backend b : backends()) {
      BackendGuard g(b);
      const simd::QuantOps& ops = simd::quant_ops();
      const Acts a = quantize_rows(t, x.data(), kFixtureElems, kRows);
      const int64_t rb = row_bytes(t, kFixtureElems);
      // The fixture's rows repeated to 2 * rows + 1 weight rows: batch 1 takes four weight rows per pass, then a tail.
      const int64_t n_w = 2 * fx.rows + 1;
      std::vector<uint8_t> w(rb * n_w);
      for (int64_t o = 0; o < n_w; ++o) std::memcpy(&w[o * rb], fx.raw.data() + (o % fx.rows) * rb, rb);
      for (int nr = 1; nr <= kRows; ++nr) {
        std::vector<float> y(kRows * n_w, NAN);
        ops.dot_rows(t, w.data(), rb, n_w, x.data(), a.row(0), a.bytes, nr, kFixtureElems, y.data(), n_w);
        for (int64_t o = 0; o < n_w; ++o)
          for (int r = 0; r < nr; ++r) {
            const float one = ops.dot(t, &w[o * rb], &x[r * kFixtureElems], a.row(r), kFixtureElems);
            EXPECT_EQ(std::memcmp(&y[r * n_w + o], &one, 4), 0)
                << traits(t).name << " nr=" << nr << " [" << r << "," << o << "]: " << y[r * n_w + o] << " vs " << one
                << " on " << simd_backend();
          }
      }
    }
  }
}

TEST(QuantDot, PackedRowsEqualOneRowDotBitForBit) {
  // Decode reads a large Q8_0 head and every Q4_0/Q5_0 matrix from its packed copy only (pack_weights): every row as
  // dot() gives it, on every backend, for 1-4 activation rows, for any start row of a range (Q8_0: the packed groups
  // and the rows after the last one), and through matmul (the dot kernels, and the GEMM path that rebuilds GGUF rows
  // from the packed copy).
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0}) {
    const Fixture fx = load_fixture(t);
    const int64_t rb = row_bytes(t, kFixtureElems), n_w = 4 * fx.rows + 3;
    std::vector<uint8_t> w(rb * n_w);
    for (int64_t o = 0; o < n_w; ++o) std::memcpy(&w[o * rb], fx.raw.data() + ((o * 3) % fx.rows) * rb, rb);
    QMatrix W{t, w.data(), kFixtureElems, n_w, rb};
    const std::vector<uint8_t> packed = pack_weights(W);
    ASSERT_EQ((int64_t)packed.size(), (t == GgmlType::Q8_0 ? n_w / 4 * 4 : n_w) * rb) << traits(t).name;
    // The model's arena packs in place: packed_bytes() sizes the slot, and nothing is written past it.
    std::vector<uint8_t> into(packed_bytes(W) + 1, 0xAB);
    pack_weights_into(W, into.data());
    EXPECT_EQ(into.back(), 0xAB) << traits(t).name;
    constexpr int kRows = (int)simd::kGemmMinRows + 1;  // matmul takes the GEMM path too
    std::mt19937 rng(17);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(kRows * kFixtureElems);
    for (float& v : x) v = nd(rng);
    for (simd::Backend b : backends()) {
      BackendGuard g(b);
      const simd::QuantOps& ops = simd::quant_ops();
      const Acts a = quantize_rows(t, x.data(), kFixtureElems, simd::kMaxDotRows);
      for (int nr = 1; nr <= simd::kMaxDotRows; ++nr)
        for (int64_t o0 : {0, 4, 8}) {
          std::vector<float> y(nr * n_w, NAN);
          ops.dot_rows_packed(t, packed.data() + o0 * rb, &w[o0 * rb], rb, n_w - o0, x.data(), a.row(0), a.bytes, nr,
                              kFixtureElems, y.data(), n_w);
          for (int r = 0; r < nr; ++r)
            for (int64_t o = o0; o < n_w; ++o) {
              const float one = ops.dot(t, &w[o * rb], &x[r * kFixtureElems], a.row(r), kFixtureElems);
              EXPECT_EQ(std::memcmp(&y[r * n_w + o - o0], &one, 4), 0)
                  << traits(t).name << " row " << o << " from " << o0 << ", act row " << r << " of " << nr << " on "
                  << simd_backend();
            }
        }
      QMatrix P = W;
      P.packed = packed.data();
      for (int rows : {1, 3, 6, kRows}) {
        std::vector<float> plain(rows * n_w), with_packed(rows * n_w);
        matmul(W, x.data(), rows, plain.data());
        matmul(P, x.data(), rows, with_packed.data());
        EXPECT_EQ(std::memcmp(plain.data(), with_packed.data(), 4 * rows * n_w), 0)
            << traits(t).name << " " << rows << " " << simd_backend();
      }
    }
  }
  QMatrix q4k{GgmlType::Q4_K, nullptr, 256, 4, 144};
  EXPECT_TRUE(pack_weights(q4k).empty());
  EXPECT_EQ(packed_bytes(q4k), 0);
  EXPECT_THROW(pack_weights_into(q4k, nullptr), Error);
}

TEST(QuantDot, Q8_0Q4_0Q5_0RowsOfAnyBlockCountAgreeOnEveryPath) {
  // The Q8_0, Q4_0 and Q5_0 kernels work in runs of eight blocks; rows of 1, 9, 20 (Gemma's 640) and 28 (Qwen's
  // 896) blocks end in a partial run. Each path (one row, 1-4 activation rows, four rows at batch 1, the packed
  // copy, matmul) must give dot()'s bits, and dot() must be close to a double-precision reference of the
  // dequantised row.
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0}) {
    const Fixture fx = load_fixture(t);
    const int64_t bb = traits(t).block_bytes;
    std::mt19937 rng(19);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t nb : {1, 9, 20, 28}) {
      const int64_t n = 32 * nb, rb = bb * nb, n_w = 4 * 3 + 2;
      std::vector<uint8_t> w(rb * n_w);
      std::vector<float> wf(n * n_w);
      for (int64_t o = 0; o < n_w; ++o)  // row o: nb blocks of the fixture from block o, wrapping around its rows
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t src = (o + i) % (fx.rows * kFixtureElems / 32);
          std::memcpy(&w[o * rb + bb * i], &fx.raw[bb * src], bb);
          std::memcpy(&wf[o * n + 32 * i], &fx.expected[32 * src], 4 * 32);
        }
      QMatrix W{t, w.data(), n, n_w, rb};
      const std::vector<uint8_t> packed = pack_weights(W);
      std::vector<float> x(simd::kMaxDotRows * n);
      for (float& v : x) v = nd(rng);
      for (simd::Backend b : backends()) {
        BackendGuard g(b);
        const simd::QuantOps& ops = simd::quant_ops();
        const Acts a = quantize_rows(t, x.data(), n, simd::kMaxDotRows);
        const simd::ActKind kind = a.kind;
        std::vector<float> one(simd::kMaxDotRows * n_w);
        for (int r = 0; r < simd::kMaxDotRows; ++r)
          for (int64_t o = 0; o < n_w; ++o) {
            one[r * n_w + o] = ops.dot(t, &w[o * rb], &x[r * n], a.row(r), n);
            double ref = 0.0;
            for (int64_t i = 0; i < n; ++i) ref += (double)wf[o * n + i] * x[r * n + i];
            EXPECT_NEAR(one[r * n_w + o], ref,
                        dot_bound(&wf[o * n], &x[r * n], n, kind == simd::ActKind::kNone ? 0 : 32))
                << traits(t).name << " " << nb << " blocks, row " << o << " on " << simd_backend();
          }
        for (int nr = 1; nr <= simd::kMaxDotRows; ++nr)
          for (bool use_packed : {false, true}) {
            if (use_packed && packed.empty()) continue;
            std::vector<float> y(nr * n_w, NAN);
            if (use_packed)
              ops.dot_rows_packed(t, packed.data(), w.data(), rb, n_w, x.data(), a.row(0), a.bytes, nr, n, y.data(),
                                  n_w);
            else
              ops.dot_rows(t, w.data(), rb, n_w, x.data(), a.row(0), a.bytes, nr, n, y.data(), n_w);
            for (int r = 0; r < nr; ++r)
              EXPECT_EQ(std::memcmp(&y[r * n_w], &one[r * n_w], 4 * n_w), 0)
                  << traits(t).name << " " << nb << " blocks, nr=" << nr << " packed=" << use_packed << " row " << r
                  << " on " << simd_backend();
          }
        QMatrix P = W;
        P.packed = packed.empty() ? nullptr : packed.data();
        std::vector<float> y(simd::kMaxDotRows * n_w);
        matmul(P, x.data(), simd::kMaxDotRows, y.data());
        EXPECT_EQ(std::memcmp(y.data(), one.data(), 4 * y.size()), 0)
            << traits(t).name << " " << nb << " blocks, matmul on " << simd_backend();
      }
    }
  }
}

TEST(QuantErrors, RejectsUnsupportedTypesAndBadLengths) {
  std::vector<uint8_t> buf(4096);
  std::vector<float> out(512), x(512);
  EXPECT_THROW(dequantize_row(GgmlType::Q2_K, buf.data(), out.data(), 256), Error);
  EXPECT_THROW(dot_row(GgmlType::Q3_K, buf.data(), x.data(), 256), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q8_0, buf.data(), out.data(), 33), Error);
  EXPECT_THROW(dot_row(GgmlType::Q4_K, buf.data(), x.data(), 128), Error);
  EXPECT_THROW(dequantize_row(static_cast<GgmlType>(99), buf.data(), out.data(), 32), Error);
  EXPECT_THROW(simd::set_backend(static_cast<simd::Backend>(7)), Error);
}

}  // namespace
}  // namespace shadowkv
