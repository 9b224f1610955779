#include "kv/shadowkv/chunk_rope.h"

#include <cmath>
#include <vector>

namespace shadowkv {

void apply_rope_run(const RopeSpec& rope, float* x, int n_rows, int64_t row_stride, int head_dim, int64_t pos0) {
  const int half = rope.n_rot / 2;
  if (half == 0 || n_rows <= 0) return;
  double c[512], s[512], dc[512], ds[512];
  const bool have = rope.step_cos.size() == rope.inv_freq.size();  // RopeSpec::make fills the step tables
  for (int i = 0; i < half; ++i) {
    const double f = rope.inv_freq[i];
    c[i] = std::cos((double)pos0 * f);
    s[i] = std::sin((double)pos0 * f);
    dc[i] = have ? rope.step_cos[i] : std::cos(f);
    ds[i] = have ? rope.step_sin[i] : std::sin(f);
  }
  const bool neox = rope.style == RopeSpec::Style::Neox;
  float cf[512], sf[512];
  for (int r = 0; r < n_rows; ++r) {
    // The row's angles as floats, then the next row's (angle += inv_freq): separate loops, so both vectorise.
#pragma omp simd
    for (int i = 0; i < half; ++i) cf[i] = (float)c[i], sf[i] = (float)s[i];
#pragma omp simd
    for (int i = 0; i < half; ++i) {
      const double nc = c[i] * dc[i] - s[i] * ds[i];
      s[i] = s[i] * dc[i] + c[i] * ds[i];
      c[i] = nc;
    }
    float* v = x + r * row_stride;
    if (neox) {
#pragma omp simd
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cf[i] - b * sf[i];
        v[i + half] = a * sf[i] + b * cf[i];
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * cf[i] - b * sf[i];
        v[2 * i + 1] = a * sf[i] + b * cf[i];
      }
    }
  }
}

}  // namespace shadowkv
