// Weight x activations: SIMD dot kernels for decode-sized batches; for prefill an int8 GEMM (AVX-512 VNNI) or
// dequantised tiles + OpenBLAS SGEMM.
#include "ops/matmul.h"

#include <cblas.h>
#include <omp.h>
#include <strings.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "ops/gemm_i8.h"
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

// Activation rows quantised once per kind for all matrices that read them (e.g. q, k and v).
struct PreparedRows {
  const float* x;
  int64_t rows, n_in;
  std::vector<uint8_t> act[simd::kActKinds];  // by ActKind

  const uint8_t* get(simd::ActKind kind) {
    std::vector<uint8_t>& a = act[(int)kind];
    const int64_t ab = simd::act_bytes(kind, n_in);
    if (kind != simd::ActKind::kNone && a.empty()) {
      a.resize(ab * rows);
      for (int64_t b = 0; b < rows; ++b) simd::quant_ops().quantize_act(kind, x + b * n_in, a.data() + b * ab, n_in);
    }
    return a.data();
  }
};

constexpr int64_t kBlock = 34;  // bytes of a Q8_0 block

// A run of output rows [o0, o1) of one matrix.
struct RowRange {
  size_t job;
  int64_t o0, o1;
};

// Splits every matrix's outputs into ranges of at most `per` rows and at most max_bytes of weights (so a range
// stays in L2 while every group of activation rows passes over it), for dynamic scheduling over both cores.
std::vector<RowRange> split_outputs(const MatOut* jobs, size_t n_jobs, int64_t per, int64_t max_bytes) {
  std::vector<RowRange> ranges;
  for (size_t j = 0; j < n_jobs; ++j) {
    int64_t step = std::max<int64_t>(1, std::min(per, max_bytes / jobs[j].W->row_stride));
    if (jobs[j].W->packed && jobs[j].W->type == GgmlType::Q8_0)
      step = std::max<int64_t>(4, step / 4 * 4);  // ranges start on a packed group of four rows
    for (int64_t o = 0; o < jobs[j].W->n_out; o += step) ranges.push_back({j, o, std::min(o + step, jobs[j].W->n_out)});
  }
  return ranges;
}

// Rows [r0, r0 + rows) of X through every matrix with the dot kernels, in one parallel region. A range of weight
// rows (tens of KB) stays in L2 while it meets every group of kMaxDotRows activation rows.
void matmul_dot(const MatOut* jobs, size_t n_jobs, const float* X, int64_t r0, int64_t rows) {
  const simd::QuantOps& ops = simd::quant_ops();
  const int64_t n_in = jobs[0].W->n_in;
  PreparedRows prep{X + r0 * n_in, rows, n_in, {}};
  std::vector<const uint8_t*> act(n_jobs);
  std::vector<int64_t> act_row_bytes(n_jobs);
  int64_t total = 0;
  for (size_t j = 0; j < n_jobs; ++j) {
    const simd::ActKind kind = ops.act_kind(jobs[j].W->type);
    act[j] = prep.get(kind);
    act_row_bytes[j] = simd::act_bytes(kind, n_in);
    total += jobs[j].W->n_out;
  }
  const int64_t per = std::max<int64_t>(16, total / (8 * omp_get_max_threads()));
  const std::vector<RowRange> ranges =
      split_outputs(jobs, n_jobs, per, rows > simd::kMaxDotRows ? 128 << 10 : INT64_MAX);
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t t = 0; t < ranges.size(); ++t) {
    const QMatrix& W = *jobs[ranges[t].job].W;
    float* Y = jobs[ranges[t].job].Y + r0 * W.n_out;
    const int64_t ab = act_row_bytes[ranges[t].job], o0 = ranges[t].o0;
    for (int64_t b = 0; b < rows; b += simd::kMaxDotRows) {
      const int nr = (int)std::min<int64_t>(simd::kMaxDotRows, rows - b);
      if (W.packed)
        ops.dot_rows_packed(W.type, W.packed + o0 * row_bytes(W.type, n_in), W.data + o0 * W.row_stride, W.row_stride,
                            ranges[t].o1 - o0, prep.x + b * n_in, act[ranges[t].job] + b * ab, ab, nr, n_in,
                            Y + b * W.n_out + o0, W.n_out);
      else
        ops.dot_rows(W.type, W.data + o0 * W.row_stride, W.row_stride, ranges[t].o1 - o0, prep.x + b * n_in,
                     act[ranges[t].job] + b * ab, ab, nr, n_in, Y + b * W.n_out + o0, W.n_out);
    }
  }
}

