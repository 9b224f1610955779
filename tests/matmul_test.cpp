// matmul() against a double-precision reference built from scalar dequantisation (itself checked bit-exact against
// gguf-py in quant_test), for every supported type, several batch sizes (dot path and SGEMM path) and odd shapes.
#include "ops/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/f16.h"
#include "ops/gemm_i8.h"
#include "ops/quant.h"
#include "ops/quant_dispatch.h"
#include "util/error.h"

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

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// Random weight rows: random bytes with sane scale fields (random bits there could be inf/nan).
std::vector<uint8_t> random_weights(GgmlType t, int64_t n_in, int64_t n_out, int64_t stride, std::mt19937& rng) {
  std::vector<uint8_t> w(stride * n_out);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> sc(-0.05f, 0.05f), val(-2.0f, 2.0f);
  for (auto& b : w) b = (uint8_t)byte(rng);
  const TypeTraits& tt = traits(t);
  for (int64_t o = 0; o < n_out; ++o) {
    uint8_t* row = w.data() + o * stride;
    for (int64_t i = 0; i < n_in / tt.block_elems; ++i) {
      uint8_t* b = row + i * tt.block_bytes;
      switch (t) {
        case GgmlType::F32: {
          const float v = val(rng);
          std::memcpy(b, &v, 4);
          break;
        }
        case GgmlType::F16:
          put_f16(b, val(rng));
          break;
        case GgmlType::BF16: {
          const float v = val(rng);
          uint32_t bits;
          std::memcpy(&bits, &v, 4);
          const uint16_t h = (uint16_t)(bits >> 16);
          std::memcpy(b, &h, 2);
          break;
        }
        case GgmlType::Q6_K:
          put_f16(b + 208, sc(rng));
          break;
        case GgmlType::Q8_K: {
          const float d = sc(rng);
          std::memcpy(b, &d, 4);
          break;
        }
        case GgmlType::Q4_1:
        case GgmlType::Q5_1:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
          put_f16(b, sc(rng));
          put_f16(b + 2, sc(rng));
          break;
        default:
          put_f16(b, sc(rng));
          break;  // Q4_0, Q5_0, Q8_0
      }
    }
  }
  return w;
}

struct Case {
  GgmlType type;
  int64_t n_in, n_out;
};

