// The AVX-512 vector kernels (the rest of the AVX-512 table is AVX2's, joined in quant.cpp): panel_scores, which
// keeps a whole 16-row panel row in one register and up to 8 query heads x 2 panels of accumulators in the 32
// registers, and decode attention's group_scores / group_accumulate on 16-float rows (compiled with AVX-512 flags;
// only called after a CPU check).
#include <immintrin.h>

// GCC 12's _mm512_cvtph_ps passes an "undefined" register that -Wmaybe-uninitialized reports inside the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <array>
#include <utility>

#include "ops/quant_dispatch.h"
#include "ops/vec.h"

namespace shadowkv::simd {
namespace {

inline __m512 load16(const void* panel, bool f16, int64_t off) {
  return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)((const uint16_t*)panel + off)))
             : _mm512_loadu_ps((const float*)panel + off);
}
inline __m512 load16(const void* rows, RowType type, int64_t off) {
  if (type == RowType::kI8)
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)((const int8_t*)rows + off))));
  return load16(rows, type == RowType::kF16, off);
}

// NH (<= 8) query heads against NP (1 or 2) consecutive panels; each broadcast query element feeds NP FMAs.
template <int NH, int NP>
void panel_heads(const float* q, int hd, float scale, const void* panels, bool f16, float* s, int64_t ld) {
  __m512 acc[NP][NH];
  for (int p = 0; p < NP; ++p)
    for (int h = 0; h < NH; ++h) acc[p][h] = _mm512_setzero_ps();
  const int64_t panel_elems = (int64_t)hd * kPanelRows;
  for (int d = 0; d < hd; ++d) {
    __m512 row[NP];
    for (int p = 0; p < NP; ++p) row[p] = load16(panels, f16, p * panel_elems + (int64_t)d * kPanelRows);
    for (int h = 0; h < NH; ++h) {
      const __m512 qv = _mm512_set1_ps(q[(int64_t)h * hd + d]);
      for (int p = 0; p < NP; ++p) acc[p][h] = _mm512_fmadd_ps(qv, row[p], acc[p][h]);
    }
  }
  const __m512 sv = _mm512_set1_ps(scale);
  for (int p = 0; p < NP; ++p)
    for (int h = 0; h < NH; ++h) _mm512_storeu_ps(s + h * ld + p * kPanelRows, _mm512_mul_ps(sv, acc[p][h]));
}

using PanelFn = void (*)(const float*, int, float, const void*, bool, float*, int64_t);

// panel_heads for NP panels and 1..8 heads, indexed by heads - 1.
template <int NP, int... H>
constexpr std::array<PanelFn, sizeof...(H)> panel_fns(std::integer_sequence<int, H...>) {
  return {panel_heads<H + 1, NP>...};
}

template <int NP>
void panel_group(int n, const float* q, int hd, float scale, const void* panels, bool f16, float* s, int64_t ld) {
  static constexpr std::array<PanelFn, 8> fns = panel_fns<NP>(std::make_integer_sequence<int, 8>());
  fns[n - 1](q, hd, scale, panels, f16, s, ld);  // n in 1..8
}

constexpr int64_t kAheadPanels = 6;

void panel_scores(const float* q, int n_q, int hd, float scale, const void* panels, bool f16, int64_t n_panels,
                  float* s, int64_t ld) {
  static_assert(kPanelRows == 16, "one 16-float register per panel row");
  const int64_t panel_bytes = (int64_t)hd * kPanelRows * (f16 ? 2 : 4);
  for (int h0 = 0; h0 < n_q; h0 += 8) {
    const int n = std::min(8, n_q - h0);
    const float* qh = q + (int64_t)h0 * hd;
    int64_t p = 0;
    for (; p + 2 <= n_panels; p += 2) {
      // The landmarks stream from DRAM in the model (megabytes per step per sequence): fetch kAheadPanels on.
      const char* ahead = (const char*)panels + (p + kAheadPanels) * panel_bytes;
      for (int64_t l = 0; l < 2 * panel_bytes; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T0);
      panel_group<2>(n, qh, hd, scale, (const uint8_t*)panels + p * panel_bytes, f16, s + h0 * ld + p * kPanelRows, ld);
    }
    if (p < n_panels)
      panel_group<1>(n, qh, hd, scale, (const uint8_t*)panels + p * panel_bytes, f16, s + h0 * ld + p * kPanelRows, ld);
  }
}

// Decode attention over gathered rows (vec.h group_scores / group_accumulate), for head_dim a multiple of 16.

// Lane-wise sum of a register's two 8-float halves.
inline __m256 fold(__m512 v) { return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)); }

