// The AVX-512 vector table: the AVX2 kernels, except panel_scores, which keeps a whole 16-row panel row in one
// register and up to 8 query heads x 2 panels of accumulators in the 32 registers (compiled with AVX-512 flags;
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

void panel_scores(const float* q, int n_q, int hd, float scale, const void* panels, bool f16, int64_t n_panels,
                  float* s, int64_t ld) {
  static_assert(kPanelRows == 16, "one 16-float register per panel row");
  const int64_t panel_bytes = (int64_t)hd * kPanelRows * (f16 ? 2 : 4);
  for (int h0 = 0; h0 < n_q; h0 += 8) {
    const int n = std::min(8, n_q - h0);
    const float* qh = q + (int64_t)h0 * hd;
    int64_t p = 0;
    for (; p + 2 <= n_panels; p += 2)
      panel_group<2>(n, qh, hd, scale, (const uint8_t*)panels + p * panel_bytes, f16, s + h0 * ld + p * kPanelRows, ld);
    if (p < n_panels)
      panel_group<1>(n, qh, hd, scale, (const uint8_t*)panels + p * panel_bytes, f16, s + h0 * ld + p * kPanelRows, ld);
  }
}

VecOps avx512_table() {
  VecOps v = kAvx2VecOps;  // constant-initialised (function addresses), so complete before this runs
  v.panel_scores = panel_scores;
  return v;
}

}  // namespace

const VecOps kAvx512VecOps = avx512_table();

}  // namespace shadowkv::simd
