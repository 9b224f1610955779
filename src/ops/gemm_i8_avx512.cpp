// The AVX-512 VNNI int8 GEMM of prefill (gemm_i8.h): panel packing, activation quantisation and the register-blocked
// kernel (4 activation rows x 2 panels of 16 weight rows per pass, the int32 sums of one block in 8 registers).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ops/f16.h"
#include "ops/gemm_i8.h"
#include "ops/quant_dispatch.h"

// GCC 12's _mm512_cvtepi32_ps and _mm512_reduce_* pass an "undefined" register that -Wmaybe-uninitialized reports
// inside the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace shadowkv::simd {
namespace {

// One GGUF block decoded: its elements' unsigned quants u, and per panel block (of gemm_block elements) ws and wm,
// with the products gguf-py's dequantisation forms (so ws * (u - o) or ws * u - wm is its value).
struct Decoded {
  uint8_t u[256];
  float ws[16], wm[16];
};

// Quants 0..15 from the low nibbles of q[0..16), 16..31 from the high ones, plus bit j of h as bit 4 when h is given.
inline void nibbles32(const uint8_t* q, const uint8_t* h, uint8_t* u) {
  uint32_t hb = 0;
  if (h) std::memcpy(&hb, h, 4);
  for (int j = 0; j < 16; ++j) {
    u[j] = (uint8_t)((q[j] & 0xF) | (h ? (hb >> j & 1) << 4 : 0));
    u[j + 16] = (uint8_t)((q[j] >> 4) | (h ? (hb >> (j + 16) & 1) << 4 : 0));
  }
}

void decode_k45(const uint8_t* b, bool q5, Decoded& o) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  const uint8_t* qh = q5 ? b + 16 : nullptr;
  const uint8_t* qs = b + (q5 ? 48 : 16);
  for (int s = 0; s < 8; ++s) {
    int sc, mn;
    kscale(b + 4, s, &sc, &mn);
    o.ws[s] = d * (float)sc;
    o.wm[s] = dmin * (float)mn;
    for (int l = 0; l < 32; ++l) {
      const uint8_t v = qs[32 * (s / 2) + l];
      o.u[32 * s + l] = (uint8_t)((s % 2 ? v >> 4 : v & 0xF) | (qh ? (qh[l] >> s & 1) << 4 : 0));
    }
  }
}

void decode_q6_k(const uint8_t* b, Decoded& o) {
  const float d = load_f16(b + 208);
  for (int i = 0; i < 16; ++i) o.ws[i] = d * (float)(int8_t)b[192 + i];
  for (int n = 0; n < 2; ++n) {
    const uint8_t* l8 = b + 64 * n;
    const uint8_t* h8 = b + 128 + 32 * n;
    uint8_t* u = o.u + 128 * n;
    for (int l = 0; l < 32; ++l) {
      u[l] = (uint8_t)((l8[l] & 0xF) | ((h8[l] & 3) << 4));
      u[l + 32] = (uint8_t)((l8[l + 32] & 0xF) | ((h8[l] >> 2 & 3) << 4));
      u[l + 64] = (uint8_t)((l8[l] >> 4) | ((h8[l] >> 4 & 3) << 4));
      u[l + 96] = (uint8_t)((l8[l + 32] >> 4) | ((h8[l] >> 6 & 3) << 4));
    }
  }
}

