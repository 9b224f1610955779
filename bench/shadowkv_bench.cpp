// One decode attend() of a Gemma-3-270M-like global layer (4 query heads, 1 KV head, head_dim 256) after a long
// prompt: `full` (exact attention over every key) vs `shadowkv` (landmark scoring + budgeted rebuild).
// The prompt is stored without computing prefill attention (O(T^2)), which does not affect decode cost.
// BM_ShadowKvDecode reports full_ns / shadowkv_ns as "speedup" when BM_FullDecode ran first for the same T.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "kv/dense_layer_store.h"
#include "kv/shadowkv/shadowkv_cache.h"
#include "ops/rope.h"

namespace shadowkv {
namespace {

constexpr int kHeads = 4, kHd = 256, kW = kHd, kQw = kHeads * kHd, kLatent = 48;

KvGeometry geometry() {
  LayerGeometry l;
  l.n_head = kHeads;
  l.n_kv_head = 1;
  l.head_dim = kHd;
  l.scale = 1.0f / 16.0f;
  l.rope = RopeSpec::make(RopeSpec::Style::Neox, kHd, 1000000.0f);
  KvGeometry g;
  g.layers = {l};
  g.max_ctx = 1 << 20;
  g.max_batch_tokens = 512;
  return g;
}

// Token stream: pre-RoPE keys of rank ~kLatent plus noise (like real pre-RoPE keys), values Gaussian, queries an
// AR(1) walk so adjacent decode steps attend to similar chunks (as in real decoding).
struct Stream {
  KvGeometry g = geometry();
  std::mt19937 rng{42};
  std::normal_distribution<float> nd{0.0f, 1.0f};
  std::vector<float> mix = std::vector<float>((size_t)kLatent * kW);
  std::vector<float> qstate = std::vector<float>(kQw);
  Stream() {
    for (float& x : mix) x = nd(rng) / std::sqrt((float)kLatent);
    for (float& x : qstate) x = nd(rng);
  }
  void token(int64_t pos, float* q, float* kpre, float* k, float* v) {
    float z[kLatent];
    for (float& x : z) x = nd(rng);
    for (int i = 0; i < kW; ++i) {
      float s = 0.05f * nd(rng);
      for (int j = 0; j < kLatent; ++j) s += z[j] * mix[(size_t)j * kW + i];
      kpre[i] = s;
      v[i] = nd(rng);
    }
    std::copy(kpre, kpre + kW, k);
    apply_rope(g.layers[0].rope, k, 1, kHd, pos);
    for (int i = 0; i < kQw; ++i) q[i] = qstate[i] = 0.95f * qstate[i] + 0.31f * nd(rng);
    apply_rope(g.layers[0].rope, q, kHeads, kHd, pos);
  }
};

struct Fixture {
  Stream s;
  int64_t pos = 0;
  DenseLayerStore full;  // exactly what FullKvCache::attend runs per layer
  std::unique_ptr<ShadowKvCache> skv;
  // Decode tokens for positions n_prompt + i, generated up front so the timed loop holds only attend().
  std::vector<float> q, kpre, k, v, out = std::vector<float>(kQw);
};

constexpr int kSteps = 300;  // iterations per benchmark (both policies see the same tokens)

Fixture& fixture(int64_t n_prompt) {
  static std::map<int64_t, std::unique_ptr<Fixture>> all;
  auto& f = all[n_prompt];
  if (f) return *f;
  f = std::make_unique<Fixture>();
  f->full = DenseLayerStore(f->s.g.layers[0], false);
  KvOptions o("shadowkv");
  f->skv = std::make_unique<ShadowKvCache>(f->s.g, o);
  const int block = 512;
  std::vector<float> q((size_t)block * kQw), kp((size_t)block * kW), k((size_t)block * kW), v((size_t)block * kW);
  for (int64_t p0 = 0; p0 < n_prompt; p0 += block) {
    const int n = (int)std::min<int64_t>(block, n_prompt - p0);
    for (int t = 0; t < n; ++t) f->s.token(p0 + t, &q[t * kQw], &kp[t * kW], &k[t * kW], &v[t * kW]);
    f->full.append(p0, n, k.data(), v.data());
    f->skv->ingest(0, p0, n, kp.data(), k.data(), v.data());
  }
  f->skv->end_prefill();
  f->pos = n_prompt;
  f->q.resize((size_t)kSteps * kQw), f->kpre.resize((size_t)kSteps * kW), f->k.resize((size_t)kSteps * kW);
  f->v.resize((size_t)kSteps * kW);
  for (int i = 0; i < kSteps; ++i)
    f->s.token(n_prompt + i, &f->q[(size_t)i * kQw], &f->kpre[(size_t)i * kW], &f->k[(size_t)i * kW],
               &f->v[(size_t)i * kW]);
  return *f;
}

std::map<int64_t, double> g_full_ns;

void BM_FullDecode(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  // The full store's position advances with ours; shadowkv gets the same tokens in BM_ShadowKvDecode.
  int64_t pos = f.full.n_positions();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const size_t i = pos - f.pos;
    f.full.append_and_attend(pos, 1, &f.q[i * kQw], &f.k[i * kW], &f.v[i * kW], f.out.data());
    benchmark::DoNotOptimize(f.out.data());
    ++pos;
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  g_full_ns[state.range(0)] = ns / (double)state.iterations();
  state.counters["kv_MiB"] = (double)f.full.bytes() / (1 << 20);
}

void BM_ShadowKvDecode(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  int64_t pos = f.skv->n_tokens();
  const auto c0 = f.skv->counters();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const size_t i = pos - f.pos;
    f.skv->attend(0, pos, 1, &f.q[i * kQw], &f.kpre[i * kW], &f.k[i * kW], &f.v[i * kW], f.out.data());
    benchmark::DoNotOptimize(f.out.data());
    ++pos;
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
                    (double)state.iterations();
  const auto c1 = f.skv->counters();
  const double hits = c1[0].second - c0[0].second, misses = c1[1].second - c0[1].second;
  const KvMemory m = f.skv->memory();
  state.counters["hit_rate"] = hits + misses > 0 ? hits / (hits + misses) : 0.0;
  state.counters["budget"] = (double)f.skv->budget();
  state.counters["hot_MiB"] = (double)m.hot / (1 << 20);
  state.counters["cold_MiB"] = (double)m.cold / (1 << 20);
  if (g_full_ns.count(state.range(0))) state.counters["speedup"] = g_full_ns[state.range(0)] / ns;
}

BENCHMARK(BM_FullDecode)->Arg(16384)->Arg(32768)->Iterations(kSteps)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ShadowKvDecode)->Arg(16384)->Arg(32768)->Iterations(kSteps)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shadowkv
