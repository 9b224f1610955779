// f32 -> GGML block quantisation, the inverse of quant.h's dequantize_row: Q8_0 and Q4_0 exactly as ggml's reference
// quantize_row_q8_0_ref / quantize_row_q4_0_ref (same scale, rounding and nibble packing), so the bytes are
// ggml's block_q8_0 {f16 d; int8 qs[32]} and block_q4_0 {f16 d; uint8 qs[16]}.
#pragma once
#include <cstdint>

#include "ops/ggml_type.h"

namespace shadowkv {

// dst = n elements of src as `type` (Q8_0 or Q4_0; Error for any other type or n not a multiple of 32).
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// One int8 row with one f32 scale (ShadowKV's U rows and value means): d = max|x| / 127, q[i] = x[i] / d rounded to
// nearest (ties to even); returns d (0 and all-zero codes for a zero row).
float quantize_i8_row(const float* x, int64_t n, int8_t* q);

}  // namespace shadowkv