// Lane h of the result: the sum of v[h]'s 16 lanes (h < 4; missing heads are zero registers).
inline __m128 sum4(const __m512* v) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(fold(v[0]), fold(v[1])), _mm256_hadd_ps(fold(v[2]), fold(v[3])));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// NH (<= 8) heads x 2 key rows at a time, 16 columns per multiply-add; the partial sums are folded to 8 lanes and
// reduced four heads at a time by one tree of horizontal adds.
template <int NH>
void scores_heads(const float* q, int hd, float scale, const void* keys, bool f16, const int64_t* idx, int nv, float* s,
                  int ld) {
  const __m128 sv = _mm_set1_ps(scale);
  for (int j = 0; j < nv; j += 2) {
    const int nr = std::min(2, nv - j);
    const int64_t off0 = idx[j] * hd, off1 = idx[j + nr - 1] * hd;  // nr == 1: row j twice, second result dropped
    if (j + kAheadKeyRows + 1 < nv) prefetch_rows(keys, (int64_t)hd * (f16 ? 2 : 4), idx + j + kAheadKeyRows, 2);
    __m512 a[2][8];
    for (int h = 0; h < 8; ++h) a[0][h] = a[1][h] = _mm512_setzero_ps();
    for (int c = 0; c < hd; c += 16) {
      const __m512 k0 = load16(keys, f16, off0 + c), k1 = load16(keys, f16, off1 + c);
      for (int h = 0; h < NH; ++h) {
        const __m512 qv = _mm512_loadu_ps(q + (int64_t)h * hd + c);
        a[0][h] = _mm512_fmadd_ps(qv, k0, a[0][h]);
        a[1][h] = _mm512_fmadd_ps(qv, k1, a[1][h]);
      }
    }
    for (int r = 0; r < nr; ++r)
      for (int h0 = 0; h0 < NH; h0 += 4) {
        alignas(16) float out[4];
        _mm_store_ps(out, _mm_mul_ps(sv, sum4(&a[r][h0])));
        for (int h = h0; h < std::min(NH, h0 + 4); ++h) s[h * ld + j + r] = out[h - h0];
      }
  }
}

// NH (<= 8) heads x NC (1 or 2) x 16 output columns in registers for all nv value rows (loaded and stored once),
// one column strip after another; each row's value vector feeds NH multiply-adds.
template <int NH, int NC>
void accumulate_strip(const float* p, int ld, int hd, const void* vals, RowType type, const int64_t* idx, int nv,
                      float* acc) {
  __m512 a[NH][NC];
  for (int h = 0; h < NH; ++h)
    for (int c = 0; c < NC; ++c) a[h][c] = _mm512_loadu_ps(acc + (int64_t)h * hd + 16 * c);
  for (int j = 0; j < nv; ++j) {
    __m512 v[NC];
    for (int c = 0; c < NC; ++c) v[c] = load16(vals, type, idx[j] * hd + 16 * c);
    for (int h = 0; h < NH; ++h) {
      const __m512 w = _mm512_set1_ps(p[h * ld + j]);
      for (int c = 0; c < NC; ++c) a[h][c] = _mm512_fmadd_ps(w, v[c], a[h][c]);
    }
  }
  for (int h = 0; h < NH; ++h)
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(acc + (int64_t)h * hd + 16 * c, a[h][c]);
}

template <int NH>
void accumulate_heads(const float* p, int ld, int hd, const void* vals, RowType type, const int64_t* idx, int nv,
                      float* acc) {
  // Strips of 32 columns (the column offset rides on vals and acc; idx stays in rows of hd), then one of 16.
  const int eb = row_type_bytes(type);
  int c = 0;
  for (; c + 32 <= hd; c += 32)
    accumulate_strip<NH, 2>(p, ld, hd, (const uint8_t*)vals + c * eb, type, idx, nv, acc + c);
  if (c < hd) accumulate_strip<NH, 1>(p, ld, hd, (const uint8_t*)vals + c * eb, type, idx, nv, acc + c);
}

using ScoresFn = void (*)(const float*, int, float, const void*, bool, const int64_t*, int, float*, int);
using AccumulateFn = void (*)(const float*, int, int, const void*, RowType, const int64_t*, int, float*);

template <int... H>
constexpr std::array<ScoresFn, sizeof...(H)> scores_fns(std::integer_sequence<int, H...>) {
  return {scores_heads<H + 1>...};
}
template <int... H>
constexpr std::array<AccumulateFn, sizeof...(H)> accumulate_fns(std::integer_sequence<int, H...>) {
  return {accumulate_heads<H + 1>...};
}

void group_scores(const float* q, int n_q, int hd, float scale, const void* keys, bool f16, const int64_t* idx, int nv,
                  float* s, int ld) {
  if (hd % 16 != 0) return kAvx2VecOps.group_scores(q, n_q, hd, scale, keys, f16, idx, nv, s, ld);
  static constexpr std::array<ScoresFn, 8> fns = scores_fns(std::make_integer_sequence<int, 8>());
  for (int h0 = 0; h0 < n_q; h0 += 8)
    fns[std::min(8, n_q - h0) - 1](q + (int64_t)h0 * hd, hd, scale, keys, f16, idx, nv, s + h0 * ld, ld);
}

void group_accumulate(const float* p, int ld, int n_q, int hd, const void* vals, RowType type, const int64_t* idx,
                      int nv, float* acc) {
  if (hd % 16 != 0) return kAvx2VecOps.group_accumulate(p, ld, n_q, hd, vals, type, idx, nv, acc);
  static constexpr std::array<AccumulateFn, 8> fns = accumulate_fns(std::make_integer_sequence<int, 8>());
  for (int h0 = 0; h0 < n_q; h0 += 8)
    fns[std::min(8, n_q - h0) - 1](p + h0 * ld, ld, hd, vals, type, idx, nv, acc + (int64_t)h0 * hd);
}

}  // namespace

// Function addresses only: a table built by copying kAvx2VecOps here would be a static initialiser compiled with
// AVX-512 flags, run at start-up on every CPU (it was: SIGILL on AVX2-only machines).
const Avx512VecKernels kAvx512VecKernels{group_scores, group_accumulate, panel_scores};

}  // namespace shadowkv::simd
