// The x86 quant kernels, private to src/ops: included by quant_avx2.cpp (built with -mavx2 -mfma -mf16c) and
// quant_avx512.cpp (also AVX-512 BW/VL/VNNI), each of which defines its backend's table from them; only called
// after a CPU check.
//
// Dot products follow the llama.cpp idea: x is quantised once per matvec to int8 blocks (32 or 256 wide), then each
// weight block is unpacked to bytes and multiplied with maddubs (u8 x s8 -> s16 pairs) and madd (-> s32), with a
// single f32 scale per block; with AVX-512 VNNI one vpdpbusd (u8 x s8 -> s32, no s16 step) does both. No s16 pair
// sum here can saturate, so both give the same int32 sums and the two backends' results are bit-identical.
// Dequantisation keeps gguf-py's f32 operation order so it stays bit-exact.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/quant_dispatch.h"

namespace shadowkv::simd {
namespace {

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// An empty asm after each update of a row's int32 sum in the dot kernels below keeps it a running sum: with AVX2's
// 16 vector registers, GCC otherwise keeps a row's products apart to add them at the end, and spills them to the
// stack (Quant/batch8 in README session 37). The AVX-512 build (32 registers), which that session could not time,
// keeps the compiler's schedule.
#ifdef __AVX512F__
constexpr bool kPinSums = false;
#else
constexpr bool kPinSums = true;
#endif
template <int NR>
inline void pin_sum(__m256i& v) {
  if constexpr (NR > 1 && kPinSums) asm("" : "+x"(v));
}

// Keeps the compiler from contracting a product and a following add into one FMA (that would change the bits).
inline __m256 opaque(__m256 v) {
  asm("" : "+x"(v));
  return v;
}

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i loadu(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }

// Rows r[b] -> columns: afterwards lane b of r[m] is what lane m of r[b] was.
inline void transpose8_epi32(__m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm256_permute2x128_si256(u[m], u[4 + m], 0x20);
    r[m + 4] = _mm256_permute2x128_si256(u[m], u[4 + m], 0x31);
  }
}

// 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high nibbles in bytes 16..31 (the block order of
// Q4_0/Q4_1/Q5_0/Q5_1).
inline __m256i unpack_nibbles16(const uint8_t* p) {
  const __m128i t = _mm_loadu_si128((const __m128i*)p);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

// Byte j = 0xFF if bit j of the 32-bit word is set, else 0.
inline __m256i bits_to_bytes(const uint8_t* p) {
  uint32_t h;
  std::memcpy(&h, p, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);    // byte j holds byte j/8 of h
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));  // all bits but bit j%8 set
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// v + the lane-wise dot of unsigned u (< 64) and signed x, by groups of four bytes (no s16 pair sum saturates).
inline __m256i u8_dot_acc(__m256i v, __m256i u, __m256i x) {
#ifdef __AVX512VNNI__
  return _mm256_dpbusd_epi32(v, u, x);
#else
  return _mm256_add_epi32(v, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
#endif
}
// Unsigned int8 (< 64) x signed int8, summed in groups of four -> 8 int32.
inline __m256i dot_u8(__m256i u, __m256i x) { return u8_dot_acc(_mm256_setzero_si256(), u, x); }
// A Q8_0 weight block's signed quants w against an activation block x -> 8 int32 lanes that sum to the block's dot
// product, plus, with VNNI, 128 * sum(x), which the caller takes off per run (ActQ8x32x8::offset). AVX2: maddubs of
// |w| <= 128 and x with w's sign; activation quants stay within +-127 (quantize32), so no s16 pair sum saturates
// (2 * 128 * 127 < 32768). VNNI: w + 128 as u8 times x in one vpdpbusd, exact in int32. The two give the same
// block sums, so the backends' results are bit-identical.
inline __m256i dot_q8(__m256i w, __m256i x) {
#ifdef __AVX512VNNI__
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)), x);
#else
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
#endif
}
// Lanes of a run's block sums from dot_q8 -> the exact block dot products.
inline __m256i q8_offset_off(__m256i v, const ActQ8x32x8& a) {
#ifdef __AVX512VNNI__
  return _mm256_sub_epi32(v, _mm256_loadu_si256((const __m256i*)a.offset));
#else
  (void)a;
  return v;
#endif
}

// Stores 32 signed bytes as floats: the first 16 times d0, the last 16 times d1.
inline void store_scaled(__m256i q, __m256 d0, __m256 d1, float* y) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  _mm256_storeu_ps(y + 0, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d0));
  _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d0));
  _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d1));
  _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d1));
}

// Stores 32 bytes (0..31) as d * q - m (rounded after each operation, like numpy).
inline void store_affine(__m256i q, __m256 d, __m256 m, float* y) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int k = 0; k < 4; ++k) {
    const __m256 v = opaque(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k])), d));
    _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(v, m));
  }
}

inline void kscales(const uint8_t* s, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 0xF) | ((s[j] >> 6) << 4);
    mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

// The four 32-byte groups of 6-bit values (0..63) of one Q6_K half, in element order.
inline void q6_unpack(const uint8_t* ql, const uint8_t* qh, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
  const __m256i l0 = loadu(ql), l1 = loadu(ql + 32), h = loadu(qh);
  q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m3), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m3), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m3), 4));
}

// ---- dequantisation ----

void dequantize(GgmlType t, const void* src, float* y, int64_t n) {
  const uint8_t* b = (const uint8_t*)src;
  switch (t) {
    case GgmlType::F16: {
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(b + 2 * i))));
      if (i < n) kScalarQuantOps.dequantize(t, b + 2 * i, y + i, n - i);
      return;
    }
    case GgmlType::BF16: {
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(b + 2 * i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
      }
      if (i < n) kScalarQuantOps.dequantize(t, b + 2 * i, y + i, n - i);
      return;
    }
    case GgmlType::Q8_0:
      for (int64_t i = 0; i < n / 32; ++i, b += 34, y += 32) {
        const __m256 d = _mm256_set1_ps(half(b));
        store_scaled(loadu(b + 2), d, d, y);
      }
      return;
    case GgmlType::Q4_0:
      for (int64_t i = 0; i < n / 32; ++i, b += 18, y += 32) {
        const __m256 d = _mm256_set1_ps(half(b));
        store_scaled(_mm256_sub_epi8(unpack_nibbles16(b + 2), _mm256_set1_epi8(8)), d, d, y);
      }
      return;
    case GgmlType::Q5_0:
      for (int64_t i = 0; i < n / 32; ++i, b += 22, y += 32) {
        const __m256 d = _mm256_set1_ps(half(b));
        // (nibble | bit4) - 16 == nibble | 0xF0 as int8 when the 5th bit is clear, else nibble.
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes(b + 2), _mm256_set1_epi8((char)0xF0));
        store_scaled(_mm256_or_si256(unpack_nibbles16(b + 6), hi), d, d, y);
      }
      return;
    case GgmlType::Q4_K:
      for (int64_t i = 0; i < n / 256; ++i, b += 144, y += 256) {
        const float d = half(b), dmin = half(b + 2);
        uint8_t sc[8], mn[8];
        kscales(b + 4, sc, mn);
        for (int c = 0; c < 4; ++c) {
          const __m256i q = loadu(b + 16 + 32 * c);
          const __m256i lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0F));
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0F));
          store_affine(lo, _mm256_set1_ps(d * (float)sc[2 * c]), _mm256_set1_ps(dmin * (float)mn[2 * c]), y + 64 * c);
          store_affine(hi, _mm256_set1_ps(d * (float)sc[2 * c + 1]), _mm256_set1_ps(dmin * (float)mn[2 * c + 1]),
                       y + 64 * c + 32);
        }
      }
      return;
    case GgmlType::Q6_K:
      for (int64_t i = 0; i < n / 256; ++i, b += 210, y += 256) {
        const float d = half(b + 208);
        const int8_t* sc = (const int8_t*)(b + 192);
        for (int h = 0; h < 2; ++h) {
          __m256i q[4];
          q6_unpack(b + 64 * h, b + 128 + 32 * h, q);
          for (int k = 0; k < 4; ++k) {
            const int s = 8 * h + 2 * k;
            store_scaled(_mm256_sub_epi8(q[k], _mm256_set1_epi8(32)), _mm256_set1_ps(d * (float)sc[s]),
                         _mm256_set1_ps(d * (float)sc[s + 1]), y + 128 * h + 32 * k);
          }
        }
      }
      return;
    default:
      kScalarQuantOps.dequantize(t, src, y, n);
      return;
  }
}

