// Rows of `width` floats stored as f32 or IEEE f16: ShadowKV's U rows (f16 halves their share of the hot tier;
// the authors keep everything in bf16). The landmarks have their own layout (landmark_panels.h).
#pragma once
#include <cstdint>
#include <vector>

namespace shadowkv {

class FactorRows {
 public:
  FactorRows() = default;
  FactorRows(int width, bool f16) : width_(width), f16_(f16) {}

  void append(const float* rows, int64_t n);
  // Rows [first, first + n) as f32 into out [n][width].
  void read(int64_t first, int64_t n, float* out) const;

  int64_t size() const { return width_ == 0 ? 0 : (int64_t)(f16_ ? h_.size() : f_.size()) / width_; }
  int64_t bytes() const { return (int64_t)(h_.size() * 2 + f_.size() * 4); }
  int width() const { return width_; }
  bool f16() const { return f16_; }

 private:
  int width_ = 0;
  bool f16_ = false;
  std::vector<float> f_;
  std::vector<uint16_t> h_;
};

}  // namespace shadowkv
