// ShadowKV's landmark scoring at decode (one KV head's query group against every landmark, f16, one thread), with
// the landmarks as rows (group_scores: per row and head a dot product and a horizontal sum) or as transposed
// panels (panel_scores: broadcast multiply-adds, what ChunkSelector runs). 4000 landmarks = a 32K prompt in chunks
// of 8. Shapes: Qwen2.5-Coder 0.5B (7 query heads per KV head of 64) and Gemma 3 270M (4 of 256).
//   build/shadowkv_bench --benchmark_filter=LandmarkScores     (SHADOWKV_SIMD=avx2|scalar for the other backends)
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "ops/vec.h"

namespace shadowkv {
namespace {

void bm_landmarks(benchmark::State& state, bool panels) {
  const int hd = (int)state.range(0), group = (int)state.range(1);
  constexpr int64_t kLandmarks = 4000, kPanels = (kLandmarks + kPanelRows - 1) / kPanelRows;
  const int64_t ld = kPanels * kPanelRows;
  std::mt19937 rng(6);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> lm((size_t)ld * hd), q((size_t)group * hd), s((size_t)group * ld);
  for (float& x : lm) x = nd(rng);
  for (float& x : q) x = nd(rng);
  std::vector<uint16_t> h(lm.size());
  f32_to_f16_row(lm.data(), h.data(), (int64_t)lm.size());  // as rows or as panels: the same bytes, read either way
  for (auto _ : state) {
    if (panels)
      panel_scores(q.data(), group, hd, 0.125f, h.data(), true, kPanels, s.data(), ld);
    else
      group_scores(q.data(), group, hd, 0.125f, h.data(), kLandmarks, s.data(), ld);
    benchmark::DoNotOptimize(s.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kLandmarks * hd * group * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

BENCHMARK_CAPTURE(bm_landmarks, rows, false)
    ->Name("LandmarkScores/rows")
    ->ArgNames({"hd", "group"})
    ->Args({64, 7})
    ->Args({256, 4})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_landmarks, panels, true)
    ->Name("LandmarkScores/panels")
    ->ArgNames({"hd", "group"})
    ->Args({64, 7})
    ->Args({256, 4})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shadowkv
