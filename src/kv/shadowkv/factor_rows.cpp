#include "kv/shadowkv/factor_rows.h"

#include <algorithm>

#include "ops/vec.h"

namespace shadowkv {

void FactorRows::append(const float* rows, int64_t n) {
  const size_t count = (size_t)n * width_;
  if (!f16_) {
    f_.insert(f_.end(), rows, rows + count);
    return;
  }
  const size_t old = h_.size();
  h_.resize(old + count);
  f32_to_f16_row(rows, h_.data() + old, (int64_t)count);
}

void FactorRows::read(int64_t first, int64_t n, float* out) const {
  const size_t off = (size_t)first * width_, count = (size_t)n * width_;
  if (f16_)
    f16_to_f32_row(h_.data() + off, out, (int64_t)count);
  else
    std::copy_n(f_.data() + off, count, out);
}

}  // namespace shadowkv
