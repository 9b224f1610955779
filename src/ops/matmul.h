// Matrix products of a (possibly quantised) weight matrix with a batch of activation rows.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/ggml_type.h"

namespace shadowkv {

// A GGUF linear weight: n_out rows of n_in elements each (ne = [n_in, n_out]), row-major, quantised per row.
struct QMatrix {
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 0;
  int64_t row_stride = 0;  // bytes per row
  // Optional second copy of the rows in the decode layout of the type (pack_weights; owned elsewhere), read by the
  // dot kernels of decode.
  const uint8_t* packed = nullptr;
};

// W's rows in the decode layout of its type, written to dst (packed_bytes(W) bytes; Error for a type without one):
// - Q8_0 (pack_rows4): rows interleaved in groups of four, block by block (the four f16 scales, then the four rows'
//   32 quants), so that a batch-1 matvec reads one sequential stream while it computes four rows (four separate row
//   streams defeat the hardware prefetcher on a matrix that lives in DRAM). Rows after the last whole group are left
//   out (they are read from W).
// - Q4_0/Q5_0 (pack_q32_runs): each row's blocks by runs of eight, their quants interleaved by fours across the
//   run's blocks (simd::packed_q32_plane gives the layout), as many bytes as the GGUF rows: the dot kernels then take
//   one exact int32 sum per block with no horizontal adds.
void pack_weights_into(const QMatrix& W, uint8_t* dst);
// The size of W's packed layout (0: its type has none).
int64_t packed_bytes(const QMatrix& W);
// The same bytes in a vector of their own (empty for a type without a packed layout).
std::vector<uint8_t> pack_weights(const QMatrix& W);

// Y[b, o] = sum_i W[o, i] * X[b, i] for b in [0, n_rows); X is [n_rows, n_in], Y is [n_rows, n_out], both
// row-major f32. Uses all OpenMP threads. Small n_rows (decode) streams the weights once with SIMD dot
// kernels; large n_rows (prefill) runs the backend's int8 GEMM (AVX-512 VNNI; int8 activations as in decode), or
// for a type or backend without one dequantises weight tiles and runs an SGEMM.
void matmul(const QMatrix& W, const float* X, int64_t n_rows, float* Y);

// Rows [begin, begin + n) of X, computed as matmul() computes a batch of exactly those rows.
struct RowSpan {
  int64_t begin = 0;
  int64_t n = 0;
};

// The rows of consecutive spans (covering X in order) through matmul, each span's rows exactly as matmul(span)
// would give them whatever the other spans are: spans with fewer rows than the GEMM threshold share one pass of
// the weights (the dot kernels compute every row on its own), larger spans get their own GEMM. The model uses this
// so that a sequence's logits do not depend on what else is in the batch.
void matmul_spans(const QMatrix& W, const float* X, const std::vector<RowSpan>& spans, float* Y);

// One weight matrix and where its outputs go ([rows, W->n_out], row-major).
struct MatOut {
  const QMatrix* W;
  float* Y;
};

// Several matrices with the same n_in applied to the same rows (q, k and v; gate and up), in one parallel region
// and with the activations quantised once: each Y exactly as matmul_spans(*W, X, spans, Y) gives it.
void matmul_spans(const std::vector<MatOut>& jobs, const float* X, const std::vector<RowSpan>& spans);

// The OpenBLAS kernel set (an OPENBLAS_CORETYPE value) to run instead of the one OpenBLAS chose, or nullptr when
// its choice fits the CPU. OpenBLAS 0.3.21 (Debian 12) does not know newer CPUs (e.g. the Xeon of family 6 model
// 207) and falls back to its SSE3 "Prescott" kernels: prefill SGEMM 3x slower than with its AVX-512 ones. OpenBLAS
// reads OPENBLAS_CORETYPE once, when it is loaded, so a program sets it and re-executes itself (apps/main.cpp).
const char* blas_core_override();

}  // namespace shadowkv
