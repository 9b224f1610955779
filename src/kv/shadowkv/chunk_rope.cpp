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
  for (int r = 0; r < n_rows; ++r) {
    float* v = x + r * row_stride;
    for (int i = 0; i < half; ++i) {
      const int ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
      const float cs = (float)c[i], sn = (float)s[i];
      const float a = v[ia], b = v[ib];
      v[ia] = a * cs - b * sn;
      v[ib] = a * sn + b * cs;
      const double nc = c[i] * dc[i] - s[i] * ds[i];  // angle += inv_freq
      s[i] = s[i] * dc[i] + c[i] * ds[i];
      c[i] = nc;
    }
  }
}

}  // namespace shadowkv
