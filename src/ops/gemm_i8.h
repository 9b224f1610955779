// Private to src/ops: prefill's int8 GEMM: weight rows unpacked into panels of 16 rows, activations quantised to int8.
//
// A weight block of kb elements (32; 16 for Q6_K, whose scales are per 16) becomes unsigned quants u with a scale:
// w = ws * (u - o) for the types with a fixed offset o (Q8_0: the signed quant + 128, o = 128; Q4_0 8; Q5_0 16;
// Q6_K 32), or w = ws * u - wm for the types with a min per block (Q4_1, Q5_1, Q4_K, Q5_K). An activation block of
// 32 is x ~= d * q (int8 q, as the decode kernels quantise it). Then one weight block times one activation block is
// d * ws * (sum(u q) - o sum(q)), the bracket an exact int32, or d * ws * sum(u q) - wm * d * sum(q): the VNNI
// kernel takes sum(u q) for 16 weight rows at once with vpdpbusd (u8 x s8 -> s32), with no horizontal sums; the AVX2
// kernel gets the same exact sums from maddubs and madd.
#pragma once
#include <cstdint>

#include "ops/ggml_type.h"

namespace shadowkv::simd {

// Weight rows per panel: one 512-bit vector of int32 sums or f32 results.
constexpr int kPanelRows = 16;

// The panel block width of type t: 32, 16 for Q6_K, 0 for a type the int8 GEMM does not take (f32, f16, bf16, Q8_K).
int gemm_block(GgmlType t);
// The fixed offset o of t's quants, or 0 for a type with a min per block (then its panels carry wm).
int gemm_offset(GgmlType t);
// Bytes of one panel block: kb x 16 quants as [kb / 4][16 rows][4 quants] (so one 64-byte vector holds quants 4g..4g+3
// of every row), then ws[16], then (types with a min) wm[16], as f32.
constexpr int64_t panel_block_bytes(int kb, bool has_min) { return (int64_t)kPanelRows * kb + (has_min ? 128 : 64); }
inline int64_t gemm_block_bytes(GgmlType t) { return panel_block_bytes(gemm_block(t), gemm_offset(t) == 0); }
inline int64_t gemm_panel_bytes(GgmlType t, int64_t n_in) { return n_in / gemm_block(t) * gemm_block_bytes(t); }

// One activation block of 32: x[i] ~= d * qs[i]; m = d * sum(qs); s32 = sum(qs); s16 = the sums of each half.
struct GemmAct {
  float d;
  float m;
  int32_t s32;
  int16_t s16[2];
  int8_t qs[32];
};
static_assert(sizeof(GemmAct) == 48);

// A backend's int8 GEMM (gemm_i8_avx2.cpp, gemm_i8_avx512.cpp).
struct GemmI8Ops {
  // Weight rows rows[0..n) (n <= 16, n_in elements; in the GGUF layout, or for Q4_0/Q5_0 with q32_runs in
  // pack_q32_runs' layout) into one panel; rows past n get zero quants and scales.
  void (*pack_panel)(GgmlType t, const uint8_t* const* rows, bool q32_runs, int n, int64_t n_in, uint8_t* panel);
  // Rows x[0..n_rows) (n_in / 32 blocks each) into act (n_rows * n_in / 32 blocks).
  void (*quantize)(const float* x, int64_t n_rows, int64_t n_in, GemmAct* act);
  // y[r * ldy + c] = row c of the panels (panel c / 16 at panels + (c / 16) * gemm_panel_bytes) times activation row r,
  // for r < n_rows and c < n_cols (n_cols <= 16 n_panels).
  void (*gemm)(GgmlType t, const uint8_t* panels, int64_t n_panels, int64_t n_cols, int64_t n_in, const GemmAct* act,
               int64_t n_rows, float* y, int64_t ldy);
};
extern const GemmI8Ops kAvx2GemmI8Ops;
extern const GemmI8Ops kAvx512GemmI8Ops;

// The same arithmetic as the backend's gemm in plain C++, one output at a time (a test reference).
void gemm_i8_reference(GgmlType t, const uint8_t* panels, int64_t n_panels, int64_t n_cols, int64_t n_in,
                       const GemmAct* act, int64_t n_rows, float* y, int64_t ldy);

}  // namespace shadowkv::simd
