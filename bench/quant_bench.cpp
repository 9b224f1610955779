// Matvec (decode, n_rows=1), batch-8 decode (n_rows=8, the dot kernels) and matmul (prefill, n_rows=512: SGEMM on
// dequantised tiles, or the AVX-512 backend's int8 GEMM) throughput for the weight types of Gemma 3 270M Q4_K_M, per
// SIMD backend. bytes_per_second counts weight bytes streamed per call.
//   build-quant/shadowkv_bench --benchmark_filter=Quant
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/f16.h"
#include "ops/matmul.h"
#include "ops/quant_dispatch.h"

namespace shadowkv {
namespace {

std::vector<uint8_t> random_weights(GgmlType t, int64_t n_in, int64_t n_out) {
  const TypeTraits& tt = traits(t);
  std::vector<uint8_t> w(row_bytes(t, n_in) * n_out);
  std::mt19937 rng(1);
  for (size_t i = 0; i + 4 <= w.size(); i += 4) {
    const uint32_t r = rng();
    std::memcpy(&w[i], &r, 4);
  }
  const int64_t nb = (int64_t)w.size() / tt.block_bytes;
  const int64_t d_off = t == GgmlType::Q6_K ? 208 : 0;
  for (int64_t b = 0; b < nb; ++b) {
    const uint16_t h = f32_to_f16(0.01f);
    std::memcpy(&w[b * tt.block_bytes + d_off], &h, 2);
    if (t == GgmlType::Q4_K) std::memcpy(&w[b * tt.block_bytes + 2], &h, 2);
  }
  return w;
}

void bm_matmul(benchmark::State& state, GgmlType t, int64_t n_in, int64_t n_out, int64_t n_rows, simd::Backend be,
               int threads, bool packed) {
  if (!simd::supported(be)) {
    state.SkipWithError("backend not supported on this CPU");
    return;
  }
  simd::set_backend(be);
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(threads);
  const std::vector<uint8_t> w = random_weights(t, n_in, n_out);
  std::vector<float> x(n_rows * n_in), y(n_rows * n_out);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  QMatrix W{t, w.data(), n_in, n_out, row_bytes(t, n_in)};
  std::vector<uint8_t> p;
  if (packed) {
    p = pack_weights(W);
    W.packed = p.data();
  }
  for (auto _ : state) {
    matmul(W, x.data(), n_rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * (int64_t)w.size());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n_in * n_out * n_rows * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  simd::reset_backend();
  omp_set_num_threads(saved_threads);
}

struct Shape {
  GgmlType type;
  int64_t n_in, n_out;
  const char* what;
};

// Gemma 3 270M: ffn_gate/up (Q5_0, 640->2048), attn_v (Q8_0, 640->256), attn_output (Q4_K, 1024->640),
// ffn_down (Q6_K / Q4_K, 2048->640), tied vocab head (Q8_0, 640->262144: 178 MB, far larger than the caches, so
// it measures DRAM streaming; the others fit in L2/L3).
const Shape kShapes[] = {
    {GgmlType::Q5_0, 640, 2048, "ffn_up"},      {GgmlType::Q8_0, 640, 2048, "q8_640x2048"},
    {GgmlType::Q4_K, 2048, 640, "ffn_down"},    {GgmlType::Q6_K, 2048, 640, "ffn_down"},
    {GgmlType::Q4_K, 1024, 640, "attn_output"}, {GgmlType::Q8_0, 640, 262144, "vocab"},
};

int register_all() {
  for (simd::Backend be : {simd::Backend::kScalar, simd::Backend::kAvx2, simd::Backend::kAvx512}) {
    if (!simd::supported(be)) continue;
    for (const Shape& s : kShapes) {
      for (int64_t n_rows : {1, 8, 512}) {
        if (n_rows == 512 && s.n_out > 4096) continue;  // prefill through the vocab head is not a real workload
        for (int threads : {1, 2}) {
          const std::string name = std::string("Quant/") +
                                   (n_rows == 1   ? "matvec/"
                                    : n_rows == 8 ? "batch8/"
                                                  : "matmul512/") +
                                   traits(s.type).name + "/" + s.what + "_" + std::to_string(s.n_in) + "x" +
                                   std::to_string(s.n_out) + "/" + simd::backend_name(be) + "/t" +
                                   std::to_string(threads);
          // Also as the model reads the matrix in decode, from its packed copy (pack_weights): the Q8_0 vocab head,
          // every Q5_0 matrix.
          for (bool packed : {false, true}) {
            const bool model_packs = s.type == GgmlType::Q5_0 || (s.type == GgmlType::Q8_0 && s.n_out >= 65536);
            if (packed && (n_rows > 8 || !model_packs)) continue;
            auto* b = benchmark::RegisterBenchmark((name + (packed ? "/packed" : "")).c_str(), bm_matmul, s.type,
                                                   s.n_in, s.n_out, n_rows, be, threads, packed)
                          ->Unit(n_rows <= 8 ? benchmark::kMicrosecond : benchmark::kMillisecond);
            if (threads > 1) b->UseRealTime();
          }
        }
      }
    }
  }
  return 0;
}
const int kRegistered = register_all();

}  // namespace
}  // namespace shadowkv