// Weight row o of a matrix that is not packed in pack_q32_runs' layout, in the GGUF layout: from W.data, or for a
// packed Q8_0 matrix rebuilt from the packed copy in buf (so the GGUF copy's pages, handed back at load, stay out
// of memory).
const uint8_t* gguf_row(const QMatrix& W, int64_t o, std::vector<uint8_t>& buf) {
  const int64_t nb = W.n_in / 32;
  if (!W.packed || W.type != GgmlType::Q8_0 || o >= W.n_out / 4 * 4) return W.data + o * W.row_stride;
  const int k = (int)(o % 4);
  const uint8_t* g = W.packed + o / 4 * nb * simd::kPackedBlockBytes;
  buf.resize(nb * kBlock);
  for (int64_t i = 0; i < nb; ++i) {
    std::memcpy(&buf[i * kBlock], g + simd::packed_q8_0_scale(nb, i, k), 2);
    for (int m = 0; m < 8; ++m) std::memcpy(&buf[i * kBlock + 2 + 4 * m], g + simd::packed_q8_0_quad(nb, i, k, m), 4);
  }
  return buf.data();
}

// One SGEMM per span and weight tile; each tile is dequantised once for all spans, and the tiles of every matrix
// share one parallel region. A span's rows come out exactly as a call with that span alone would give them.
void matmul_gemm(const MatOut* jobs, size_t n_jobs, const float* X, const RowSpan* spans, size_t n_spans) {
  const simd::QuantOps& ops = simd::quant_ops();
  const int64_t n_in = jobs[0].W->n_in;
  const std::vector<RowRange> tiles = split_outputs(jobs, n_jobs, kTileRows, INT64_MAX);
  // Our OpenMP threads already cover the cores: each SGEMM call runs single-threaded inside them.
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
#pragma omp parallel
  {
    std::vector<float> tile;
    std::vector<uint8_t> row;
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < tiles.size(); ++t) {
      const QMatrix& W = *jobs[tiles[t].job].W;
      float* Y = jobs[tiles[t].job].Y;
      const int64_t o0 = tiles[t].o0, rows = tiles[t].o1 - o0;
      const float* wt;
      int64_t ldw;
      if (W.type == GgmlType::F32 && W.row_stride % 4 == 0) {
        wt = (const float*)(W.data + o0 * W.row_stride);
        ldw = W.row_stride / 4;
      } else {
        tile.resize(kTileRows * n_in);
        const bool runs = W.packed && (W.type == GgmlType::Q4_0 || W.type == GgmlType::Q5_0);
        const int64_t rb = row_bytes(W.type, n_in);
        for (int64_t r = 0; r < rows; ++r)
          if (runs)
            ops.dequantize_packed(W.type, W.packed + (o0 + r) * rb, &tile[r * n_in], n_in);
          else
            ops.dequantize(W.type, gguf_row(W, o0 + r, row), &tile[r * n_in], n_in);
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

// Rows [o0, o1) of W into panels of 16 (the int8 GEMM's layout), one after another in out. Q4_0/Q5_0 rows come
// from their packed copy (the GGUF copy's pages may be gone), packed Q8_0 rows through gguf_row.
void pack_tile(const simd::GemmI8Ops& g, const QMatrix& W, int64_t o0, int64_t o1, std::vector<uint8_t>& out,
               std::vector<uint8_t> (&bufs)[simd::kPanelRows]) {
  const int64_t pb = simd::gemm_panel_bytes(W.type, W.n_in), rb = row_bytes(W.type, W.n_in);
  const bool runs = W.packed && (W.type == GgmlType::Q4_0 || W.type == GgmlType::Q5_0);
  out.resize((o1 - o0 + simd::kPanelRows - 1) / simd::kPanelRows * pb);
  for (int64_t p = 0; o0 + p * simd::kPanelRows < o1; ++p) {
    const uint8_t* rows[simd::kPanelRows];
    const int64_t first = o0 + p * simd::kPanelRows;
    const int n = (int)std::min<int64_t>(simd::kPanelRows, o1 - first);
    for (int r = 0; r < n; ++r) rows[r] = runs ? W.packed + (first + r) * rb : gguf_row(W, first + r, bufs[r]);
    g.pack_panel(W.type, rows, runs, n, W.n_in, out.data() + p * pb);
  }
}

// The int8 GEMM (gemm_i8.h): the spans' rows quantised once, each weight tile packed once for all spans. Every
// output is its own sum (none runs across activation rows), so a span's rows come out as a call with that span
// alone gives them.
void matmul_gemm_i8(const MatOut* jobs, size_t n_jobs, const float* X, const RowSpan* spans, size_t n_spans) {
  const simd::GemmI8Ops& g = *simd::gemm_i8_ops();
  const int64_t n_in = jobs[0].W->n_in, nb32 = n_in / 32;
  std::vector<int64_t> first(n_spans + 1, 0);  // a span's first row among the quantised ones
  struct Chunk {
    int64_t x_row, act_row, n;
  };
  std::vector<Chunk> chunks;  // up to 32 rows to quantise
  for (size_t sp = 0; sp < n_spans; ++sp) {
    first[sp + 1] = first[sp] + spans[sp].n;
    for (int64_t r = 0; r < spans[sp].n; r += 32)
      chunks.push_back({spans[sp].begin + r, first[sp] + r, std::min<int64_t>(32, spans[sp].n - r)});
  }
  // Buffers kept from call to call (fresh pages for every matrix of every layer cost more than the packing).
  thread_local std::vector<simd::GemmAct> act_buf;
  act_buf.resize(first[n_spans] * nb32);
  simd::GemmAct* act = act_buf.data();  // (inside the parallel region the name act_buf is each thread's own)
  const std::vector<RowRange> tiles = split_outputs(jobs, n_jobs, kTileRows, INT64_MAX);
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (size_t c = 0; c < chunks.size(); ++c)
      g.quantize(X + chunks[c].x_row * n_in, chunks[c].n, n_in, act + chunks[c].act_row * nb32);
    thread_local std::vector<uint8_t> panels, bufs[simd::kPanelRows];
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < tiles.size(); ++t) {
      const QMatrix& W = *jobs[tiles[t].job].W;
      const int64_t o0 = tiles[t].o0, cols = tiles[t].o1 - o0;
      pack_tile(g, W, o0, tiles[t].o1, panels, bufs);
      for (size_t sp = 0; sp < n_spans; ++sp)
        g.gemm(W.type, panels.data(), (cols + simd::kPanelRows - 1) / simd::kPanelRows, cols, n_in,
               act + first[sp] * nb32, spans[sp].n, jobs[tiles[t].job].Y + spans[sp].begin * W.n_out + o0, W.n_out);
    }
  }
}

// Prefill's product: the int8 GEMM for the matrices whose type it takes (when the backend has it), dequantised
// tiles and SGEMM for the rest.
void matmul_big(const MatOut* jobs, size_t n_jobs, const float* X, const RowSpan* spans, size_t n_spans) {
  std::vector<MatOut> i8, f32;
  for (size_t j = 0; j < n_jobs; ++j)
    (simd::gemm_i8_ops() && simd::gemm_block(jobs[j].W->type) ? i8 : f32).push_back(jobs[j]);
  if (!i8.empty()) matmul_gemm_i8(i8.data(), i8.size(), X, spans, n_spans);
  if (!f32.empty()) matmul_gemm(f32.data(), f32.size(), X, spans, n_spans);
}

void pack_rows4(const QMatrix& W, uint8_t* p) {
  const int64_t nb = W.n_in / 32, groups = W.n_out / 4;
#pragma omp parallel for if (groups * nb * simd::kPackedBlockBytes > (1 << 20))
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t i = 0; i < nb; ++i) {
      uint8_t* dst = p + g * nb * simd::kPackedBlockBytes;
      for (int k = 0; k < 4; ++k) {
        const uint8_t* src = W.data + (4 * g + k) * W.row_stride + i * kBlock;
        std::memcpy(dst + simd::packed_q8_0_scale(nb, i, k), src, 2);
        for (int m = 0; m < 8; ++m) std::memcpy(dst + simd::packed_q8_0_quad(nb, i, k, m), src + 2 + 4 * m, 4);
      }
    }
}

