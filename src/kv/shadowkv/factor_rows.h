// Rows of `width` floats stored as f32, IEEE f16, or int8 with one f32 scale per row (q8): ShadowKV's U rows (f16
// halves their share of the hot tier, q8 nearly halves it again; the authors keep everything in bf16). The
// landmarks have their own layout (landmark_panels.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shadowkv {

enum class FactorType { F32, F16, Q8 };

// "f32", "f16", "q8" -> FactorType; throws Error on anything else.
FactorType parse_factor_type(const std::string& name);

class FactorRows {
 public:
  FactorRows() = default;
  FactorRows(int width, FactorType type) : width_(width), type_(type) {}

  void append(const float* rows, int64_t n);
  // Rows [first, first + n) as f32 into out [n][width].
  void read(int64_t first, int64_t n, float* out) const;

  int64_t size() const { return rows_; }
  int64_t bytes() const { return (int64_t)(f_.size() * 4 + h_.size() * 2 + q_.size() + scale_.size() * 4); }
  int width() const { return width_; }
  FactorType type() const { return type_; }

 private:
  int width_ = 0;
  FactorType type_ = FactorType::F32;
  int64_t rows_ = 0;
  std::vector<float> f_;
  std::vector<uint16_t> h_;
  std::vector<int8_t> q_;     // q8: width values per row
  std::vector<float> scale_;  // q8: one per row, the row's max |value| / 127
};

}  // namespace shadowkv
