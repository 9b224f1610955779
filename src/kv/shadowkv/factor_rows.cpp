// FactorRows: append and read U rows in their storage type (f32 copy, f16 rows, int8 rows with a per-row scale).
#include "kv/shadowkv/factor_rows.h"

#include <algorithm>

#include "ops/quantize.h"
#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

FactorType parse_factor_type(const std::string& name) {
  if (name == "f32") return FactorType::F32;
  if (name == "f16") return FactorType::F16;
  if (name == "q8") return FactorType::Q8;
  throw Error("shadowkv: factor dtype must be auto, f16, f32 or q8 (got '" + name + "')");
}

void FactorRows::append(const float* rows, int64_t n) {
  const size_t count = (size_t)n * width_;
  rows_ += n;
  if (type_ == FactorType::F32) {
    f_.insert(f_.end(), rows, rows + count);
  } else if (type_ == FactorType::F16) {
    const size_t old = h_.size();
    h_.resize(old + count);
    f32_to_f16_row(rows, h_.data() + old, (int64_t)count);
  } else {
    const size_t old = q_.size();
    q_.resize(old + count);
    for (int64_t r = 0; r < n; ++r)
      scale_.push_back(quantize_i8_row(rows + r * width_, width_, q_.data() + old + (size_t)r * width_));
  }
}

void FactorRows::read(int64_t first, int64_t n, float* out) const {
  const size_t off = (size_t)first * width_, count = (size_t)n * width_;
  if (type_ == FactorType::F32) {
    std::copy_n(f_.data() + off, count, out);
  } else if (type_ == FactorType::F16) {
    f16_to_f32_row(h_.data() + off, out, (int64_t)count);
  } else {
    for (int64_t r = 0; r < n; ++r)
      i8_to_f32_row(q_.data() + off + (size_t)r * width_, scale_[first + r], out + r * width_, width_);
  }
}

}  // namespace shadowkv