// ---- activation quantisation ----

ActKind act_kind(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
      return ActKind::kQ8x32;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
      return ActKind::kQ8x32x8i;
    case GgmlType::Q8_0:
      return ActKind::kQ8x32x8;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return ActKind::kQ8x256;
    default:
      return ActKind::kNone;
  }
}

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

inline float hmax_ps(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Rounds 32 floats times id to int8 (round to nearest even), stores them in order and returns their sum.
inline int quantize32(const float* x, __m256 id, int8_t* out) {
  __m256i q[4];
  for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
  const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  const __m256i p16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  // The packs work per 128-bit lane; this restores element order.
  const __m256i p = _mm256_permutevar8x32_epi32(p16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256((__m256i*)out, p);
  return sum;
}

inline float amax(const float* x, int64_t n) {
  __m256 m = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + i)));
  return hmax_ps(m);
}

// 32 values of x as int8 quants qs with scale d; returns sum(qs).
inline int quantize_block32(const float* x, int8_t* qs, float& d) {
  const float m = amax(x, 32);
  d = m / 127.0f;
  return quantize32(x, _mm256_set1_ps(m > 0 ? 127.0f / m : 0.0f), qs);
}

void quantize_act(ActKind k, const float* x, void* act, int64_t n) {
  if (k == ActKind::kQ8x32) {
    ActQ8x32* a = (ActQ8x32*)act;
    for (int64_t i = 0; i < n / 32; ++i) {
      const int sum = quantize_block32(x + 32 * i, a[i].qs, a[i].d);
      a[i].s = a[i].d * (float)sum;
    }
  } else if (k == ActKind::kQ8x32x8 || k == ActKind::kQ8x32x8i) {
    ActQ8x32x8* a = (ActQ8x32x8*)act;
    const int64_t nb = n / 32;
    std::memset((void*)(a + nb / 8), 0, act_bytes(k, n) - nb / 8 * sizeof(ActQ8x32x8));  // the padded last group
    for (int64_t i = 0; i < nb; ++i) {
      ActQ8x32x8& g = a[i / 8];
      g.offset[i % 8] = 128 * quantize_block32(x + 32 * i, g.qs + 32 * (i % 8), g.d[i % 8]);
    }
    if (k == ActKind::kQ8x32x8i)
      for (int64_t j = 0; j < (nb + 7) / 8; ++j) {
        __m256i v[8];
        for (int b = 0; b < 8; ++b) v[b] = loadu(a[j].qs + 32 * b);
        transpose8_epi32(v);
        for (int m = 0; m < 8; ++m) _mm256_storeu_si256((__m256i*)(a[j].qs + 32 * m), v[m]);
      }
  } else if (k == ActKind::kQ8x256) {
    ActQ8x256* a = (ActQ8x256*)act;
    for (int64_t i = 0; i < n / 256; ++i, x += 256) {
      const float m = amax(x, 256);
      const __m256 id = _mm256_set1_ps(m > 0 ? 127.0f / m : 0.0f);
      a[i].d = m / 127.0f;
      for (int j = 0; j < 8; ++j) quantize32(x + 32 * j, id, a[i].qs + 32 * j);
      for (int j = 0; j < 16; ++j) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += a[i].qs[16 * j + l];
        a[i].bsums[j] = (int16_t)s;
      }
    }
  }
}

// ---- dot products ----
//
// Each kernel takes one weight row and NR (1..kMaxDotRows) activation rows: the weight blocks are loaded and
// unpacked once for all NR rows, and every row's arithmetic is exactly what the NR = 1 kernel does, so a row's
// result does not depend on how many rows share the pass.

template <class A>
inline const A* act_row(const void* act, int64_t stride, int r) {
  return (const A*)((const uint8_t*)act + r * stride);
}

// Q8_0. Every path (one activation row or several, the GGUF layout or pack_rows4's) computes a row the same way,
// so a row's result never depends on the path or the batch: per run of eight blocks (kQ8x32x8's groups), the exact
// int32 dot of each block lands in lane k = block k of the run (zero past the row's end), is converted to f32 and
// multiplied by (weight scale * activation scale) into one f32 accumulator per row (lanes kept apart), which is
// summed once at the end. Converting and scaling eight blocks at once, instead of each block's 8-lane vector,
// made eight activation rows (two passes of four) against the 178 MB Gemma head 1.27x faster on AVX2
// (Quant/batch8), at the same speed for one row.

// Lane k = the sum of the eight int32 lanes of block k's products; blocks k >= t count as zero.
inline __attribute__((always_inline)) __m256i run_dot(const uint8_t* q, int64_t bs, const int8_t* x, int t) {
  const auto blk = [&](int k) { return k < t ? dot_q8(loadu(q + bs * k), loadu(x + 32 * k)) : _mm256_setzero_si256(); };
  const __m256i lo = _mm256_hadd_epi32(_mm256_hadd_epi32(blk(0), blk(1)), _mm256_hadd_epi32(blk(2), blk(3)));
  const __m256i hi = _mm256_hadd_epi32(_mm256_hadd_epi32(blk(4), blk(5)), _mm256_hadd_epi32(blk(6), blk(7)));
  return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31));
}

