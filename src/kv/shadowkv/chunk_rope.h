// RoPE for a run of consecutive positions (a rebuilt chunk): apply_rope() per row to float precision, but the
// angles of row r are pos0's advanced by r steps (angle addition with a table of r * inv_freq, the vectorised
// rope_rows kernel), so a chunk of 8 tokens costs n_rot/2 sin/cos instead of 8x that (sin/cos dominated key
// rebuild at long contexts). With a RunAngles table the angles at pos0 come from two table rows (double precision)
// and the steps from a third, so no sin/cos is computed at all.
// (Candidate for ops/rope.h; kept private to shadowkv until the owner of rope.h wants it.)
#pragma once
#include <cstdint>
#include <vector>

#include "ops/rope.h"

namespace shadowkv {

// cos and sin of every rotated pair's angle at the positions p = k * stride < limit (chunk starts), from two
// small tables (p = a * 64 stride + b * stride: the angle sum of a coarse and a fine row), in double precision;
// and, for the rows of a run, cos and sin of r * inv_freq for r < stride (floats).
class RunAngles {
 public:
  RunAngles(const RopeSpec& rope, int64_t stride, int64_t limit);
  bool covers(int64_t pos) const { return pos >= 0 && pos < limit_ && pos % stride_ == 0; }
  int64_t limit() const { return limit_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  // c[i] = cos(pos * inv_freq[i]), s[i] = sin(...), i < n_rot / 2 (computed in double); pos must be covered.
  void at(int64_t pos, float* c, float* s) const;
  int64_t stride() const { return stride_; }
  // [stride][n_rot / 2]: cos and sin of r * inv_freq[i] at [r * n_rot / 2 + i].
  const float* step_cos() const { return step_c_.data(); }
  const float* step_sin() const { return step_s_.data(); }

 private:
  static constexpr int kFine = 64;
  int half_;
  int64_t stride_, limit_;
  std::vector<float> inv_freq_;
  std::vector<double> fine_, coarse_;  // [row][cos half | sin half]
  std::vector<float> step_c_, step_s_;
};

// Rotates n_rows rows (one head each, head_dim floats, row_stride apart) at positions pos0, pos0+1, ...
// `angles` (optional, built from the same rope) gives pos0's angles when it covers pos0.
void apply_rope_run(const RopeSpec& rope, float* x, int n_rows, int64_t row_stride, int head_dim, int64_t pos0,
                    const RunAngles* angles = nullptr);

}  // namespace shadowkv
