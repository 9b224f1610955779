#include "ops/rope.h"

#include <cmath>

namespace shadowkv {

RopeSpec RopeSpec::make(Style style, int n_rot, float base, float linear_scale, const float* freq_factors) {
  RopeSpec r;
  r.style = style;
  r.n_rot = n_rot;
  r.inv_freq.resize(n_rot / 2);
  for (int i = 0; i < n_rot / 2; ++i) {
    double f = std::pow((double)base, -2.0 * i / n_rot) / linear_scale;
    if (freq_factors) f /= freq_factors[i];
    r.inv_freq[i] = (float)f;
  }
  return r;
}

void apply_rope(const RopeSpec& rope, float* x, int n_heads, int head_dim, int64_t pos) {
  const int half = rope.n_rot / 2;
  // Angles are computed in double so long positions (>100K) keep their precision.
  float cs[512], sn[512];
  for (int i = 0; i < half; ++i) {
    const double theta = (double)pos * rope.inv_freq[i];
    cs[i] = (float)std::cos(theta);
    sn[i] = (float)std::sin(theta);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + (int64_t)h * head_dim;
    for (int i = 0; i < half; ++i) {
      const int ia = rope.style == RopeSpec::Style::Neox ? i : 2 * i;
      const int ib = rope.style == RopeSpec::Style::Neox ? i + half : 2 * i + 1;
      const float a = v[ia], b = v[ib];
      v[ia] = a * cs[i] - b * sn[i];
      v[ib] = a * sn[i] + b * cs[i];
    }
  }
}

}  // namespace shadowkv