// GGUF block b of type t into o; returns the number of elements it holds.
int decode_block(GgmlType t, const uint8_t* b, Decoded& o) {
  switch (t) {
    case GgmlType::Q8_0:
      o.ws[0] = load_f16(b);
      for (int j = 0; j < 32; ++j) o.u[j] = b[2 + j] ^ 0x80;
      return 32;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
      o.ws[0] = load_f16(b);
      nibbles32(b + (t == GgmlType::Q4_0 ? 2 : 6), t == GgmlType::Q4_0 ? nullptr : b + 2, o.u);
      return 32;
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
      o.ws[0] = load_f16(b);
      o.wm[0] = -load_f16(b + 2);
      nibbles32(b + (t == GgmlType::Q4_1 ? 4 : 8), t == GgmlType::Q4_1 ? nullptr : b + 4, o.u);
      return 32;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      decode_k45(b, t == GgmlType::Q5_K, o);
      return 256;
    default:  // Q6_K
      decode_q6_k(b, o);
      return 256;
  }
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Row r of a panel from a Q4_0/Q5_0 row in pack_q32_runs' layout, whose four-quant groups are the panel's already
// (quants 4g..4g+3 of a block: nibbles of plane g / 2, bit g of the bit-4 plane).
void put_q32_runs_row(GgmlType t, const uint8_t* row, int64_t nb, int r, uint8_t* panel) {
  const bool q5 = t == GgmlType::Q5_0;
  const int64_t bb = gemm_block_bytes(t);
  for (int64_t j = 0; 8 * j < nb; ++j) {
    const uint8_t* run = row + 8 * q32_block_bytes(t) * j;
    const int nt = (int)std::min<int64_t>(8, nb - 8 * j);
    for (int b = 0; b < nt; ++b) {
      uint8_t* p = panel + (8 * j + b) * bb;
      const float ws = load_f16(run + 2 * b);
      std::memcpy(p + kPanelRows * 32 + 4 * r, &ws, 4);
      const uint32_t hb = q5 ? load_u32(run + 18 * nt + 4 * b) : 0;
      for (int g = 0; g < 8; ++g) {
        const uint32_t v = load_u32(run + packed_q32_plane(nt, g / 2) + 4 * b);
        const uint32_t u = ((g % 2 ? v >> 4 : v) & 0x0F0F0F0F) | (((hb >> g) & 0x01010101) << 4);
        std::memcpy(p + 64 * g + 4 * r, &u, 4);
      }
    }
  }
}

void pack_panel(GgmlType t, const uint8_t* const* rows, bool q32_runs, int n, int64_t n_in, uint8_t* panel) {
  const int kb = gemm_block(t), o = gemm_offset(t);
  const int64_t bb = gemm_block_bytes(t);
  std::memset(panel, 0, gemm_panel_bytes(t, n_in));
  if (q32_runs) {
    for (int r = 0; r < n; ++r) put_q32_runs_row(t, rows[r], n_in / 32, r, panel);
    return;
  }
  const TypeTraits& tt = traits(t);
  Decoded d;
  for (int r = 0; r < n; ++r)
    for (int64_t i = 0; i < n_in / tt.block_elems; ++i) {
      const int elems = decode_block(t, rows[r] + i * tt.block_bytes, d);
      for (int s = 0; s < elems / kb; ++s) {
        uint8_t* p = panel + (i * elems / kb + s) * bb;
        for (int g = 0; g < kb / 4; ++g) std::memcpy(p + 64 * g + 4 * r, d.u + kb * s + 4 * g, 4);
        std::memcpy(p + kPanelRows * kb + 4 * r, &d.ws[s], 4);
        if (!o) std::memcpy(p + kPanelRows * kb + 64 + 4 * r, &d.wm[s], 4);
      }
    }
}

// Rows of x quantised per block of 32 as the decode kernels do it (d = amax / 127, round to nearest even).
void quantize(const float* x, int64_t n_rows, int64_t n_in, GemmAct* act) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t i = 0; i < n_rows * (n_in / 32); ++i, x += 32) {
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    const float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1)));
    const __m512 id = _mm512_set1_ps(m > 0 ? 127.0f / m : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, id));
    GemmAct& a = act[i];
    _mm_storeu_si128((__m128i*)a.qs, _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128((__m128i*)(a.qs + 16), _mm512_cvtsepi32_epi8(q1));
    a.s16[0] = (int16_t)_mm512_reduce_add_epi32(q0);
    a.s16[1] = (int16_t)_mm512_reduce_add_epi32(q1);
    a.s32 = a.s16[0] + a.s16[1];
    a.d = m / 127.0f;
    a.m = a.d * (float)a.s32;
  }
}

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

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
  switch (gemm_offset(t)) {
    case 0:
      return gemm_panels<32, 0>(panels, n_panels, n_cols, n_in, act, n_rows, y, ldy);
    case 8:
      return gemm_panels<32, 8>(panels, n_panels, n_cols, n_in, act, n_rows, y, ldy);
    case 16:
      return gemm_panels<32, 16>(panels, n_panels, n_cols, n_in, act, n_rows, y, ldy);
    case 128:
      return gemm_panels<32, 128>(panels, n_panels, n_cols, n_in, act, n_rows, y, ldy);
    default:  // Q6_K
      return gemm_panels<16, 32>(panels, n_panels, n_cols, n_in, act, n_rows, y, ldy);
  }
}

}  // namespace

const GemmI8Ops kAvx512GemmI8Ops{pack_panel, quantize, gemm};

}  // namespace shadowkv::simd