void pack_q32_runs(const QMatrix& W, uint8_t* p) {
  const int64_t nb = W.n_in / 32, rb = nb * simd::q32_block_bytes(W.type);
#pragma omp parallel for if (W.n_out * rb > (1 << 20))
  for (int64_t o = 0; o < W.n_out; ++o) simd::pack_q32_row(W.type, W.data + o * W.row_stride, nb, p + o * rb);
}

}  // namespace

int64_t packed_bytes(const QMatrix& W) {
  switch (W.type) {
    case GgmlType::Q8_0:
      return W.n_out / 4 * (W.n_in / 32) * simd::kPackedBlockBytes;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
      return W.n_out * (W.n_in / 32) * simd::q32_block_bytes(W.type);
    default:
      return 0;
  }
}

void pack_weights_into(const QMatrix& W, uint8_t* dst) {
  if (W.type == GgmlType::Q8_0)
    pack_rows4(W, dst);
  else if (W.type == GgmlType::Q4_0 || W.type == GgmlType::Q5_0)
    pack_q32_runs(W, dst);
  else
    throw Error("pack_weights_into: no packed layout for " + type_name((uint32_t)W.type));
}

std::vector<uint8_t> pack_weights(const QMatrix& W) {
  std::vector<uint8_t> p(packed_bytes(W));
  if (!p.empty()) pack_weights_into(W, p.data());
  return p;
}

