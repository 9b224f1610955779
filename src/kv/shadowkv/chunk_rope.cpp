#include "kv/shadowkv/chunk_rope.h"

#include <cmath>
#include <vector>

namespace shadowkv {

RunAngles::RunAngles(const RopeSpec& rope, int64_t stride, int64_t limit)
    : half_(rope.n_rot / 2), stride_(stride), limit_(limit), inv_freq_(rope.inv_freq) {
  const int64_t coarse_rows = (limit + kFine * stride - 1) / (kFine * stride);
  fine_.resize((size_t)kFine * 2 * half_);
  coarse_.resize((size_t)coarse_rows * 2 * half_);
  const auto fill = [&](double* row, int64_t pos) {
    for (int i = 0; i < half_; ++i) {
      row[i] = std::cos((double)pos * inv_freq_[i]);
      row[half_ + i] = std::sin((double)pos * inv_freq_[i]);
    }
  };
  for (int b = 0; b < kFine; ++b) fill(&fine_[(size_t)b * 2 * half_], b * stride);
  for (int64_t a = 0; a < coarse_rows; ++a) fill(&coarse_[(size_t)a * 2 * half_], a * kFine * stride);
}

void RunAngles::at(int64_t pos, double* c, double* s) const {
  const int64_t k = pos / stride_;
  const double* f = &fine_[(size_t)(k % kFine) * 2 * half_];
  const double* g = &coarse_[(size_t)(k / kFine) * 2 * half_];
#pragma omp simd
  for (int i = 0; i < half_; ++i) {
    c[i] = g[i] * f[i] - g[half_ + i] * f[half_ + i];
    s[i] = g[half_ + i] * f[i] + g[i] * f[half_ + i];
  }
}

void apply_rope_run(const RopeSpec& rope, float* x, int n_rows, int64_t row_stride, int head_dim, int64_t pos0,
                    const RunAngles* angles) {
  const int half = rope.n_rot / 2;
  if (half == 0 || n_rows <= 0) return;
  double c[512], s[512], dc[512], ds[512];
  const bool have = rope.step_cos.size() == rope.inv_freq.size();  // RopeSpec::make fills the step tables
  const bool table = angles && angles->covers(pos0);
  if (table) angles->at(pos0, c, s);
  for (int i = 0; i < half; ++i) {
    const double f = rope.inv_freq[i];
    if (!table) {
      c[i] = std::cos((double)pos0 * f);
      s[i] = std::sin((double)pos0 * f);
    }
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
