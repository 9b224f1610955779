// ShadowKV's chunk landmarks, stored for scoring: panels of kPanelRows landmarks transposed ([head_dim][kPanelRows],
// f32 or IEEE f16), so the decode step's scores are broadcast multiply-adds over whole panel rows with no horizontal
// sums (vec.h panel_scores). Unused columns of the last panel are zero.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/vec.h"

namespace shadowkv {

class LandmarkPanels {
 public:
  LandmarkPanels() = default;
  LandmarkPanels(int width, bool f16) : width_(width), f16_(f16) {}

  // Appends n landmarks of width floats each.
  void append(const float* rows, int64_t n);

  int64_t size() const { return n_; }
  int64_t n_panels() const { return (n_ + kPanelRows - 1) / kPanelRows; }
  int64_t bytes() const { return (int64_t)(h_.size() * 2 + f_.size() * 4); }
  int width() const { return width_; }
  bool f16() const { return f16_; }
  const void* data() const { return f16_ ? (const void*)h_.data() : (const void*)f_.data(); }

 private:
  int width_ = 0;
  bool f16_ = false;
  int64_t n_ = 0;
  std::vector<float> f_;
  std::vector<uint16_t> h_;
};

}  // namespace shadowkv