// A run's f16 weight scales (lanes >= t zero) given as eight halves in h.
inline __m256 run_scales(__m128i h, int t) {
  const __m128i keep = _mm_cmpgt_epi16(_mm_set1_epi16((short)t), _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_cvtph_ps(_mm_and_si128(h, keep));
}

// Where one Q8_0 row's runs are. GGUF layout: block i's scale at 34 i, its quants 2 bytes on.
struct GgufQ8Row {
  const uint8_t* w;
  const uint8_t* quants(int64_t j, int) const { return w + 34 * 8 * j + 2; }
  static constexpr int64_t kStride = 34;
  __m256 scales(int64_t j, int t) const {  // eight scalar inserts: a store of eight halves would stall the load
    const uint8_t* b = w + 34 * 8 * j;
    const auto h = [&](int k) {
      uint16_t v = 0;
      if (k < t) std::memcpy(&v, b + 34 * k, 2);
      return (short)v;
    };
    return _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)));
  }
};
// Blocks in run j of a row of nb blocks.
inline int run_blocks(int64_t nb, int64_t j) { return nb - 8 * j < 8 ? (int)(nb - 8 * j) : 8; }

// The f16 scales of row k of a pack_rows4 group at p (packed_q8_0_scale gives the layout).
struct PackedQ8Scales {
  const uint8_t* p;
  int k;
  __m256 scales(int64_t j, int t) const {  // 16 bytes from the run's scales stay inside the run (136 t bytes)
    return run_scales(_mm_loadu_si128((const __m128i*)(p + kPackedRunBytes * j + 2 * t * k)), t);
  }
};

// A packed head is read as one sequence of runs, but the hardware prefetcher alone left two threads at
// 12-14 GB/s on the 178 MB Gemma head (Xeon family 6 model 207). Fetching the run 4 KB ahead as each run starts
// made one activation row 2.5x faster there (Quant/matvec .../packed4: 11.9 -> 4.6 ms) and eight rows 1.2x.
// Into L2 (T1), not L1: in the model, between other layers' work, a Xeon of family 6 model 167 decoded at 512
// tokens 12% faster with T1 than with T0 (bench --lengths 512 --batch 1, three alternating runs: 65.2-66.4 against
// 57.3-59.5 tok/s); likely because a miss into L1 holds one of its few fill buffers for the whole trip to DRAM.
constexpr int kPackedAheadBytes = 4096;
inline void prefetch_packed_run(const uint8_t* p, int64_t j) {
  const char* ahead = (const char*)p + kPackedRunBytes * j + kPackedAheadBytes;
  for (int l = 0; l < kPackedRunBytes; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T1);
}

// Vector m of row k's quants in run j of a pack_rows4 group (packed_q8_0_quad): quants 4m..4m+3 of block b in
// lane b, lanes >= t zero.
inline __m256i packed_quads(const uint8_t* p, int64_t j, int t, int k, int m) {
  const uint8_t* q = p + kPackedRunBytes * j + 8 * t + 32 * t * k + 4 * t * m;
  if (t == 8) return loadu(q);
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(t), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_epi32((const int*)q, keep);
}
// Weight quants as q8_dot_acc takes them: + 128 as u8 for VNNI (once for all activation rows), as they are for AVX2.
inline __m256i q8_weights(__m256i w) {
#ifdef __AVX512VNNI__
  return _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80));
#else
  return w;
#endif
}
// v + dot_q8 of the weights (q8_weights' form) and x, lane by lane.
inline __m256i q8_dot_acc(__m256i v, __m256i w, __m256i x) {
#ifdef __AVX512VNNI__
  return _mm256_dpbusd_epi32(v, w, x);
#else
  return _mm256_add_epi32(v, dot_q8(w, x));
#endif
}

// packed_run takes this many of a run's eight quad vectors at a time (see there).
constexpr int kQuadsAtOnce = 2;
// Adds run j (t blocks) of the four rows of the packed group at p, against NR activation rows in interleave_runs'
// form, to acc[k][r]. The weights and activations are interleaved by fours, so eight lane-wise dots leave block b's
// exact sum in lane b with no horizontal adds: the same int32 lanes as run_dot, scaled and accumulated as q8_0_run.
template <int NR>
inline __attribute__((always_inline)) void packed_run(const uint8_t* p, int64_t j, int t, const void* act, int64_t as,
                                                      __m256 (*acc)[NR]) {
  for (int k = 0; k < 4; ++k) {
    __m256i v[NR];
    for (int r = 0; r < NR; ++r) v[r] = _mm256_setzero_si256();
    // Two of the run's eight quad vectors at a time, so that they (and, on AVX2, their magnitudes) stay in
    // registers while every activation row passes: all eight at once spilled them to the stack. Batch-8 vocabulary
    // head on one thread (Quant/batch8/Q8_0/vocab_640x262144/avx2/t1/packed, six alternating runs, AMD EPYC Zen 3):
    // 42.0-56.8 ms against 48.2-73.8 before; one row 13.6-16.4 against 14.0-17.5. The int32 sums are exact, so
    // the order changes no result.
    for (int h = 0; h < 8; h += kQuadsAtOnce) {
      __m256i w[kQuadsAtOnce];
      for (int m = 0; m < kQuadsAtOnce; ++m) w[m] = q8_weights(packed_quads(p, j, t, k, h + m));
      for (int r = 0; r < NR; ++r) {
        const int8_t* x = act_row<ActQ8x32x8>(act, as, r)[j].qs + 32 * h;
        for (int m = 0; m < kQuadsAtOnce; ++m) v[r] = q8_dot_acc(v[r], w[m], loadu(x + 32 * m));
        pin_sum<NR>(v[r]);
      }
    }
    const __m256 dw = PackedQ8Scales{p, k}.scales(j, t);
    for (int r = 0; r < NR; ++r) {
      const ActQ8x32x8& a = act_row<ActQ8x32x8>(act, as, r)[j];
      acc[k][r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_loadu_ps(a.d)), _mm256_cvtepi32_ps(q8_offset_off(v[r], a)),
                                  acc[k][r]);
    }
  }
}

// NR activation rows (interleave_runs' form) against the four rows of the packed group at p, run by run, so the
// group streams in order: out[k * NR + r] = row k . activation row r, with dot_q8_0_row's arithmetic.
template <int NR>
inline void dot_q8_0_group(const uint8_t* p, const void* act, int64_t as, int64_t nb, float* out) {
  __m256 acc[4][NR];
  for (int k = 0; k < 4; ++k)
    for (int r = 0; r < NR; ++r) acc[k][r] = _mm256_setzero_ps();
  for (int64_t j = 0; 8 * j < nb; ++j) {
    const int t = run_blocks(nb, j);
    prefetch_packed_run(p, j);
    if (t == 8)
      packed_run<NR>(p, j, 8, act, as, acc);
    else
      packed_run<NR>(p, j, t, act, as, acc);
  }
  for (int k = 0; k < 4; ++k)
    for (int r = 0; r < NR; ++r) out[k * NR + r] = hsum_ps(acc[k][r]);
}

