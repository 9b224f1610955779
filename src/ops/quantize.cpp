// f32 -> Q8_0 / Q4_0 blocks, scalar, operation by operation as ggml's reference quantisers.
#include "ops/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "ops/f16.h"
#include "util/error.h"

namespace shadowkv {
namespace {

constexpr int kQK = 32;

inline void put_half(uint8_t* p, float d) {
  const uint16_t h = f32_to_f16(d);
  std::memcpy(p, &h, 2);
}

// d = max|x| / 127 (f32 for the codes, stored as f16); q = round(x / d), halves away from zero.
void quantize_q8_0(const float* x, uint8_t* b) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(b, d);
  for (int j = 0; j < kQK; ++j) b[2 + j] = (uint8_t)(int8_t)std::round(x[j] * id);
}

// d = m / -8 with m the element of largest magnitude (signed); q = min(15, trunc(x / d + 8.5)); element j in the
// low nibble of byte j, element j + 16 in its high nibble.
void quantize_q4_0(const float* x, uint8_t* b) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(b, d);
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t lo = (uint8_t)std::min(15, (int)(int8_t)(x[j] * id + 8.5f));
    const uint8_t hi = (uint8_t)std::min(15, (int)(int8_t)(x[j + kQK / 2] * id + 8.5f));
    b[2 + j] = (uint8_t)(lo | (hi << 4));
  }
}

}  // namespace

float quantize_i8_row(const float* x, int64_t n, int8_t* q) {
  float amax = 0.0f;
  for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t j = 0; j < n; ++j) q[j] = (int8_t)std::lrintf(x[j] * inv);
  return amax / 127.0f;
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  if (type != GgmlType::Q8_0 && type != GgmlType::Q4_0)
    throw Error("quantize_row: only Q8_0 and Q4_0, not " + type_name(static_cast<uint32_t>(type)));
  if (n < 0 || n % kQK != 0) throw Error("quantize_row: row length " + std::to_string(n) + " is not a multiple of 32");
  const int64_t bytes = traits(type).block_bytes;
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i) {
    if (type == GgmlType::Q8_0)
      quantize_q8_0(src + i * kQK, out + i * bytes);
    else
      quantize_q4_0(src + i * kQK, out + i * bytes);
  }
}

}  // namespace shadowkv
