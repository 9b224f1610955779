// KIVI's asymmetric min/max quantisation: a group of values gets an f16 scale s = (max - min) / (2^bits - 1) and an
// f16 zero point min; code = round((x - min) / s) in [0, 2^bits - 1] (computed against the f16-rounded s and min),
// x ~= min + code * s. Codes of 2 or 4 bits are packed little-end first, 8/bits per byte, one row per token.
#pragma once
#include <cstdint>

namespace shadowkv::kivi {

// Scale and zero point (as f16 bits) of n values x[0], x[stride], ...
void group_params(const float* x, int64_t n, int64_t stride, int bits, uint16_t* scale, uint16_t* min);

// The code of x for scale s and zero point mn (f32 values of the f16 parameters).
inline int code_of(float x, float s, float mn, int bits) {
  const int qmax = (1 << bits) - 1;
  if (!(s > 0.0f)) return 0;
  const float c = __builtin_rintf((x - mn) / s);
  return c <= 0.0f ? 0 : c >= (float)qmax ? qmax : (int)c;
}

// Bytes of a packed row of n codes.
inline int64_t packed_bytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

// Packs n codes (each < 2^bits) into row; unpacks and dequantises a row: out[c] = mn[c] + code[c] * s[c].
void pack_codes(const int* codes, int64_t n, int bits, uint8_t* row);
void dequantize_codes(const uint8_t* row, int64_t n, int bits, const float* s, const float* mn, float* out);

}  // namespace shadowkv::kivi