// kQ8x32x8 activation rows with each run's quants interleaved by fours as pack_rows4 interleaves the weights':
// quants 4m..4m+3 of block b at 32 m + 4 b.
inline void interleave_runs(const void* act, int64_t as, int nr, int64_t nb, std::vector<ActQ8x32x8>& out) {
  const int64_t runs = (nb + 7) / 8;
  out.resize(nr * runs);
  for (int r = 0; r < nr; ++r)
    for (int64_t j = 0; j < runs; ++j) {
      const ActQ8x32x8& a = act_row<ActQ8x32x8>(act, as, r)[j];
      ActQ8x32x8& o = out[r * runs + j];
      std::memcpy(o.d, a.d, sizeof(a.d));
      std::memcpy(o.offset, a.offset, sizeof(a.offset));
      for (int b = 0; b < 8; ++b)
        for (int m = 0; m < 8; ++m) std::memcpy(o.qs + 32 * m + 4 * b, a.qs + 32 * b + 4 * m, 4);
    }
}

// Adds run j (t blocks) of one Q8_0 row in layout R, against NR activation rows (kQ8x32x8), to acc[0..NR).
template <int NR, class R>
inline __attribute__((always_inline)) void q8_0_run(const R& row, int64_t j, int t, const void* act, int64_t as,
                                                    __m256* acc) {
  const __m256 dw = row.scales(j, t);
  const uint8_t* q = row.quants(j, t);
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const ActQ8x32x8& a = act_row<ActQ8x32x8>(act, as, r)[j];
    const __m256i v = q8_offset_off(run_dot(q, R::kStride, a.qs, t), a);
    acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_loadu_ps(a.d)), _mm256_cvtepi32_ps(v), acc[r]);
  }
}

// NR f32 accumulators over the runs of a row of nb blocks: add(j, t, acc) adds run j of t blocks (a whole run
// passes the constant 8, so that case is compiled on its own), then out[r] = the horizontal sum of acc[r].
template <int NR, class Add>
inline __attribute__((always_inline)) void sum_runs(int64_t nb, float* out, const Add& add) {
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t j = 0; 8 * j < nb; ++j) {
    const int t = run_blocks(nb, j);
    if (t == 8)
      add(j, 8, acc);
    else
      add(j, t, acc);
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum_ps(acc[r]);
}

// NR activation rows against one Q8_0 row in layout R.
template <int NR, class R>
inline void dot_q8_0_row(const R& row, const void* act, int64_t as, int64_t nb, float* out) {
  sum_runs<NR>(
      nb, out, [&](int64_t j, int t, __m256* acc) __attribute__((always_inline)) {
        q8_0_run<NR>(row, j, t, act, as, acc);
      });
}

// run_dot for four rows (row k's block b at q[k] + bs * b) and one activation row: each activation block is
// loaded once for the four rows.
inline __attribute__((always_inline)) void run_dot4(const uint8_t* const q[4], int64_t bs, const int8_t* x, int t,
                                                    __m256i v[4]) {
  const auto blk = [&](int b, int k, __m256i xb) {
    return b < t ? dot_q8(loadu(q[k] + bs * b), xb) : _mm256_setzero_si256();
  };
  __m256i half[2][4];
  for (int h = 0; h < 2; ++h) {
    const int b = 4 * h;
    __m256i pair[4];
    const __m256i x0 = loadu(x + 32 * b), x1 = loadu(x + 32 * (b + 1));
    for (int k = 0; k < 4; ++k) pair[k] = _mm256_hadd_epi32(blk(b, k, x0), blk(b + 1, k, x1));
    const __m256i x2 = loadu(x + 32 * (b + 2)), x3 = loadu(x + 32 * (b + 3));
    for (int k = 0; k < 4; ++k)
      half[h][k] = _mm256_hadd_epi32(pair[k], _mm256_hadd_epi32(blk(b + 2, k, x2), blk(b + 3, k, x3)));
  }
  for (int k = 0; k < 4; ++k)
    v[k] = _mm256_add_epi32(_mm256_permute2x128_si256(half[0][k], half[1][k], 0x20),
                            _mm256_permute2x128_si256(half[0][k], half[1][k], 0x31));
}

// One activation row against four Q8_0 rows (row(k) gives row k's layout): dot_q8_0_row<1>'s result for each,
// out[k] = row k . activation.
template <class Rows>
inline void dot_q8_0_four1(const Rows& row, const void* act, int64_t nb, float* out) {
  using R = decltype(row(0));
  const ActQ8x32x8* a = (const ActQ8x32x8*)act;
  __m256 acc[4];
  for (int k = 0; k < 4; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t j = 0; 8 * j < nb; ++j) {
    const int t = run_blocks(nb, j);
    const uint8_t* const q[4] = {row(0).quants(j, t), row(1).quants(j, t), row(2).quants(j, t), row(3).quants(j, t)};
    __m256i v[4];
    if (t == 8)
      run_dot4(q, R::kStride, a[j].qs, 8, v);
    else
      run_dot4(q, R::kStride, a[j].qs, t, v);
    const __m256 da = _mm256_loadu_ps(a[j].d);
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(row(k).scales(j, t), da), _mm256_cvtepi32_ps(q8_offset_off(v[k], a[j])),
                               acc[k]);
  }
  for (int k = 0; k < 4; ++k) out[k] = hsum_ps(acc[k]);
}

template <int NR>
void dot_q8_0(const uint8_t* w, const void* act, int64_t as, int64_t nb, float* out) {
  dot_q8_0_row<NR>(GgufQ8Row{w}, act, as, nb, out);
}