void check_matmul(const Case& c, int64_t n_rows, int64_t pad, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t stride = row_bytes(c.type, c.n_in) + pad;
  const std::vector<uint8_t> wbytes = random_weights(c.type, c.n_in, c.n_out, stride, rng);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> X(n_rows * c.n_in);
  for (float& v : X) v = nd(rng);

  // Reference: scalar dequantisation, double accumulation.
  std::vector<float> Wf(c.n_out * c.n_in);
  {
    BackendGuard g(simd::Backend::kScalar);
    for (int64_t o = 0; o < c.n_out; ++o) dequantize_row(c.type, wbytes.data() + o * stride, &Wf[o * c.n_in], c.n_in);
  }
  // Reference value, |w|.|x| magnitude and int8-activation error bound per output (x rounded per block of
  // act_blk elements moves by at most amax/254).
  const int64_t act_blk = traits(c.type).block_elems == 256 ? 256 : 32;
  std::vector<double> ref(n_rows * c.n_out), mag(n_rows * c.n_out), qerr(n_rows * c.n_out);
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = &X[r * c.n_in];
    for (int64_t o = 0; o < c.n_out; ++o) {
      const float* w = &Wf[o * c.n_in];
      double s = 0.0, m = 0.0, q = 0.0;
      for (int64_t i0 = 0; i0 < c.n_in; i0 += act_blk) {
        double amax = 0.0, ws = 0.0;
        for (int64_t i = i0; i < std::min(i0 + act_blk, c.n_in); ++i) {
          s += (double)w[i] * x[i];
          m += std::fabs((double)w[i] * x[i]);
          amax = std::max(amax, (double)std::fabs(x[i]));
          ws += std::fabs((double)w[i]);
        }
        q += amax / 254.0 * ws * 1.001;
      }
      ref[r * c.n_out + o] = s;
      mag[r * c.n_out + o] = m;
      qerr[r * c.n_out + o] = q;
    }
  }
  const QMatrix W{c.type, wbytes.data(), c.n_in, c.n_out, stride};
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    // Activations are int8 in the dot kernels (decode) and in the int8 GEMM (prefill, where the backend has one).
    const bool int_act = n_rows < simd::kGemmMinRows ? simd::quant_ops().act_kind(c.type) != simd::ActKind::kNone
                                                     : simd::gemm_i8_ops() && simd::gemm_block(c.type);
    std::vector<float> Y(n_rows * c.n_out, NAN);
    matmul(W, X.data(), n_rows, Y.data());
    int bad = 0;
    for (int64_t k = 0; k < n_rows * c.n_out; ++k) {
      const double tol = (int_act ? qerr[k] : 0.0) + 1e-4 * mag[k] + 1e-30;  // f32 sums over n_in <= 640 terms
      if (!(std::fabs(Y[k] - ref[k]) <= tol) && bad++ < 3)
        ADD_FAILURE() << traits(c.type).name << " n_rows=" << n_rows << " [" << k / c.n_out << "," << k % c.n_out
                      << "] got " << Y[k] << " want " << ref[k] << " tol " << tol << " on " << simd_backend();
    }
    EXPECT_EQ(bad, 0) << traits(c.type).name << " n_rows=" << n_rows << " on " << simd_backend();
  }
}

const Case kCases[] = {
    {GgmlType::F32, 200, 70},  {GgmlType::F16, 200, 70},  {GgmlType::BF16, 200, 70}, {GgmlType::Q4_0, 320, 70},
    {GgmlType::Q4_1, 320, 70}, {GgmlType::Q5_0, 320, 70}, {GgmlType::Q5_1, 320, 70}, {GgmlType::Q8_0, 320, 70},
    {GgmlType::Q4_K, 512, 70}, {GgmlType::Q5_K, 512, 70}, {GgmlType::Q6_K, 512, 70}, {GgmlType::Q8_K, 512, 70},
};

TEST(Matmul, AllTypesDecodeBatches) {
  uint32_t seed = 1;
  for (const Case& c : kCases)
    for (int64_t n_rows : {1, 3, 8, 11}) check_matmul(c, n_rows, 0, seed++);
}

TEST(Matmul, AllTypesPrefillBatches) {
  uint32_t seed = 100;
  for (const Case& c : kCases)
    for (int64_t n_rows : {12, 64, 300}) check_matmul(c, n_rows, 0, seed++);
}

TEST(Matmul, PaddedRowStrideAndOddOutputCount) {
  // 129 outputs: not a multiple of the 64-row SGEMM tile nor of the thread count.
  check_matmul({GgmlType::Q8_0, 640, 129}, 1, 8, 7);
  check_matmul({GgmlType::Q8_0, 640, 129}, 65, 8, 8);
  check_matmul({GgmlType::F32, 96, 129}, 5, 16, 9);
  check_matmul({GgmlType::F32, 96, 129}, 40, 16, 10);
  check_matmul({GgmlType::Q6_K, 256, 129}, 33, 2, 11);
}

