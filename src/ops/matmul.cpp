// Weight x activations: SIMD dot kernels for decode-sized batches, dequantised tiles + OpenBLAS SGEMM for prefill.
#include "ops/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "ops/quant_dispatch.h"
#include "util/error.h"

namespace shadowkv {
namespace {

using simd::kGemmMinRows;
// Output rows dequantised per SGEMM call (f32 tile of kTileRows x n_in per thread); larger tiles re-pack X less often.
constexpr int64_t kTileRows = 128;

void check(const QMatrix& W, const float* X, int64_t n_rows, const float* Y) {
  const TypeTraits* tt = type_traits(static_cast<uint32_t>(W.type));
  if (!tt || !tt->supported) throw Error("matmul: unsupported weight type " + type_name(static_cast<uint32_t>(W.type)));
  if (W.n_in <= 0 || W.n_out <= 0 || n_rows < 0) throw Error("matmul: bad shape");
  if (W.n_in % tt->block_elems != 0)
    throw Error("matmul: n_in " + std::to_string(W.n_in) + " is not a multiple of the " + tt->name + " block size");
  if (W.row_stride < row_bytes(W.type, W.n_in)) throw Error("matmul: row_stride smaller than one row");
  if (!W.data || (n_rows > 0 && (!X || !Y))) throw Error("matmul: null data");
}

void matmul_dot(const QMatrix& W, const float* X, int64_t n_rows, float* Y) {
  const simd::QuantOps& ops = simd::quant_ops();
  const simd::ActKind kind = ops.act_kind(W.type);
  const int64_t ab = simd::act_bytes(kind, W.n_in);
  std::vector<uint8_t> act(ab * n_rows);
  for (int64_t b = 0; b < n_rows; ++b) ops.quantize_act(kind, X + b * W.n_in, act.data() + b * ab, W.n_in);
  // Each weight row is read from memory once and stays in L1 while it meets every activation row. Dynamic chunks
  // keep both cores busy when one of them is briefly taken by another process.
  const int64_t chunk = std::max<int64_t>(16, W.n_out / (8 * omp_get_max_threads()));
#pragma omp parallel for schedule(dynamic, chunk)
  for (int64_t o = 0; o < W.n_out; ++o) {
    const uint8_t* row = W.data + o * W.row_stride;
    for (int64_t b = 0; b < n_rows; ++b)
      Y[b * W.n_out + o] = ops.dot(W.type, row, X + b * W.n_in, act.data() + b * ab, W.n_in);
  }
}

// One SGEMM per span and weight tile; each tile is dequantised once for all spans. A span's rows come out exactly
// as a call with that span alone would give them.
void matmul_gemm(const QMatrix& W, const float* X, const RowSpan* spans, size_t n_spans, float* Y) {
  const simd::QuantOps& ops = simd::quant_ops();
  const int64_t n_in = W.n_in, n_tiles = (W.n_out + kTileRows - 1) / kTileRows;
  const bool direct = W.type == GgmlType::F32 && W.row_stride % 4 == 0;
  // Our OpenMP threads already cover the cores: each SGEMM call runs single-threaded inside them.
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
#pragma omp parallel
  {
    std::vector<float> tile(direct ? 0 : kTileRows * n_in);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t o0 = t * kTileRows, rows = std::min(kTileRows, W.n_out - o0);
      const float* wt;
      int64_t ldw;
      if (direct) {
        wt = (const float*)(W.data + o0 * W.row_stride);
        ldw = W.row_stride / 4;
      } else {
        for (int64_t r = 0; r < rows; ++r)
          ops.dequantize(W.type, W.data + (o0 + r) * W.row_stride, &tile[r * n_in], n_in);
        wt = tile.data();
        ldw = n_in;
      }
      for (size_t sp = 0; sp < n_spans; ++sp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)spans[sp].n, (int)rows, (int)n_in, 1.0f,
                    X + spans[sp].begin * n_in, (int)n_in, wt, (int)ldw, 0.0f, Y + spans[sp].begin * W.n_out + o0,
                    (int)W.n_out);
    }
  }
  openblas_set_num_threads(blas_threads);
}

}  // namespace

void matmul(const QMatrix& W, const float* X, int64_t n_rows, float* Y) {
  check(W, X, n_rows, Y);
  if (n_rows == 0) return;
  const RowSpan all{0, n_rows};
  if (n_rows < kGemmMinRows)
    matmul_dot(W, X, n_rows, Y);
  else
    matmul_gemm(W, X, &all, 1, Y);
}

void matmul_spans(const QMatrix& W, const float* X, const std::vector<RowSpan>& spans, float* Y) {
  int64_t total = 0;
  for (const RowSpan& s : spans) total += s.n;
  check(W, X, total, Y);
  std::vector<RowSpan> big;
  for (size_t i = 0; i < spans.size();) {
    if (spans[i].n >= kGemmMinRows) {
      big.push_back(spans[i++]);
      continue;
    }
    size_t j = i;  // a run of consecutive small spans: one pass of the dot kernels
    int64_t rows = 0;
    while (j < spans.size() && spans[j].n < kGemmMinRows && spans[j].begin == spans[i].begin + rows)
      rows += spans[j++].n;
    if (rows > 0) matmul_dot(W, X + spans[i].begin * W.n_in, rows, Y + spans[i].begin * W.n_out);
    i = std::max(j, i + 1);
  }
  if (!big.empty()) matmul_gemm(W, X, big.data(), big.size(), Y);
}

}  // namespace shadowkv