// Q4_0/Q4_1/Q5_0/Q5_1 blocks as unsigned 4/5-bit values (u8 x s8 dots need no sign fix-ups); the offset (-8, -16
// or the stored min) is applied apart.
template <GgmlType T>
inline __m256i block_u8(const uint8_t* w) {
  if constexpr (T == GgmlType::Q4_0) return unpack_nibbles16(w + 2);
  if constexpr (T == GgmlType::Q4_1) return unpack_nibbles16(w + 4);
  const int qh = T == GgmlType::Q5_0 ? 2 : 4;
  const __m256i hi = _mm256_and_si256(bits_to_bytes(w + qh), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(unpack_nibbles16(w + qh + 4), hi);
}

// Q4_1/Q5_1: the block's stored min, times d_x * sum(x_q) = a.s.
template <GgmlType T>
inline float block_min(const uint8_t* w) {
  return half(w + 2);
}

// Q4_0/Q5_0, in runs of eight blocks as Q8_0: the unsigned quants u (0..15 / 0..31) of a run, interleaved by fours
// as pack_q32_runs stores them (lane b of vector m: quants 4m..4m+3 of block b), meet kQ8x32x8i activations in
// eight lane-wise u8 x s8 dots, so lane b ends with sum(u x) of block b; minus 8 or 16 times sum(x) (the offset
// 128 sum(x), shifted) that is the exact int32 dot of the signed quants. Then, as for Q8_0, one f32 multiply by
// (weight scale * activation scale) and one FMA per run and row, one horizontal sum at the end. The GGUF layout
// is read the same way after an 8 x 8 transpose of each run's blocks, so both layouts give the same bits. (Q4_1 and
// Q5_1 keep dot_q32 below: per block, with a separate min term.)

// 4 t bytes at p as the first t lanes of a vector, the others zero.
inline __m256i load_lanes(const uint8_t* p, int t) {
  if (t == 8) return loadu(p);
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(t), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_epi32((const int*)p, keep);
}

// One Q4_0/Q5_0 row in pack_q32_runs' layout.
template <GgmlType T>
struct PackedQ32Row {
  const uint8_t* w;
  static constexpr int64_t kRunBytes = 8 * q32_block_bytes(T);
  __m256 scales(int64_t j, int t) const {  // 16 bytes from the run start stay inside it (18 t or 22 t bytes)
    return run_scales(_mm_loadu_si128((const __m128i*)(w + kRunBytes * j)), t);
  }
  void quants(int64_t j, int t, __m256i u[8]) const {
    const uint8_t* run = w + kRunBytes * j;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int p = 0; p < 4; ++p) {
      const __m256i v = load_lanes(run + packed_q32_plane(t, p), t);
      u[2 * p] = _mm256_and_si256(v, m4);
      u[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    if constexpr (T == GgmlType::Q5_0) {  // bit m of each byte -> bit 4 of vector m (16-bit shifts keep it in its byte)
      const __m256i h = load_lanes(run + packed_q32_plane(t, 4), t), b4 = _mm256_set1_epi8(0x10);
      u[0] = _mm256_or_si256(u[0], _mm256_and_si256(_mm256_slli_epi16(h, 4), b4));
      u[1] = _mm256_or_si256(u[1], _mm256_and_si256(_mm256_slli_epi16(h, 3), b4));
      u[2] = _mm256_or_si256(u[2], _mm256_and_si256(_mm256_slli_epi16(h, 2), b4));
      u[3] = _mm256_or_si256(u[3], _mm256_and_si256(_mm256_slli_epi16(h, 1), b4));
      u[4] = _mm256_or_si256(u[4], _mm256_and_si256(h, b4));
      u[5] = _mm256_or_si256(u[5], _mm256_and_si256(_mm256_srli_epi16(h, 1), b4));
      u[6] = _mm256_or_si256(u[6], _mm256_and_si256(_mm256_srli_epi16(h, 2), b4));
      u[7] = _mm256_or_si256(u[7], _mm256_and_si256(_mm256_srli_epi16(h, 3), b4));
    }
  }
  // Vector M of quants(j, t, u) alone, so a caller can keep one unpacked vector in registers at a time (Q5_0's
  // bit-4 plane is loaded again for each M: an L1 load, where holding it would take a register).
  template <int M>
  __m256i quant(int64_t j, int t) const {
    const uint8_t* run = w + kRunBytes * j;
    const __m256i v = load_lanes(run + packed_q32_plane(t, M / 2), t), m4 = _mm256_set1_epi8(0x0F);
    __m256i u = _mm256_and_si256(M % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
    if constexpr (T == GgmlType::Q5_0) {
      const __m256i h = load_lanes(run + packed_q32_plane(t, 4), t);
      const __m256i hm = M < 4 ? _mm256_slli_epi16(h, 4 - M) : M > 4 ? _mm256_srli_epi16(h, M - 4) : h;
      u = _mm256_or_si256(u, _mm256_and_si256(hm, _mm256_set1_epi8(0x10)));
    }
    return u;
  }
};

// One Q4_0/Q5_0 row in the GGUF layout.
template <GgmlType T>
struct GgufQ32Row {
  const uint8_t* w;
  static constexpr int64_t kBytes = q32_block_bytes(T);
  __m256 scales(int64_t j, int t) const {
    const uint8_t* b = w + kBytes * 8 * j;
    const auto h = [&](int k) {
      uint16_t v = 0;
      if (k < t) std::memcpy(&v, b + kBytes * k, 2);
      return (short)v;
    };
    return _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)));
  }
  void quants(int64_t j, int t, __m256i u[8]) const {
    for (int b = 0; b < 8; ++b) u[b] = b < t ? block_u8<T>(w + kBytes * (8 * j + b)) : _mm256_setzero_si256();
    transpose8_epi32(u);
  }
};

// One pack_q32_runs row back to f32: each run's vectors transposed back to blocks, then dequantize's arithmetic.
template <GgmlType T>
void dequantize_runs(const uint8_t* w, float* y, int64_t n) {
  const PackedQ32Row<T> row{w};
  const int64_t nb = n / 32;
  const __m256i offset = _mm256_set1_epi8(T == GgmlType::Q4_0 ? 8 : 16);
  for (int64_t j = 0; 8 * j < nb; ++j) {
    const int t = run_blocks(nb, j);
    __m256i u[8];
    row.quants(j, t, u);
    transpose8_epi32(u);
    for (int b = 0; b < t; ++b) {
      const __m256 d = _mm256_set1_ps(half(w + PackedQ32Row<T>::kRunBytes * j + 2 * b));
      store_scaled(_mm256_sub_epi8(u[b], offset), d, d, y + 32 * (8 * j + b));
    }
  }
}

void dequantize_packed(GgmlType t, const uint8_t* packed, float* y, int64_t n) {
  if (t == GgmlType::Q4_0) return dequantize_runs<GgmlType::Q4_0>(packed, y, n);
  if (t == GgmlType::Q5_0) return dequantize_runs<GgmlType::Q5_0>(packed, y, n);
  kScalarQuantOps.dequantize_packed(t, packed, y, n);
}

// acc += (weight scales * activation scales) * (v - the offset term), for a run's int32 sums v of one activation
// row: sum(x) * 8 (Q4_0) or * 16 (Q5_0) comes from offset = 128 sum(x) by an exact shift.
template <GgmlType T>
inline __attribute__((always_inline)) __m256 q32_scale_add(__m256i v, const ActQ8x32x8& a, __m256 dw, __m256 acc) {
  v = _mm256_sub_epi32(v, _mm256_srai_epi32(loadu(a.offset), T == GgmlType::Q4_0 ? 4 : 3));
  return _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_loadu_ps(a.d)), _mm256_cvtepi32_ps(v), acc);
}

// q32_run (below) for the packed layout on AVX2, vector by vector: each unpacked vector meets every row before the
// next is unpacked, so the rows' int32 sums stay in registers rather than eight unpacked vectors (the 4-row kernel's
// instructions naming %rsp: 80 before, 20 after). Integer sums are exact in any order: q32_run's bits.
template <GgmlType T, int NR, int M = 0>
inline __attribute__((always_inline)) void q32_add_vectors(const PackedQ32Row<T>& row, int64_t j, int t,
                                                           const ActQ8x32x8* const* a, __m256i* v) {
  const __m256i u = row.template quant<M>(j, t);
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    v[r] = u8_dot_acc(v[r], u, loadu(a[r]->qs + 32 * M));
    pin_sum<NR>(v[r]);
  }
  if constexpr (M < 7) q32_add_vectors<T, NR, M + 1>(row, j, t, a, v);
}