TEST(Matmul, SeveralMatricesInOnePassEqualEachAlone) {
  // q/k/v-style: three matrices of different types and widths over the same rows, spans mixing decode-sized runs
  // (dot kernels, kMaxDotRows at a time) and prefill-sized ones (GEMM). Every output must be bit-identical to the
  // matrix computed alone, and each span's rows to that span computed alone.
  std::mt19937 rng(21);
  const int64_t n_in = 512;
  const Case cases[] = {{GgmlType::Q5_0, n_in, 96}, {GgmlType::Q8_0, n_in, 40}, {GgmlType::Q4_K, n_in, 33}};
  std::vector<std::vector<uint8_t>> w;
  std::vector<QMatrix> W;
  for (const Case& c : cases) w.push_back(random_weights(c.type, c.n_in, c.n_out, row_bytes(c.type, c.n_in), rng));
  for (size_t j = 0; j < 3; ++j)
    W.push_back({cases[j].type, w[j].data(), n_in, cases[j].n_out, row_bytes(cases[j].type, n_in)});
  const std::vector<RowSpan> spans = {{0, 1}, {1, 3}, {4, 1}, {5, 14}, {19, 2}, {21, 1}, {22, 5}};
  const int64_t R = 27;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> X(R * n_in);
  for (float& v : X) v = nd(rng);
  for (simd::Backend b : backends()) {
    BackendGuard g(b);
    std::vector<std::vector<float>> together(3), alone(3);
    std::vector<MatOut> jobs;
    for (size_t j = 0; j < 3; ++j) {
      together[j].assign(R * W[j].n_out, NAN);
      alone[j].assign(R * W[j].n_out, NAN);
      jobs.push_back({&W[j], together[j].data()});
    }
    matmul_spans(jobs, X.data(), spans);
    for (size_t j = 0; j < 3; ++j)
      for (const RowSpan& sp : spans) matmul(W[j], &X[sp.begin * n_in], sp.n, &alone[j][sp.begin * W[j].n_out]);
    for (size_t j = 0; j < 3; ++j)
      EXPECT_EQ(std::memcmp(together[j].data(), alone[j].data(), 4 * together[j].size()), 0)
          << traits(W[j].type).name << " on " << simd_backend();
  }
}

TEST(Matmul, PrefillFromThePackedCopyEqualsTheGgufRows) {
  // The model hands prefill its decode-layout copy (pack_weights): the GEMM must read the same weights from it, and
  // for Q4_0/Q5_0 nothing from the GGUF rows (their pages may be gone; here they are overwritten).
  std::mt19937 rng(31);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
    const int64_t n_in = 320, n_out = 70, rows = 40;  // 70: a Q8_0 tail past the last group of four
    std::vector<uint8_t> w = random_weights(t, n_in, n_out, row_bytes(t, n_in), rng);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> X(rows * n_in);
    for (float& v : X) v = nd(rng);
    for (simd::Backend b : backends()) {
      BackendGuard g(b);
      std::vector<float> want(rows * n_out), got(rows * n_out, NAN);
      matmul({t, w.data(), n_in, n_out, row_bytes(t, n_in)}, X.data(), rows, want.data());
      std::vector<uint8_t> gguf = w;
      QMatrix W{t, gguf.data(), n_in, n_out, row_bytes(t, n_in)};
      const std::vector<uint8_t> packed = pack_weights(W);
      W.packed = packed.data();
      if (t != GgmlType::Q8_0) std::fill(gguf.begin(), gguf.end(), 0xFF);
      matmul(W, X.data(), rows, got.data());
      EXPECT_EQ(std::memcmp(want.data(), got.data(), 4 * want.size()), 0) << traits(t).name << " on " << simd_backend();
    }
  }
}

// ---- the int8 GEMM's pieces (gemm_i8.h), on every backend the CPU has ----

struct GemmBackend {
  const char* name;
  const simd::GemmI8Ops* gemm;
  const simd::QuantOps* quant;  // the backend's decode kernels, whose activation quantiser the GEMM's must equal
};

std::vector<GemmBackend> gemm_backends() {
  std::vector<GemmBackend> out;
  if (simd::supported(simd::Backend::kAvx2)) out.push_back({"avx2", &simd::kAvx2GemmI8Ops, &simd::kAvx2QuantOps});
  if (simd::supported(simd::Backend::kAvx512))
    out.push_back({"avx512", &simd::kAvx512GemmI8Ops, &simd::kAvx512QuantOps});
  return out;
}