void matmul(const QMatrix& W, const float* X, int64_t n_rows, float* Y) {
  check(W, X, n_rows, Y);
  if (n_rows == 0) return;
  const MatOut job{&W, Y};
  const RowSpan all{0, n_rows};
  if (n_rows < kGemmMinRows)
    matmul_dot(&job, 1, X, 0, n_rows);
  else
    matmul_big(&job, 1, X, &all, 1);
}

void matmul_spans(const std::vector<MatOut>& jobs, const float* X, const std::vector<RowSpan>& spans) {
  int64_t total = 0;
  for (const RowSpan& s : spans) total += s.n;
  if (jobs.empty()) return;
  for (const MatOut& j : jobs) {
    check(*j.W, X, total, j.Y);
    if (j.W->n_in != jobs[0].W->n_in) throw Error("matmul: matrices of one call must share n_in");
  }
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
    if (rows > 0) matmul_dot(jobs.data(), jobs.size(), X, spans[i].begin, rows);
    i = std::max(j, i + 1);
  }
  if (!big.empty()) matmul_big(jobs.data(), jobs.size(), X, big.data(), big.size());
}

const char* blas_core_override() {
  const char* chosen = openblas_get_corename();
  for (const char* fit : {"haswell", "skylakex", "cooperlake", "sapphirerapids", "zen"})
    if (chosen && !strcasecmp(chosen, fit)) return nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

void matmul_spans(const QMatrix& W, const float* X, const std::vector<RowSpan>& spans, float* Y) {
  matmul_spans({{&W, Y}}, X, spans);
}

}  // namespace shadowkv