template <GgmlType T, int NR>
inline __attribute__((always_inline)) void q32_run_by_vector(const PackedQ32Row<T>& row, int64_t j, int t,
                                                             const void* act, int64_t as, __m256* acc) {
  const ActQ8x32x8* a[NR];
  __m256i v[NR];
  for (int r = 0; r < NR; ++r) {
    a[r] = &act_row<ActQ8x32x8>(act, as, r)[j];
    v[r] = _mm256_setzero_si256();
  }
  q32_add_vectors<T, NR>(row, j, t, a, v);
  const __m256 dw = row.scales(j, t);
  for (int r = 0; r < NR; ++r) acc[r] = q32_scale_add<T>(v[r], *a[r], dw, acc[r]);
}

// Adds run j (t blocks) of one Q4_0/Q5_0 row in layout R, against NR kQ8x32x8i activation rows, to acc[0..NR).
template <GgmlType T, int NR, class R>
inline __attribute__((always_inline)) void q32_run(const R& row, int64_t j, int t, const void* act, int64_t as,
                                                   __m256* acc) {
  __m256i u[8];
  row.quants(j, t, u);
  const __m256 dw = row.scales(j, t);
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const ActQ8x32x8& a = act_row<ActQ8x32x8>(act, as, r)[j];
    __m256i v = _mm256_setzero_si256(), v2 = _mm256_setzero_si256();  // two chains: half the dpbusd latency
    for (int m = 0; m < 8; m += 2) {
      v = u8_dot_acc(v, u[m], loadu(a.qs + 32 * m));
      v2 = u8_dot_acc(v2, u[m + 1], loadu(a.qs + 32 * (m + 1)));
    }
    acc[r] = q32_scale_add<T>(_mm256_add_epi32(v, v2), a, dw, acc[r]);
  }
}

template <GgmlType T, int NR, class R>
inline void dot_q32_row(const R& row, const void* act, int64_t as, int64_t nb, float* out) {
  sum_runs<NR>(
      nb, out, [&](int64_t j, int t, __m256* acc) __attribute__((always_inline)) {
        if constexpr (kPinSums && std::is_same_v<R, PackedQ32Row<T>>)
          q32_run_by_vector<T, NR>(row, j, t, act, as, acc);
        else
          q32_run<T, NR>(row, j, t, act, as, acc);
      });
}

template <GgmlType T, int NR>
void dot_q32_gguf(const uint8_t* w, const void* act, int64_t as, int64_t nb, float* out) {
  dot_q32_row<T, NR>(GgufQ32Row<T>{w}, act, as, nb, out);
}

// Q4_1 / Q5_1: per block, the min term accumulated apart.
template <GgmlType T, int NR>
void dot_q32(const uint8_t* w, const void* act, int64_t as, int64_t nb, float* out) {
  constexpr int kBytes = T == GgmlType::Q4_1 ? 20 : 24;
  const ActQ8x32* a[NR];
  __m256 acc0[NR], acc1[NR];
  float mins[NR];
  for (int r = 0; r < NR; ++r) {
    a[r] = act_row<ActQ8x32>(act, as, r);
    acc0[r] = acc1[r] = _mm256_setzero_ps();
    mins[r] = 0.0f;
  }
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2, w += 2 * kBytes) {  // two independent accumulators hide the FMA latency
    const __m256i u0 = block_u8<T>(w), u1 = block_u8<T>(w + kBytes);
    const float d0 = half(w), d1 = half(w + kBytes), m0 = block_min<T>(w), m1 = block_min<T>(w + kBytes);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const __m256i p0 = dot_u8(u0, loadu(a[r][i].qs)), p1 = dot_u8(u1, loadu(a[r][i + 1].qs));
      acc0[r] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * a[r][i].d), _mm256_cvtepi32_ps(p0), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * a[r][i + 1].d), _mm256_cvtepi32_ps(p1), acc1[r]);
      mins[r] += m0 * a[r][i].s + m1 * a[r][i + 1].s;
    }
  }
  for (; i < nb; ++i, w += kBytes) {
    const __m256i u = block_u8<T>(w);
    const float d = half(w), m = block_min<T>(w);
    for (int r = 0; r < NR; ++r) {
      acc0[r] =
          _mm256_fmadd_ps(_mm256_set1_ps(d * a[r][i].d), _mm256_cvtepi32_ps(dot_u8(u, loadu(a[r][i].qs))), acc0[r]);
      mins[r] += m * a[r][i].s;
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum_ps(_mm256_add_ps(acc0[r], acc1[r])) + mins[r];
}

// Q4_K (qh == false) and Q5_K (qh == true).
template <bool kHasQh, int NR>
void dot_k45(const uint8_t* w, const void* act, int64_t as, int64_t nb, float* out) {
  constexpr int kBytes = kHasQh ? 176 : 144, kQs = kHasQh ? 48 : 16;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const ActQ8x256* a[NR];
  __m256 acc[NR];
  float mins[NR];
  for (int r = 0; r < NR; ++r) {
    a[r] = act_row<ActQ8x256>(act, as, r);
    acc[r] = _mm256_setzero_ps();
    mins[r] = 0.0f;
  }
  const __m256i lo_word = _mm256_set1_epi16(0x0100), hi_word = _mm256_set1_epi16(0x0302);
  for (int64_t i = 0; i < nb; ++i, w += kBytes) {
    uint8_t sc[8], mn[8];
    kscales(w + 4, sc, mn);
    const float d = half(w), dmin = half(w + 2);
    // Each min twice (it covers two 16-element sums of x); the scales as words, two per 32-bit lane.
    const __m128i mn8 = _mm_loadl_epi64((const __m128i*)mn);
    const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
    const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_loadl_epi64((const __m128i*)sc));
    __m256i isum[NR];
    for (int r = 0; r < NR; ++r) {  // the min term: exact in int32, as a scalar sum would give it
      const int msum = hsum_i32(_mm256_madd_epi16(mn16, loadu(a[r][i].bsums)));
      mins[r] += dmin * a[r][i].d * (float)msum;
      isum[r] = _mm256_setzero_si256();
    }
    __m256i qh = kHasQh ? loadu(w + 16) : _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu(w + kQs + 32 * c);
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kHasQh) {
        const __m256i one = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4));
        qh = _mm256_srli_epi16(qh, 2);
      }
      const __m256i pair = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(c));  // words 2c, 2c + 1
      const __m256i slo = _mm256_shuffle_epi8(pair, lo_word), shi = _mm256_shuffle_epi8(pair, hi_word);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu(a[r][i].qs + 64 * c)), slo);
        const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu(a[r][i].qs + 64 * c + 32)), shi);
        isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(plo, phi));
        pin_sum<NR>(isum[r]);
      }
    }
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[r][i].d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum_ps(acc[r]) - mins[r];
}

