// The AVX-512 quant backend: quant_x86.h's kernels built with AVX-512 BW/VL/VNNI (its int8 dots become vpdpbusd).
#include "ops/quant_x86.h"

namespace shadowkv::simd {

const QuantOps kAvx512QuantOps{"avx512",     dequantize, dequantize_packed, act_kind,
                               quantize_act, dot,        dot_rows,          dot_rows_packed};

}  // namespace shadowkv::simd
