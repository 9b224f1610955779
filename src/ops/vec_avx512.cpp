// The AVX-512 vector kernels (the rest of the AVX-512 table is AVX2's, joined in quant.cpp): panel_scores, which
// keeps a whole 16-row panel row in one register and up to 8 query heads x 2 panels of accumulators in the 32
// registers, and decode attention's group_scores / group_accumulate on 16-float rows (group_scores with 6 or more
// heads per KV head by a column kernel, bit for bit the row kernel's sums) (compiled with AVX-512 flags; only called
// after a CPU check).
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

// The column kernel of group_scores for many query heads per KV head (Qwen2.5: 7 heads of width 64). There the
// row kernel above spends more on its horizontal sums than on its multiply-adds; here 16 key rows are transposed
// once into a column scratch (the rows in lanes) and every head's 16 scores come out of whole registers. Each
// score is computed in exactly the row kernel's order (lane l's chain q[16m + l] k[16m + l] over m, lanes l and
// l + 8 added, then ((0+1)+(2+3)) + ((4+5)+(6+7))), so the two give the same bits and choosing one is speed only.
constexpr int kColRows = 16;     // key rows per block
constexpr int kColsMaxHd = 128;  // the column scratch's widest row
constexpr int kColsPass = 5;     // heads per pass: 5 registers each at the tree's widest, plus 2 columns, fit in 32

inline bool use_scores_cols(int n_q, int hd) { return n_q >= 6 && hd % 16 == 0 && hd <= kColsMaxHd; }

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

// Rows idx[j..j + kColRows) (past nv the last row again, its scores dropped) into col, kColRows floats per column:
// col[c * kColRows + r] = element c of row j + r, for every c < hd (a multiple of 16). Asks for the next block's
// rows meanwhile.
void rows_to_cols(const void* keys, bool f16, int hd, const int64_t* idx, int j, int nv, float* col) {
  const int nr = std::min(kColRows, nv - j);
  if (j + kColRows < nv)
    prefetch_rows(keys, (int64_t)hd * (f16 ? 2 : 4), idx + j + kColRows, std::min(kColRows, nv - j - kColRows));
  int64_t off[kColRows];
  for (int r = 0; r < kColRows; ++r) off[r] = idx[j + std::min(r, nr - 1)] * hd;
  for (int c = 0; c < hd; c += 8)
    for (int r0 = 0; r0 < kColRows; r0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = load_keys8(keys, f16, off[r0 + i] + c);
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_store_ps(col + (c + i) * kColRows + r0, r[i]);
    }
}

// Splits n_q heads into passes of at most max_pass, as even as they go (7 heads, at most 5: 4 + 3).
inline int heads_per_pass(int n_q, int max_pass) {
  const int passes = (n_q + max_pass - 1) / max_pass;
  return (n_q + passes - 1) / passes;
}

// x[h] = the row kernel's lanes L and L + 8 of head h, for 16 rows at once: each lane a chain over the head's
// 16-column blocks from zero, the two chains then added (its `fold`).
template <int NH, int L>
__attribute__((always_inline)) inline void lane_pair(const float* q, int hd, const float* col, __m512* x) {
  __m512 lo[NH], hi[NH];
  for (int h = 0; h < NH; ++h) lo[h] = hi[h] = _mm512_setzero_ps();
  int c = 0;
  do {  // hd >= 16
    const __m512 cl = _mm512_load_ps(col + (c + L) * kColRows), ch = _mm512_load_ps(col + (c + L + 8) * kColRows);
    for (int h = 0; h < NH; ++h) {
      lo[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * hd + c + L]), cl, lo[h]);
      hi[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * hd + c + L + 8]), ch, hi[h]);
    }
  } while ((c += 16) < hd);
  for (int h = 0; h < NH; ++h) x[h] = _mm512_add_ps(lo[h], hi[h]);
}

// NH heads' scores of one block's nr rows from its columns, the row kernel's tree of hadds done lane-wise.
template <int NH>
void cols_scores(const float* q, int hd, float scale, const float* col, int nr, float* s, int ld) {
  __m512 a[NH], b[NH], c[NH], t[NH];
  lane_pair<NH, 0>(q, hd, col, a);
  lane_pair<NH, 1>(q, hd, col, t);
  for (int h = 0; h < NH; ++h) b[h] = _mm512_add_ps(a[h], t[h]);
  lane_pair<NH, 2>(q, hd, col, a);
  lane_pair<NH, 3>(q, hd, col, t);
  for (int h = 0; h < NH; ++h) c[h] = _mm512_add_ps(b[h], _mm512_add_ps(a[h], t[h]));  // (0+1)+(2+3)
  lane_pair<NH, 4>(q, hd, col, a);
  lane_pair<NH, 5>(q, hd, col, t);
  for (int h = 0; h < NH; ++h) b[h] = _mm512_add_ps(a[h], t[h]);
  lane_pair<NH, 6>(q, hd, col, a);
  lane_pair<NH, 7>(q, hd, col, t);
  const __m512 sv = _mm512_set1_ps(scale);
  const __mmask16 keep = (__mmask16)((1u << nr) - 1);
  for (int h = 0; h < NH; ++h) {
    const __m512 sum = _mm512_add_ps(c[h], _mm512_add_ps(b[h], _mm512_add_ps(a[h], t[h])));  // + ((4+5)+(6+7))
    _mm512_mask_storeu_ps(s + h * ld, keep, _mm512_mul_ps(sv, sum));
  }
}

using ColsScoresFn = void (*)(const float*, int, float, const float*, int, float*, int);

template <int... H>
constexpr std::array<ColsScoresFn, sizeof...(H)> cols_scores_fns(std::integer_sequence<int, H...>) {
  return {cols_scores<H + 1>...};
}

// group_scores by the column kernel: blocks of 16 rows, each transposed once, then the heads in passes.
void scores_cols(const float* q, int n_q, int hd, float scale, const void* keys, bool f16, const int64_t* idx, int nv,
                 float* s, int ld) {
  static constexpr std::array<ColsScoresFn, kColsPass> fns =
      cols_scores_fns(std::make_integer_sequence<int, kColsPass>());
  const int per = heads_per_pass(n_q, kColsPass);
  alignas(64) float col[kColsMaxHd * kColRows];
  for (int j = 0; j < nv; j += kColRows) {
    rows_to_cols(keys, f16, hd, idx, j, nv, col);
    const int nr = std::min(kColRows, nv - j);
    for (int h0 = 0; h0 < n_q; h0 += per)
      fns[std::min(per, n_q - h0) - 1](q + (int64_t)h0 * hd, hd, scale, col, nr, s + h0 * ld + j, ld);
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
  if (use_scores_cols(n_q, hd)) return scores_cols(q, n_q, hd, scale, keys, f16, idx, nv, s, ld);
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
