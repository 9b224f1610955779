// RoPE for a run of consecutive positions (a rebuilt chunk): same result as apply_rope() per row, but the angles
// of positions pos0+1.. are stepped from pos0 by complex multiplication in double precision, so a chunk of 8
// tokens costs n_rot/2 sin/cos instead of 8x that (sin/cos dominated key rebuild at long contexts). With a
// RunAngles table the angles at pos0 come from two table rows instead of sin/cos at all.
// (Candidate for ops/rope.h; kept private to shadowkv until the owner of rope.h wants it.)
#pragma once
#include <cstdint>
#include <vector>

#include "ops/rope.h"

namespace shadowkv {

// cos and sin of every rotated pair's angle at the positions p = k * stride < limit (chunk starts), from two
// small tables (p = a * 64 stride + b * stride: the angle sum of a coarse and a fine row), in double precision.
class RunAngles {
 public:
  RunAngles(const RopeSpec& rope, int64_t stride, int64_t limit);
  bool covers(int64_t pos) const { return pos >= 0 && pos < limit_ && pos % stride_ == 0; }
  int64_t limit() const { return limit_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  // c[i] = cos(pos * inv_freq[i]), s[i] = sin(...), i < n_rot / 2; pos must be covered.
  void at(int64_t pos, double* c, double* s) const;

 private:
  static constexpr int kFine = 64;
  int half_;
  int64_t stride_, limit_;
  std::vector<float> inv_freq_;
  std::vector<double> fine_, coarse_;  // [row][cos half | sin half]
};

// Rotates n_rows rows (one head each, head_dim floats, row_stride apart) at positions pos0, pos0+1, ...
// `angles` (optional, built from the same rope) gives pos0's angles when it covers pos0.
void apply_rope_run(const RopeSpec& rope, float* x, int n_rows, int64_t row_stride, int head_dim, int64_t pos0,
                    const RunAngles* angles = nullptr);

}  // namespace shadowkv
