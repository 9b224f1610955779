#include "kv/shadowkv/chunk_rope.h"

#include <cmath>
#include <vector>

#include "ops/vec.h"

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
  step_c_.resize((size_t)stride * half_);
  step_s_.resize((size_t)stride * half_);
  for (int64_t r = 0; r < stride; ++r)
    for (int i = 0; i < half_; ++i) {
      step_c_[(size_t)r * half_ + i] = (float)std::cos((double)r * inv_freq_[i]);
      step_s_[(size_t)r * half_ + i] = (float)std::sin((double)r * inv_freq_[i]);
    }
}

void RunAngles::at(int64_t pos, float* c, float* s) const {
  const int64_t k = pos / stride_;
  const double* f = &fine_[(size_t)(k % kFine) * 2 * half_];
  const double* g = &coarse_[(size_t)(k / kFine) * 2 * half_];
#pragma omp simd
  for (int i = 0; i < half_; ++i) {
    c[i] = (float)(g[i] * f[i] - g[half_ + i] * f[half_ + i]);
    s[i] = (float)(g[half_ + i] * f[i] + g[i] * f[half_ + i]);
  }
}

void apply_rope_run(const RopeSpec& rope, float* x, int n_rows, int64_t row_stride, int head_dim, int64_t pos0,
                    const RunAngles* angles) {
  const int half = rope.n_rot / 2;
  if (half == 0 || n_rows <= 0) return;
  float c0[512], s0[512];
  if (angles && angles->covers(pos0)) {
    angles->at(pos0, c0, s0);
  } else {
    for (int i = 0; i < half; ++i) {
      c0[i] = (float)std::cos((double)pos0 * rope.inv_freq[i]);
      s0[i] = (float)std::sin((double)pos0 * rope.inv_freq[i]);
    }
  }
  const float *step_c, *step_s;
  thread_local std::vector<float> steps;  // no table long enough: the steps' cos and sin here
  if (angles && n_rows <= angles->stride()) {
    step_c = angles->step_cos();
    step_s = angles->step_sin();
  } else {
    steps.resize((size_t)2 * n_rows * half);
    for (int r = 0; r < n_rows; ++r)
      for (int i = 0; i < half; ++i) {
        steps[(size_t)r * half + i] = (float)std::cos((double)r * rope.inv_freq[i]);
        steps[(size_t)(n_rows + r) * half + i] = (float)std::sin((double)r * rope.inv_freq[i]);
      }
    step_c = steps.data();
    step_s = steps.data() + (size_t)n_rows * half;
  }
  rope_rows(x, n_rows, row_stride, half, rope.style == RopeSpec::Style::Neox, c0, s0, step_c, step_s);
}

}  // namespace shadowkv
