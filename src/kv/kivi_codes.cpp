// KIVI's asymmetric group quantisation and 2/4-bit code packing (see kivi_codes.h).
#include "kv/kivi_codes.h"

#include <algorithm>
#include <cstring>

#include "ops/f16.h"

namespace shadowkv::kivi {

void group_params(const float* x, int64_t n, int64_t stride, int bits, uint16_t* scale, uint16_t* min) {
  float lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i * stride]);
    hi = std::max(hi, x[i * stride]);
  }
  *min = f32_to_f16(lo);
  *scale = f32_to_f16((hi - lo) / (float)((1 << bits) - 1));
}

void pack_codes(const int* codes, int64_t n, int bits, uint8_t* row) {
  const int per_byte = 8 / bits;
  std::memset(row, 0, (size_t)packed_bytes(n, bits));
  for (int64_t c = 0; c < n; ++c) row[c / per_byte] |= (uint8_t)(codes[c] << ((c % per_byte) * bits));
}

namespace {

template <int B>
void dequantize_packed(const uint8_t* row, int64_t n, const float* s, const float* mn, float* out) {
  constexpr int per_byte = 8 / B, mask = (1 << B) - 1;
  for (int64_t c = 0; c < n; ++c) {
    const int code = (row[c / per_byte] >> ((c % per_byte) * B)) & mask;
    out[c] = mn[c] + (float)code * s[c];
  }
}

}  // namespace

void dequantize_codes(const uint8_t* row, int64_t n, int bits, const float* s, const float* mn, float* out) {
  if (bits == 2)
    dequantize_packed<2>(row, n, s, mn, out);
  else
    dequantize_packed<4>(row, n, s, mn, out);
}

}  // namespace shadowkv::kivi
