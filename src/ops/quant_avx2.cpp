// The AVX2 + FMA + F16C quant backend: quant_x86.h's kernels built for AVX2.
#include "ops/quant_x86.h"

namespace shadowkv::simd {

const QuantOps kAvx2QuantOps{"avx2",       dequantize, dequantize_packed, act_kind,
                             quantize_act, dot,        dot_rows,          dot_rows_packed};

}  // namespace shadowkv::simd
