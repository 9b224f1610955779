// The AVX2 int8 GEMM of prefill (gemm_i8.h): vpdpbusd's sums from maddubs (u8 x s8 -> s16 pairs) and madd (-> s32),
// 2 activation rows x one panel of 16 weight rows per pass; packing and quantisation from gemm_i8_x86.h.
//
// No s16 pair saturates: quants are at most 63 (Q6_K) against |x| <= 127, so two pairs' sums (<= 32004) are added
// in s16 before the madd. Q8_0's panels hold q + 128 (up to 255, which would saturate): its quants are turned back
// into signed q and multiplied as |q| x (x with q's sign) (<= 128 x 127 per product), with no offset to remove.
// Either way the int32 block sums are exact, so the results equal gemm_i8_reference's bit for bit.
#include <immintrin.h>

#include "ops/gemm_i8_x86.h"

namespace shadowkv::simd {
namespace {

// s16 pair sums of 4-quant group w (8 weight rows) against the broadcast activation group x.
template <int O>
inline __m256i pairs(__m256i w, __m256i x) {
  if constexpr (O == 128) {
    const __m256i q = _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80));
    return _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(x, q));
  } else {
    return _mm256_maddubs_epi16(w, x);
  }
}

// Stores the first n (<= 8) lanes of v at y.
inline void store_cols(float* y, __m256 v, int64_t n) {
  if (n >= 8) return _mm256_storeu_ps(y, v);
  if (n > 0)
    _mm256_maskstore_ps(y, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), v);
}

// Activation rows x[0..RM) (nb32 blocks apart) times panel p (its two halves of 8 weight rows), y[m * ldy + c] for
// c < n_cols (<= 16). O as in the AVX-512 kernel: the fixed offset, a compile-time constant; 0 for panels with mins.
template <int KB, int O, int RM>
void tile(const uint8_t* p, int64_t nkb, const GemmAct* x, int64_t nb32, float* y, int64_t ldy, int64_t n_cols) {
  constexpr int64_t kBB = panel_block_bytes(KB, O == 0);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 f[RM][2];
  for (int m = 0; m < RM; ++m) f[m][0] = f[m][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nkb; ++b, p += kBB) {
    const int64_t bx = KB == 32 ? b : b / 2;
    const int h = KB == 32 ? 0 : (int)(b % 2);
    __m256i a[RM][2];
    for (int m = 0; m < RM; ++m) {
      const GemmAct& xa = x[m * nb32 + bx];
      a[m][0] = a[m][1] = _mm256_set1_epi32(O && O != 128 ? -O * (KB == 32 ? xa.s32 : xa.s16[h]) : 0);
    }
    for (int g = 0; g < KB / 4; g += 2) {  // groups g and g + 1; w[k][n]: group g + k, weight rows 8n..8n+7
      __m256i w[2][2];
      for (int k = 0; k < 2; ++k)
        for (int n = 0; n < 2; ++n) w[k][n] = _mm256_loadu_si256((const __m256i*)(p + 64 * (g + k) + 32 * n));
      for (int m = 0; m < RM; ++m) {
        const int8_t* qs = x[m * nb32 + bx].qs + 16 * h + 4 * g;
        const __m256i x0 = _mm256_set1_epi32(load4(qs)), x1 = _mm256_set1_epi32(load4(qs + 4));
        for (int n = 0; n < 2; ++n) {
          const __m256i p0 = pairs<O>(w[0][n], x0), p1 = pairs<O>(w[1][n], x1);
          if (O == 128)  // pairs of up to 32512: one madd each
            a[m][n] =
                _mm256_add_epi32(a[m][n], _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones)));
          else
            a[m][n] = _mm256_add_epi32(a[m][n], _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones));
        }
      }
    }
    for (int n = 0; n < 2; ++n) {
      const __m256 ws = _mm256_loadu_ps((const float*)(p + kPanelRows * KB) + 8 * n);
      const __m256 wm = O ? _mm256_setzero_ps() : _mm256_loadu_ps((const float*)(p + kPanelRows * KB + 64) + 8 * n);
      for (int m = 0; m < RM; ++m) {
        const GemmAct& xa = x[m * nb32 + bx];
        f[m][n] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a[m][n]), _mm256_set1_ps(xa.d)), ws, f[m][n]);
        if (!O) f[m][n] = _mm256_fnmadd_ps(wm, _mm256_set1_ps(xa.m), f[m][n]);
      }
    }
  }
  for (int m = 0; m < RM; ++m) {
    store_cols(y + m * ldy, f[m][0], n_cols);
    store_cols(y + m * ldy + 8, f[m][1], n_cols - 8);
  }
}

// One panel at a time (its quants stay in L1 or L2) against every activation row, two rows per pass.
template <int KB, int O>
void gemm_panels(const uint8_t* panels, int64_t n_panels, int64_t n_cols, int64_t n_in, const GemmAct* act,
                 int64_t n_rows, float* y, int64_t ldy) {
  constexpr int64_t kBB = panel_block_bytes(KB, O == 0);
  const int64_t nkb = n_in / KB, pstride = nkb * kBB, nb32 = n_in / 32;
  for (int64_t p = 0; p < n_panels; ++p) {
    const int64_t cols = std::min<int64_t>(16, n_cols - 16 * p);
    const uint8_t* panel = panels + p * pstride;
    int64_t r = 0;
    for (; r + 2 <= n_rows; r += 2) tile<KB, O, 2>(panel, nkb, act + r * nb32, nb32, y + r * ldy + 16 * p, ldy, cols);
    if (r < n_rows) tile<KB, O, 1>(panel, nkb, act + r * nb32, nb32, y + r * ldy + 16 * p, ldy, cols);
  }
}

void gemm(GgmlType t, const uint8_t* panels, int64_t n_panels, int64_t n_cols, int64_t n_in, const GemmAct* act,
          int64_t n_rows, float* y, int64_t ldy) {
  with_block_and_offset(t, [&](auto kb, auto o) {
    gemm_panels<decltype(kb)::value, decltype(o)::value>(panels, n_panels, n_cols, n_in, act, n_rows, y, ldy);
  });
}

}  // namespace

const GemmI8Ops kAvx2GemmI8Ops{pack_panel, quantize, gemm};

}  // namespace shadowkv::simd
