// The x86 column kernel of decode attention's scores, private to src/ops: included by vec_avx2.cpp (built with
// -mavx2 -mfma -mf16c, 16 vector registers) and vec_avx512.cpp (AVX-512 flags, 32 registers), each instantiating it
// with as many query heads per pass as its registers hold; only called after a CPU check.
//
// group_scores' row-major kernels reduce each (row, head) sum across the lanes of a register; at a short head_dim
// with many query heads per KV head (Qwen2.5: 64 and 7) those reductions cost more than the multiply-adds. Here 16
// key rows are transposed once into a column scratch (the rows in lanes), each broadcast query element multiplies
// two columns of 8 rows, and each head's scores are stored 8 at a time: no horizontal sums. A score is its row's
// sum over the columns in order, whichever rows share its block.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "ops/quant_dispatch.h"

namespace shadowkv::simd {
namespace {

constexpr int kColRows = 16;  // key rows scores_cols scores at a time

inline __m256 load_keys8(const void* rows, bool f16, int64_t off) {
  return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)((const uint16_t*)rows + off)))
             : _mm256_loadu_ps((const float*)rows + off);
}

// r[i] lane j -> r[j] lane i: the 8x8 transpose in three rounds of shuffles.
inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Columns c..c+8 of 8 key rows (row r at element offset off[r]) into col, kColRows floats per column:
// col[(c + i) * kColRows + r] = element c + i of row r.
inline void rows_to_cols(const void* keys, bool f16, const int64_t* off, int c, float* col) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = load_keys8(keys, f16, off[i] + c);
  transpose8(r);
  for (int i = 0; i < 8; ++i) _mm256_store_ps(col + (c + i) * kColRows, r[i]);
}

// NH heads' scores of kColRows rows from their columns: each broadcast query element feeds two multiply-adds, one
// per 8 rows (2 NH chains in flight); each head's first nr scores are stored.
template <int NH>
void cols_scores(const float* q, int hd, float scale, const float* col, int nr, float* s, int ld) {
  __m256 a0[NH], a1[NH];
  for (int h = 0; h < NH; ++h) a0[h] = a1[h] = _mm256_setzero_ps();
  int d = 0;
  do {  // hd >= 8. A loop that may run zero times, or a sum read by a variable index after it, makes GCC 12 keep
        // the sums on the stack too and store every one on every pass
    const __m256 c0 = _mm256_load_ps(col + d * kColRows), c1 = _mm256_load_ps(col + d * kColRows + 8);
    for (int h = 0; h < NH; ++h) {
      const __m256 b = _mm256_broadcast_ss(q + (int64_t)h * hd + d);
      a0[h] = _mm256_fmadd_ps(b, c0, a0[h]);
      a1[h] = _mm256_fmadd_ps(b, c1, a1[h]);
    }
  } while (++d < hd);
  const __m256 sv = _mm256_set1_ps(scale);
  if (nr == kColRows) {
    for (int h = 0; h < NH; ++h) {
      _mm256_storeu_ps(s + h * ld, _mm256_mul_ps(sv, a0[h]));
      _mm256_storeu_ps(s + h * ld + 8, _mm256_mul_ps(sv, a1[h]));
    }
    return;
  }
  alignas(32) float t[NH][kColRows];  // the sums leave their registers by constant indices only (see above)
#pragma GCC unroll 8
  for (int h = 0; h < NH; ++h) {
    _mm256_store_ps(t[h], _mm256_mul_ps(sv, a0[h]));
    _mm256_store_ps(t[h] + 8, _mm256_mul_ps(sv, a1[h]));
  }
  for (int h = 0; h < NH; ++h) std::copy(t[h], t[h] + nr, s + h * ld);
}

using ColsScoresFn = void (*)(const float*, int, float, const float*, int, float*, int);

template <int... H>
constexpr std::array<ColsScoresFn, sizeof...(H)> cols_scores_fns(std::integer_sequence<int, H...>) {
  return {cols_scores<H + 1>...};
}

// group_scores (vec.h) for head_dim a multiple of 8 and at most kColsMaxHd, in passes of up to kPass heads over
// each block's columns.
template <int kPass>
void scores_cols(const float* q, int n_q, int hd, float scale, const void* keys, bool f16, const int64_t* idx, int nv,
                 float* s, int ld) {
  static constexpr std::array<ColsScoresFn, kPass> fns = cols_scores_fns(std::make_integer_sequence<int, kPass>());
  alignas(32) float col[kColsMaxHd * kColRows];
  const int64_t row_bytes = (int64_t)hd * (f16 ? 2 : 4);
  for (int j = 0; j < nv; j += kColRows) {
    const int nr = std::min(kColRows, nv - j);
    if (j + kColRows < nv) prefetch_rows(keys, row_bytes, idx + j + kColRows, std::min(kColRows, nv - j - kColRows));
    int64_t off[kColRows];
    for (int r = 0; r < kColRows; ++r) off[r] = idx[j + std::min(r, nr - 1)] * hd;  // past nv: row nv - 1, dropped
    for (int c = 0; c < hd; c += 8) {
      rows_to_cols(keys, f16, off, c, col);
      rows_to_cols(keys, f16, off + 8, c, col + 8);
    }
    for (int h0 = 0; h0 < n_q; h0 += kPass)
      fns[std::min(kPass, n_q - h0) - 1](q + (int64_t)h0 * hd, hd, scale, col, nr, s + h0 * ld + j, ld);
  }
}

}  // namespace
}  // namespace shadowkv::simd