template <int NR>
void dot_q6_k(const uint8_t* w, const void* act, int64_t as, int64_t nb, float* out) {
  const ActQ8x256* a[NR];
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) {
    a[r] = act_row<ActQ8x256>(act, as, r);
    acc[r] = _mm256_setzero_ps();
  }
  // Word pair (s, s + 1) of the 16 sign-extended scales -> word s in the low 128 bits, word s + 1 in the high.
  const __m256i pair_bytes = _mm256_set_epi8(3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2,  //
                                             1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);
  for (int64_t i = 0; i < nb; ++i, w += 210) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(w + 192)));
    __m256i isum[NR];
    int bias[NR];  // the -32 offset of every 6-bit value, applied through the 16-element sums of x (exact in int32)
    for (int r = 0; r < NR; ++r) {
      bias[r] = hsum_i32(_mm256_madd_epi16(sc16, loadu(a[r][i].bsums)));
      isum[r] = _mm256_setzero_si256();
    }
    for (int h = 0; h < 2; ++h) {
      __m256i q[4];
      q6_unpack(w + 64 * h, w + 128 + 32 * h, q);
      for (int k = 0; k < 4; ++k) {
        const int s = 8 * h + 2 * k;
        const __m256i scv =
            _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(s / 2)), pair_bytes);
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
          const __m256i p = _mm256_maddubs_epi16(q[k], loadu(a[r][i].qs + 128 * h + 32 * k));
          isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, scv));
          pin_sum<NR>(isum[r]);
        }
      }
    }
    const float d = half(w + 208);
    for (int r = 0; r < NR; ++r) {
      const __m256i s = _mm256_sub_epi32(isum[r], _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, 32 * bias[r]));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[r][i].d), _mm256_cvtepi32_ps(s), acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum_ps(acc[r]);
}

// ---- four weight rows against one activation row (decode at batch 1) ----
//
// The same arithmetic per weight row, in the same order, as the kernels above with NR = 1 (so a row's result does
// not depend on the batch size either); the activation block is loaded once for the four rows and the call and
// loop overhead is paid once per four rows.

constexpr int kWideRows = 4;
// Four short streams (one per row) do not train the hardware prefetcher the way one long sequential stream does:
// each row fetches its counterpart this many rows ahead.
constexpr int kAhead = 8;
constexpr int64_t kWideMaxBytes = 4 << 20;

// Four GGUF-layout Q8_0 rows w + k * ws against one activation row.
void dot4_q8_0(const uint8_t* w, int64_t ws, const void* act, int64_t nb, float* out) {
  dot_q8_0_four1([w, ws](int k) { return GgufQ8Row{w + k * ws}; }, act, nb, out);
}

template <GgmlType T>
void dot4_q32(const uint8_t* w, int64_t ws, const void* act, int64_t nb, float* out) {
  constexpr int kBytes = T == GgmlType::Q4_1 ? 20 : 24;
  const ActQ8x32* a = (const ActQ8x32*)act;
  __m256 acc0[kWideRows], acc1[kWideRows];
  float mins[kWideRows];
  for (int k = 0; k < kWideRows; ++k) {
    acc0[k] = acc1[k] = _mm256_setzero_ps();
    mins[k] = 0.0f;
  }
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256i x0 = loadu(a[i].qs), x1 = loadu(a[i + 1].qs);
#pragma GCC unroll 4
    for (int k = 0; k < kWideRows; ++k) {
      const uint8_t* b = w + k * ws + kBytes * i;
      _mm_prefetch((const char*)(b + kAhead * ws), _MM_HINT_T0);
      const __m256i p0 = dot_u8(block_u8<T>(b), x0), p1 = dot_u8(block_u8<T>(b + kBytes), x1);
      acc0[k] = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * a[i].d), _mm256_cvtepi32_ps(p0), acc0[k]);
      acc1[k] = _mm256_fmadd_ps(_mm256_set1_ps(half(b + kBytes) * a[i + 1].d), _mm256_cvtepi32_ps(p1), acc1[k]);
      mins[k] += block_min<T>(b) * a[i].s + block_min<T>(b + kBytes) * a[i + 1].s;
    }
  }
  for (; i < nb; ++i)
    for (int k = 0; k < kWideRows; ++k) {
      const uint8_t* b = w + k * ws + kBytes * i;
      acc0[k] = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * a[i].d),
                                _mm256_cvtepi32_ps(dot_u8(block_u8<T>(b), loadu(a[i].qs))), acc0[k]);
      mins[k] += block_min<T>(b) * a[i].s;
    }
  for (int k = 0; k < kWideRows; ++k) out[k] = hsum_ps(_mm256_add_ps(acc0[k], acc1[k])) + mins[k];
}

using WideKernel = void (*)(const uint8_t* w, int64_t ws, const void* act, int64_t nb, float* out);

WideKernel wide_kernel(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0:
      return dot4_q8_0;
    case GgmlType::Q4_1:
      return dot4_q32<GgmlType::Q4_1>;
    case GgmlType::Q5_1:
      return dot4_q32<GgmlType::Q5_1>;
    default:
      return nullptr;
  }
}

using RowsKernel = void (*)(const uint8_t* w, const void* act, int64_t as, int64_t nb, float* out);

// Activation rows one kernel pass takes: eight where AVX-512's 32 vector registers hold eight rows' accumulators
// beside a weight block's unpacked quants, else four (16 registers). dot_rows takes up to kMaxDotRows rows and
// runs them in passes of at most this many over each weight row (still in L1), so a weight row is unpacked
// once per pass.
#ifdef __AVX512F__
constexpr int kPassRows = 8;
#else
constexpr int kPassRows = 4;
#endif
static_assert(kPassRows <= kMaxDotRows);

// The kernel for type t and NR = nr, or nullptr for the types without an integer kernel.
template <int NR>
RowsKernel int_kernel(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0:
      return dot_q8_0<NR>;
    case GgmlType::Q4_0:
      return dot_q32_gguf<GgmlType::Q4_0, NR>;
    case GgmlType::Q4_1:
      return dot_q32<GgmlType::Q4_1, NR>;
    case GgmlType::Q5_0:
      return dot_q32_gguf<GgmlType::Q5_0, NR>;
    case GgmlType::Q5_1:
      return dot_q32<GgmlType::Q5_1, NR>;
    case GgmlType::Q4_K:
      return dot_k45<false, NR>;
    case GgmlType::Q5_K:
      return dot_k45<true, NR>;
    case GgmlType::Q6_K:
      return dot_q6_k<NR>;
    default:
      return nullptr;
  }
}

template <int... M>
RowsKernel int_kernel_of(GgmlType t, int m, std::integer_sequence<int, M...>) {
  RowsKernel k = nullptr;
  ((m == M + 1 ? (void)(k = int_kernel<M + 1>(t)) : (void)0), ...);
  return k;
}

// The integer kernel of type t for m activation rows (1..kPassRows), or nullptr for the types without one.
RowsKernel int_kernel(GgmlType t, int m) { return int_kernel_of(t, m, std::make_integer_sequence<int, kPassRows>{}); }

