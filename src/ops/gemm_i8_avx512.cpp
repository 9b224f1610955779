// The AVX-512 VNNI int8 GEMM of prefill (gemm_i8.h): the register-blocked kernel (4 activation rows x 2 panels of 16
// weight rows per pass, the int32 sums of one block in 8 registers); packing and quantisation from gemm_i8_x86.h.
#include <immintrin.h>

#include "ops/gemm_i8_x86.h"

// GCC 12's _mm512_cvtepi32_ps and _mm512_reduce_* pass an "undefined" register that -Wmaybe-uninitialized reports
// inside the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace shadowkv::simd {
namespace {

// Activation rows x[0..RM) (nb32 blocks apart) times panels p[0..RN) (pstride bytes apart), y[m * ldy + 16 n + l];
// the last panel's stores are masked by `last`.
// O: the fixed offset of the quants (gemm_offset; a compile-time constant: as a run-time value the kernel ran
// 6-16% slower in Quant/matmul512/{Q5_0,Q8_0}, two alternations), 0 for panels with mins.
template <int KB, int O, int RM, int RN>
__attribute__((always_inline)) inline void tile(const uint8_t* p, int64_t pstride, int64_t nkb, const GemmAct* x,
                                                int64_t nb32, float* y, int64_t ldy, __mmask16 last) {
  constexpr int64_t kBB = panel_block_bytes(KB, O == 0);
  __m512 f[RM][RN];
  for (int m = 0; m < RM; ++m)
    for (int n = 0; n < RN; ++n) f[m][n] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nkb; ++b, p += kBB) {
    const int64_t bx = KB == 32 ? b : b / 2;
    const int h = KB == 32 ? 0 : (int)(b % 2);
    __m512i a[RM][RN];
    for (int m = 0; m < RM; ++m) {
      const GemmAct& xa = x[m * nb32 + bx];
      const __m512i init = _mm512_set1_epi32(O ? -O * (KB == 32 ? xa.s32 : xa.s16[h]) : 0);
      for (int n = 0; n < RN; ++n) a[m][n] = init;
    }
    for (int g = 0; g < KB / 4; ++g) {
      __m512i w[RN];
      for (int n = 0; n < RN; ++n) w[n] = _mm512_loadu_si512(p + n * pstride + 64 * g);
      for (int m = 0; m < RM; ++m) {
        const __m512i xb = _mm512_set1_epi32(load4(x[m * nb32 + bx].qs + 16 * h + 4 * g));
        for (int n = 0; n < RN; ++n) a[m][n] = _mm512_dpbusd_epi32(a[m][n], w[n], xb);
      }
    }
    for (int n = 0; n < RN; ++n) {
      const __m512 ws = _mm512_loadu_ps(p + n * pstride + kPanelRows * KB);
      const __m512 wm = O ? _mm512_setzero_ps() : _mm512_loadu_ps(p + n * pstride + kPanelRows * KB + 64);
      for (int m = 0; m < RM; ++m) {
        const GemmAct& xa = x[m * nb32 + bx];
        f[m][n] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a[m][n]), _mm512_set1_ps(xa.d)), ws, f[m][n]);
        if (!O) f[m][n] = _mm512_fnmadd_ps(wm, _mm512_set1_ps(xa.m), f[m][n]);
      }
    }
  }
  for (int m = 0; m < RM; ++m)
    for (int n = 0; n < RN; ++n) _mm512_mask_storeu_ps(y + m * ldy + 16 * n, n == RN - 1 ? last : 0xFFFF, f[m][n]);
}

template <int KB, int O, int RN>
void tile_rows(const uint8_t* p, int64_t pstride, int64_t nkb, const GemmAct* x, int64_t nb32, int64_t n_rows, float* y,
               int64_t ldy, __mmask16 last) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) tile<KB, O, 4, RN>(p, pstride, nkb, x + r * nb32, nb32, y + r * ldy, ldy, last);
  switch (n_rows - r) {
    case 3:
      tile<KB, O, 3, RN>(p, pstride, nkb, x + r * nb32, nb32, y + r * ldy, ldy, last);
      break;
    case 2:
      tile<KB, O, 2, RN>(p, pstride, nkb, x + r * nb32, nb32, y + r * ldy, ldy, last);
      break;
    case 1:
      tile<KB, O, 1, RN>(p, pstride, nkb, x + r * nb32, nb32, y + r * ldy, ldy, last);
      break;
    default:
      break;
  }
}

// Pairs of panels (a pair's quants, 2 x nkb x kBB bytes, stay in L1) against every activation row.
template <int KB, int O>
void gemm_panels(const uint8_t* panels, int64_t n_panels, int64_t n_cols, int64_t n_in, const GemmAct* act,
                 int64_t n_rows, float* y, int64_t ldy) {
  constexpr int64_t kBB = panel_block_bytes(KB, O == 0);
  const int64_t nkb = n_in / KB, pstride = nkb * kBB, nb32 = n_in / 32;
  for (int64_t p = 0; p < n_panels; p += 2) {
    const int64_t left = n_cols - 16 * p;  // columns from this pair's first on
    const bool two = p + 1 < n_panels;
    const int64_t in_last = two ? left - 16 : left;
    const __mmask16 last = in_last >= 16 ? 0xFFFF : (__mmask16)((1u << in_last) - 1);
    if (two)
      tile_rows<KB, O, 2>(panels + p * pstride, pstride, nkb, act, nb32, n_rows, y + 16 * p, ldy, last);
    else
      tile_rows<KB, O, 1>(panels + p * pstride, pstride, nkb, act, nb32, n_rows, y + 16 * p, ldy, last);
  }
}

void gemm(GgmlType t, const uint8_t* panels, int64_t n_panels, int64_t n_cols, int64_t n_in, const GemmAct* act,
          int64_t n_rows, float* y, int64_t ldy) {
  with_block_and_offset(t, [&](auto kb, auto o) {
    gemm_panels<decltype(kb)::value, decltype(o)::value>(panels, n_panels, n_cols, n_in, act, n_rows, y, ldy);
  });
}

}  // namespace

const GemmI8Ops kAvx512GemmI8Ops{pack_panel, quantize, gemm};

}  // namespace shadowkv::simd
