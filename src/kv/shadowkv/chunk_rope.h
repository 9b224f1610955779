// RoPE for a run of consecutive positions (a rebuilt chunk): same result as apply_rope() per row, but the angles
// of positions pos0+1.. are stepped from pos0 by complex multiplication in double precision, so a chunk of 8
// tokens costs n_rot/2 sin/cos instead of 8x that (sin/cos dominated key rebuild at long contexts).
// (Candidate for ops/rope.h; kept private to shadowkv until the owner of rope.h wants it.)
#pragma once
#include <cstdint>

#include "ops/rope.h"

namespace shadowkv {

// Rotates n_rows rows (one head each, head_dim floats, row_stride apart) at positions pos0, pos0+1, ...
void apply_rope_run(const RopeSpec& rope, float* x, int n_rows, int64_t row_stride, int head_dim, int64_t pos0);

}  // namespace shadowkv