// nr activation rows (nr <= kMaxDotRows <= 2 kPassRows) as at most two passes over a weight row: rows [0, first)
// by `k`, then the rest by `rest` (null when first == nr).
struct TwoPasses {
  int first;
  RowsKernel k, rest;
  TwoPasses(int nr, RowsKernel (*pick)(GgmlType, int), GgmlType t)
      : first(nr < kPassRows ? nr : kPassRows), k(pick(t, first)), rest(nr > first ? pick(t, nr - first) : nullptr) {}
  void run(const uint8_t* w, const void* act, int64_t as, int64_t nb, float* out) const {
    k(w, act, as, nb, out);
    if (rest) rest(w, (const uint8_t*)act + first * as, as, nb, out + first);
  }
  // Weight rows [0, n_w) at w + o * ws against the nr activation rows: y[r * ys + o].
  void rows(const uint8_t* w, int64_t ws, int64_t n_w, const void* act, int64_t as, int nr, int64_t nb, float* y,
            int64_t ys) const {
    float out[kMaxDotRows];
    for (int64_t o = 0; o < n_w; ++o, w += ws) {
      run(w, act, as, nb, out);
      for (int r = 0; r < nr; ++r) y[r * ys + o] = out[r];
    }
  }
};

float dot(GgmlType t, const void* row, const float* x, const void* act, int64_t n) {
  const uint8_t* w = (const uint8_t*)row;
  const int64_t nb = n / traits(t).block_elems;
  if (const RowsKernel k = int_kernel<1>(t)) {
    float out;
    k(w, act, 0, nb, &out);
    return out;
  }
  switch (t) {
    case GgmlType::F32:
      return kAvx2VecOps.dot_f32((const float*)row, x, n);
    case GgmlType::F16:
      return kAvx2VecOps.dot_f16(x, (const uint16_t*)row, n);
    default:
      break;
  }
  // BF16, Q8_K: dequantise 256 at a time and take an f32 dot.
  const TypeTraits& tt = traits(t);
  float buf[256], sum = 0.0f;
  for (int64_t i = 0; i < n; i += 256) {
    const int64_t m = n - i < 256 ? n - i : 256;
    dequantize(t, w + i / tt.block_elems * tt.block_bytes, buf, m);
    sum += kAvx2VecOps.dot_f32(buf, x + i, m);
  }
  return sum;
}

void dot_rows(GgmlType t, const uint8_t* w, int64_t w_stride, int64_t n_w, const float* x, const void* act,
              int64_t act_stride, int nr, int64_t n, float* y, int64_t y_stride) {
  const TwoPasses passes(nr, int_kernel, t);
  const int64_t nb = n / traits(t).block_elems;
  int64_t o = 0;
  // A range of several MB streams from DRAM (the vocab head), where one sequential stream of rows prefetches
  // better than four short ones: four rows at a time made the 178 MB Gemma head 2x slower.
  const bool cached = n_w * w_stride <= kWideMaxBytes;
  if (const WideKernel k4 = nr == 1 && cached ? wide_kernel(t) : nullptr)
    for (; o + kWideRows <= n_w; o += kWideRows, w += kWideRows * w_stride) k4(w, w_stride, act, nb, y + o);
  if (passes.k) return passes.rows(w, w_stride, n_w - o, act, act_stride, nr, nb, y + o, y_stride);
  for (; o < n_w; ++o, w += w_stride)
    for (int r = 0; r < nr; ++r) y[r * y_stride + o] = dot(t, w, x + r * n, nullptr, n);
}

// The four rows of the packed group at p against nr activation rows (interleave_runs' form), in passes of at most
// four (four weight rows x four accumulators), while the group (a few KB) is in L1: y[r * ys + k] = row k . row r.
inline void dot_packed_group(const uint8_t* p, const ActQ8x32x8* act, int64_t as, int nr, int64_t nb, float* y,
                             int64_t ys) {
  float out[4 * 4];
  for (int r0 = 0; r0 < nr; r0 += 4) {
    const int m = nr - r0 < 4 ? nr - r0 : 4;
    const void* a = (const uint8_t*)act + r0 * as;
    switch (m) {
      case 1:
        dot_q8_0_group<1>(p, a, as, nb, out);
        break;
      case 2:
        dot_q8_0_group<2>(p, a, as, nb, out);
        break;
      case 3:
        dot_q8_0_group<3>(p, a, as, nb, out);
        break;
      default:
        dot_q8_0_group<4>(p, a, as, nb, out);
        break;
    }
    for (int k = 0; k < 4; ++k)
      for (int r = 0; r < m; ++r) y[(r0 + r) * ys + k] = out[k * m + r];
  }
}

// One Q4_0/Q5_0 row in pack_q32_runs' layout against NR activation rows (a RowsKernel), fetching the row
// kPackedAheadBytes on into L2 first.
template <GgmlType T, int NR>
void dot_q32_packed_row(const uint8_t* p, const void* act, int64_t as, int64_t nb, float* out) {
  for (int64_t l = 0; l < nb * q32_block_bytes(T); l += 64)
    _mm_prefetch((const char*)p + kPackedAheadBytes + l, _MM_HINT_T1);
  dot_q32_row<T, NR>(PackedQ32Row<T>{p}, act, as, nb, out);
}

template <int... M>
RowsKernel packed_q32_kernel_of(GgmlType t, int m, std::integer_sequence<int, M...>) {
  RowsKernel k = nullptr;
  if (t == GgmlType::Q4_0) ((m == M + 1 ? (void)(k = dot_q32_packed_row<GgmlType::Q4_0, M + 1>) : (void)0), ...);
  if (t == GgmlType::Q5_0) ((m == M + 1 ? (void)(k = dot_q32_packed_row<GgmlType::Q5_0, M + 1>) : (void)0), ...);
  return k;
}
RowsKernel packed_q32_kernel(GgmlType t, int m) {
  return packed_q32_kernel_of(t, m, std::make_integer_sequence<int, kPassRows>{});
}

void dot_rows_packed(GgmlType t, const uint8_t* packed, const uint8_t* w, int64_t w_stride, int64_t n_w, const float* x,
                     const void* act, int64_t as, int nr, int64_t n, float* y, int64_t ys) {
  if (t == GgmlType::Q4_0 || t == GgmlType::Q5_0) {  // row o at packed + o * row bytes
    const int64_t nb = n / 32;
    return TwoPasses(nr, packed_q32_kernel, t).rows(packed, nb * q32_block_bytes(t), n_w, act, as, nr, nb, y, ys);
  }
  if (t != GgmlType::Q8_0) return dot_rows(t, w, w_stride, n_w, x, act, as, nr, n, y, ys);
  const int64_t nb = n / 32, groups = n_w / kWideRows;
  thread_local std::vector<ActQ8x32x8> inter;
  interleave_runs(act, as, nr, nb, inter);
  const int64_t is = (nb + 7) / 8 * (int64_t)sizeof(ActQ8x32x8);
  for (int64_t g = 0; g < groups; ++g)
    dot_packed_group(packed + g * nb * kPackedBlockBytes, inter.data(), is, nr, nb, y + 4 * g, ys);
  const int64_t o = groups * kWideRows;  // the rows after the last whole group exist only in the GGUF copy
  if (o < n_w) dot_rows(t, w + o * w_stride, w_stride, n_w - o, x, act, as, nr, n, y + o, ys);
}

}  // namespace
}  // namespace shadowkv::simd
