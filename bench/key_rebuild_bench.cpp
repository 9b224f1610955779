// ShadowKV's key rebuild (U rows . SVt of one head) for 32 missed chunks of 8 tokens, one thread: one 8-row SGEMM
// per chunk vs one SGEMM over all 256 rows (rebuild_keys on a batch, the current path). Shapes: Gemma 3
// 270M's global layer (rank 96, head_dim 256) and Qwen2.5-Coder 0.5B's (rank 48, head_dim 64).
//   build/shadowkv_bench --benchmark_filter=KeyRebuild
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "kv/shadowkv/low_rank_keys.h"

namespace shadowkv {
namespace {

constexpr int kChunk = 8, kChunks = 32;

struct Setup {
  std::vector<float> coef, svt, keys;
  Setup(int rank, int hd)
      : coef((size_t)kChunks * kChunk * rank), svt((size_t)rank * hd), keys((size_t)kChunks * kChunk * hd) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& v : coef) v = nd(rng);
    for (float& v : svt) v = nd(rng);
  }
};

void bm_rebuild(benchmark::State& state, bool batched) {
  const int rank = (int)state.range(0), hd = (int)state.range(1);
  Setup s(rank, hd);
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  for (auto _ : state) {
    if (batched)
      rebuild_keys(s.coef.data(), kChunks * kChunk, s.svt.data(), rank, hd, s.keys.data());
    else
      for (int c = 0; c < kChunks; ++c)
        rebuild_keys(&s.coef[(size_t)c * kChunk * rank], kChunk, s.svt.data(), rank, hd,
                     &s.keys[(size_t)c * kChunk * hd]);
    benchmark::DoNotOptimize(s.keys.data());
  }
  openblas_set_num_threads(blas_threads);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kChunks * kChunk * rank * hd * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

BENCHMARK_CAPTURE(bm_rebuild, per_chunk, false)->Name("KeyRebuild/per_chunk")->Args({96, 256})->Args({48, 64});
BENCHMARK_CAPTURE(bm_rebuild, batched, true)->Name("KeyRebuild/batched")->Args({96, 256})->Args({48, 64});

}  // namespace
}  // namespace shadowkv