const GgmlType kGemmTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                               GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// Weight value of row r, element i of a panel, as ws * (u - o) or ws * u - wm.
float panel_weight(GgmlType t, const uint8_t* panel, int r, int64_t i) {
  const int kb = simd::gemm_block(t), o = simd::gemm_offset(t);
  const uint8_t* p = panel + i / kb * simd::gemm_block_bytes(t);
  const int j = (int)(i % kb);
  const int u = p[j / 4 * 64 + 4 * r + j % 4];
  float ws, wm;
  std::memcpy(&ws, p + simd::kPanelRows * kb + 4 * r, 4);
  if (o) return ws * (float)(u - o);
  std::memcpy(&wm, p + simd::kPanelRows * kb + 64 + 4 * r, 4);
  return ws * (float)u - wm;
}

TEST(GemmI8, PanelsHoldTheDequantisedWeightsBitForBit) {
  if (gemm_backends().empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  for (const GemmBackend& be : gemm_backends()) {
    SCOPED_TRACE(be.name);
    const simd::GemmI8Ops* g = be.gemm;
    std::mt19937 rng(41);
    const int64_t n_in = 512, n = 11;  // a panel of 11 rows: 5 rows of padding
    for (GgmlType t : kGemmTypes) {
      const int64_t rb = row_bytes(t, n_in);
      const std::vector<uint8_t> w = random_weights(t, n_in, n, rb, rng);
      std::vector<uint8_t> panel(simd::gemm_panel_bytes(t, n_in), 0xAB);
      const uint8_t* rows[simd::kPanelRows];
      for (int r = 0; r < n; ++r) rows[r] = w.data() + r * rb;
      g->pack_panel(t, rows, false, n, n_in, panel.data());
      std::vector<float> ref(n_in);
      int bad = 0;
      for (int r = 0; r < simd::kPanelRows; ++r) {
        if (r < n) dequantize_row(t, rows[r], ref.data(), n_in);
        for (int64_t i = 0; i < n_in; ++i) {
          const float want = r < n ? ref[i] : 0.0f, got = panel_weight(t, panel.data(), r, i);
          const bool same = r < n ? std::memcmp(&want, &got, 4) == 0 : got == 0.0f;  // padding: +0 or -0
          if (!same && bad++ < 3)
            ADD_FAILURE() << traits(t).name << " row " << r << " element " << i << ": " << got << " want " << want;
        }
      }
      if (t == GgmlType::Q4_0 || t == GgmlType::Q5_0) {  // the same panel from the rows' pack_q32_runs layout
        const std::vector<uint8_t> packed = pack_weights({t, w.data(), n_in, n, rb});
        for (int r = 0; r < n; ++r) rows[r] = packed.data() + r * rb;
        std::vector<uint8_t> from_runs(panel.size(), 0xCD);
        g->pack_panel(t, rows, true, n, n_in, from_runs.data());
        EXPECT_EQ(from_runs, panel) << traits(t).name << " from pack_q32_runs' layout";
      }
    }
  }
}

TEST(GemmI8, QuantisesActivationsAsTheDecodeKernels) {
  if (gemm_backends().empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  for (const GemmBackend& be : gemm_backends()) {
    SCOPED_TRACE(be.name);
    const simd::GemmI8Ops* g = be.gemm;
    std::mt19937 rng(43);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    const int64_t n_in = 256, rows = 3;
    std::vector<float> x(rows * n_in);
    for (float& v : x) v = nd(rng);
    std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero block
    std::vector<simd::GemmAct> act(rows * n_in / 32);
    g->quantize(x.data(), rows, n_in, act.data());
    std::vector<simd::ActQ8x32> dec(n_in / 32);
    for (int64_t r = 0; r < rows; ++r) {
      be.quant->quantize_act(simd::ActKind::kQ8x32, &x[r * n_in], dec.data(), n_in);
      for (int64_t b = 0; b < n_in / 32; ++b) {
        const simd::GemmAct& a = act[r * n_in / 32 + b];
        EXPECT_EQ(a.d, dec[b].d);
        EXPECT_EQ(std::memcmp(a.qs, dec[b].qs, 32), 0) << "row " << r << " block " << b;
        int s0 = 0, s1 = 0;
        for (int j = 0; j < 16; ++j) s0 += a.qs[j], s1 += a.qs[16 + j];
        EXPECT_EQ(a.s16[0], s0);
        EXPECT_EQ(a.s16[1], s1);
        EXPECT_EQ(a.s32, s0 + s1);
        EXPECT_EQ(a.m, a.d * (float)(s0 + s1));
      }
    }
  }
}

TEST(GemmI8, KernelGivesTheReferenceBitForBit) {
  // Row counts 1..9 cover the kernel's four-row passes and every remainder; 37 and 48 columns an odd panel count
  // with a masked last panel, and whole panels; ldy past n_cols must stay untouched.
  if (gemm_backends().empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  for (const GemmBackend& be : gemm_backends()) {
    SCOPED_TRACE(be.name);
    const simd::GemmI8Ops* g = be.gemm;
    std::mt19937 rng(47);
    const int64_t n_in = 512;
    for (GgmlType t : kGemmTypes)
      for (int64_t n_cols : {37, 48}) {
        const int64_t rb = row_bytes(t, n_in), n_panels = (n_cols + 15) / 16, ldy = n_cols + 3;
        const std::vector<uint8_t> w = random_weights(t, n_in, n_cols, rb, rng);
        std::vector<uint8_t> panels(n_panels * simd::gemm_panel_bytes(t, n_in));
        for (int64_t p = 0; p < n_panels; ++p) {
          const uint8_t* rows[simd::kPanelRows];
          const int n = (int)std::min<int64_t>(16, n_cols - 16 * p);
          for (int r = 0; r < n; ++r) rows[r] = w.data() + (16 * p + r) * rb;
          g->pack_panel(t, rows, false, n, n_in, panels.data() + p * simd::gemm_panel_bytes(t, n_in));
        }
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> x(9 * n_in);
        for (float& v : x) v = nd(rng);
        std::vector<simd::GemmAct> act(9 * n_in / 32);
        g->quantize(x.data(), 9, n_in, act.data());
        for (int64_t n_rows = 1; n_rows <= 9; ++n_rows) {
          std::vector<float> got(n_rows * ldy, -7.0f), want(n_rows * ldy, -7.0f);
          g->gemm(t, panels.data(), n_panels, n_cols, n_in, act.data(), n_rows, got.data(), ldy);
          simd::gemm_i8_reference(t, panels.data(), n_panels, n_cols, n_in, act.data(), n_rows, want.data(), ldy);
          EXPECT_EQ(std::memcmp(got.data(), want.data(), 4 * got.size()), 0)
              << traits(t).name << " rows " << n_rows << " cols " << n_cols;
        }
      }
  }
}

TEST(Matmul, RejectsBadInput) {
  std::vector<uint8_t> w(4096);
  std::vector<float> x(256), y(64);
  EXPECT_THROW(matmul({GgmlType::Q8_0, w.data(), 33, 2, 36}, x.data(), 1, y.data()), Error);   // n_in % 32
  EXPECT_THROW(matmul({GgmlType::Q2_K, w.data(), 256, 2, 84}, x.data(), 1, y.data()), Error);  // unsupported
  EXPECT_THROW(matmul({GgmlType::Q8_0, w.data(), 64, 2, 34}, x.data(), 1, y.data()), Error);   // stride too small
  EXPECT_THROW(matmul({GgmlType::Q8_0, nullptr, 64, 2, 68}, x.data(), 1, y.data()), Error);
}

}  // namespace
}  // namespace shadowkv
