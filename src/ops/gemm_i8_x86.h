// Private to the int8 GEMM backends (gemm_i8_avx2.cpp, gemm_i8_avx512.cpp): GGUF rows into panels (plain C++) and
// activation rows into GemmAct blocks (AVX2), compiled into each backend's file with its flags; only called after a
// CPU check.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "ops/f16.h"
#include "ops/gemm_i8.h"
#include "ops/quant_dispatch.h"

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
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n_rows * (n_in / 32); ++i, x += 32) {
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k] = _mm256_loadu_ps(x + 8 * k)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    const float mx = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    const __m256 id = _mm256_set1_ps(mx > 0 ? 127.0f / mx : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
    GemmAct& a = act[i];
    for (int h = 0; h < 2; ++h) {  // each half's sum
      const __m256i s = _mm256_add_epi32(q[2 * h], q[2 * h + 1]);
      __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
      a.s16[h] = (int16_t)_mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1)));
    }
    // The packs work per 128-bit lane; the permutation restores element order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256((__m256i*)a.qs, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    a.s32 = a.s16[0] + a.s16[1];
    a.d = mx / 127.0f;
    a.m = a.d * (float)a.s32;
  }
}

// Calls fn(kb, o) with t's panel block width and fixed offset (gemm_block, gemm_offset) as std::integral_constants,
// so that a kernel can take them as template arguments.
template <class Fn>
void with_block_and_offset(GgmlType t, Fn&& fn) {
  using std::integral_constant;
  switch (gemm_offset(t)) {
    case 0:
      return fn(integral_constant<int, 32>{}, integral_constant<int, 0>{});
    case 8:
      return fn(integral_constant<int, 32>{}, integral_constant<int, 8>{});
    case 16:
      return fn(integral_constant<int, 32>{}, integral_constant<int, 16>{});
    case 128:
      return fn(integral_constant<int, 32>{}, integral_constant<int, 128>{});
    default:  // Q6_K
      return fn(integral_constant<int, 16>{}, integral_constant<int, 32>{});
  }
}

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace
}  // namespace shadowkv::simd
