// The int8 GEMM's panel geometry per weight type, and its arithmetic in plain C++ (the reference the tests hold the
// VNNI kernel to).
#include "ops/gemm_i8.h"

#include <cmath>
#include <cstring>

namespace shadowkv::simd {

int gemm_block(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      return 32;
    case GgmlType::Q6_K:
      return 16;
    default:
      return 0;
  }
}

int gemm_offset(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
      return 8;
    case GgmlType::Q5_0:
      return 16;
    case GgmlType::Q8_0:
      return 128;
    case GgmlType::Q6_K:
      return 32;
    default:
      return 0;
  }
}

namespace {

// Row c of the panels times activation row `a`, block by block in the kernel's order and roundings.
float panel_row_dot(GgmlType t, const uint8_t* panels, int64_t c, int64_t n_in, const GemmAct* a) {
  const int kb = gemm_block(t), o = gemm_offset(t);
  const int64_t bb = gemm_block_bytes(t);
  const uint8_t* p = panels + c / kPanelRows * gemm_panel_bytes(t, n_in);
  const int l = (int)(c % kPanelRows);
  float f = 0.0f;
  for (int64_t b = 0; b < n_in / kb; ++b, p += bb) {
    const GemmAct& x = a[b * kb / 32];
    const int h = kb == 32 ? 0 : (int)(b % 2);
    int32_t dot = -o * (kb == 32 ? x.s32 : x.s16[h]);
    for (int j = 0; j < kb; ++j) dot += (int32_t)p[j / 4 * 64 + 4 * l + j % 4] * x.qs[16 * h + j];
    float ws, wm;
    std::memcpy(&ws, p + kPanelRows * kb + 4 * l, 4);
    f = std::fma((float)dot * x.d, ws, f);
    if (!o) {
      std::memcpy(&wm, p + kPanelRows * kb + 64 + 4 * l, 4);
      f = std::fma(-wm, x.m, f);
    }
  }
  return f;
}

}  // namespace

void gemm_i8_reference(GgmlType t, const uint8_t* panels, int64_t n_panels, int64_t n_cols, int64_t n_in,
                       const GemmAct* act, int64_t n_rows, float* y, int64_t ldy) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t c = 0; c < n_cols; ++c) y[r * ldy + c] = panel_row_dot(t, panels, c, n_in, act + r * (n_in / 32));
}

}  // namespace shadowkv::simd
