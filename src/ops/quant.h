// Quantised tensor formats: dequantisation and dot products of one quantised row with a float vector.
// Kernels are chosen once at run time from the CPU's features (AVX-512 / AVX2 / scalar); set
// SHADOWKV_SIMD=scalar|avx2|avx512 to force one (tests compare them).
#pragma once
#include <cstdint>

#include "ops/ggml_type.h"

namespace shadowkv {

// dst[0..n) = dequantised src; n must be a multiple of the type's block size.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// sum_i row[i] * x[i] for a quantised row of n elements.
float dot_row(GgmlType type, const void* row, const float* x, int64_t n);

// Name of the active SIMD backend ("avx512", "avx2" or "scalar").
const char* simd_backend();

}  // namespace shadowkv
