// Landmarks in transposed panels (landmark_panels.h).
#include "kv/shadowkv/landmark_panels.h"

#include "ops/f16.h"

namespace shadowkv {

void LandmarkPanels::append(const float* rows, int64_t n) {
  const int64_t panel_elems = (int64_t)width_ * kPanelRows;
  for (int64_t r = 0; r < n; ++r, ++n_) {
    const int64_t p = n_ / kPanelRows, c = n_ % kPanelRows;
    if (c == 0) {  // a new panel, zero-filled
      if (f16_)
        h_.resize((size_t)(p + 1) * panel_elems, 0);
      else
        f_.resize((size_t)(p + 1) * panel_elems, 0.0f);
    }
    const float* row = rows + r * width_;
    for (int d = 0; d < width_; ++d) {
      const size_t at = (size_t)(p * panel_elems + (int64_t)d * kPanelRows + c);
      if (f16_)
        h_[at] = f32_to_f16(row[d]);
      else
        f_[at] = row[d];
    }
  }
}

}  // namespace shadowkv
