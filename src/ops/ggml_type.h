// GGML tensor element types as stored in GGUF files, and their block geometry.
#pragma once
#include <cstdint>
#include <string>

namespace shadowkv {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct TypeTraits {
  const char* name;
  int64_t block_elems;  // elements per block (1 for plain float types)
  int64_t block_bytes;  // bytes per block
  bool supported;       // do we have dequantisation and dot kernels for it
};

// Traits for a raw type id read from a file; nullptr when the id is unknown or retired.
const TypeTraits* type_traits(uint32_t type_id);
inline const TypeTraits& traits(GgmlType t) { return *type_traits(static_cast<uint32_t>(t)); }
std::string type_name(uint32_t type_id);

// The 6-bit scale and min of sub-block s (< 8) of a Q4_K/Q5_K block from its 12-byte scales field.
inline void kscale(const uint8_t* sc, int s, int* scale, int* min) {
  if (s < 4) {
    *scale = sc[s] & 63;
    *min = sc[s + 4] & 63;
  } else {
    *scale = (sc[s + 4] & 0xF) | ((sc[s - 4] >> 6) << 4);
    *min = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
  }
}

// Bytes of one row of n elements; n must be a multiple of the block size.
inline int64_t row_bytes(GgmlType t, int64_t n) {
  const TypeTraits& tt = traits(t);
  return n / tt.block_elems * tt.block_bytes;
}

}  // namespace shadowkv
