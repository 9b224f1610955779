// Prefill attention of one 256-token chunk over an append-only context of C rows (Gemma 3 270M's global layer:
// 4 query heads on 1 KV head of 256), per query with attend_group (the old prefill path) vs tiled with
// attend_tile (the current one). Run with OMP_NUM_THREADS=1 so the kernels compare, not the threading.
//   OMP_NUM_THREADS=1 build/shadowkv_bench --benchmark_filter=PrefillAttention
// And decode attention of one token over C rows on all threads: build/shadowkv_bench --benchmark_filter=Decode;
// ShadowKV's sparse decode attention on one thread, rows in cache and not: --benchmark_filter=SparseAttention
// and its scores alone per query-group shape (SHADOWKV_SIMD picks the backend): --benchmark_filter=GroupScores
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "ops/attention.h"
#include "ops/quant_dispatch.h"
#include "ops/vec.h"

namespace shadowkv {
namespace {

constexpr int kHeadDim = 256, kGroup = 4, kChunk = 256;

struct Setup {
  std::vector<float> k, v, q, out;
  KeyValueRows rows;
  explicit Setup(int64_t ctx) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    k.resize(ctx * kHeadDim);
    v.resize(ctx * kHeadDim);
    q.resize((size_t)kChunk * kGroup * kHeadDim);
    out.resize(q.size());
    for (auto* vec : {&k, &v, &q})
      for (float& x : *vec) x = nd(rng);
    rows = {k.data(), v.data(), KvDType::F32, ctx, nullptr};
  }
};

void bm_per_query(benchmark::State& state) {
  const int64_t ctx = state.range(0), pos0 = ctx - kChunk;
  Setup s(ctx);
  for (auto _ : state) {
    for (int t = 0; t < kChunk; ++t) {
      KeyValueRows r = s.rows;
      r.n = pos0 + t + 1;
      attend_group(&s.q[(size_t)t * kGroup * kHeadDim], kGroup, kHeadDim, 0.0625f, &r, 1, pos0 + t, 0,
                   &s.out[(size_t)t * kGroup * kHeadDim]);
    }
    benchmark::DoNotOptimize(s.out.data());
  }
  state.counters["query_tok/s"] = benchmark::Counter(kChunk, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_tiled(benchmark::State& state) {
  const int64_t ctx = state.range(0), pos0 = ctx - kChunk;
  Setup s(ctx);
  openblas_set_num_threads(1);
  constexpr int kTile = 16;
  for (auto _ : state) {
    for (int t0 = 0; t0 < kChunk; t0 += kTile) {
      KeyValueRows r = s.rows;
      r.n = pos0 + t0 + kTile;
      const int64_t off = (int64_t)t0 * kGroup * kHeadDim;
      attend_tile(&s.q[off], kGroup * kHeadDim, kTile, kGroup, kHeadDim, 0.0625f, &r, 1, pos0 + t0, 0, &s.out[off],
                  kGroup * kHeadDim);
    }
    benchmark::DoNotOptimize(s.out.data());
  }
  state.counters["query_tok/s"] = benchmark::Counter(kChunk, benchmark::Counter::kIsIterationInvariantRate);
}

// Decode attention of one query token (4 heads) over C rows, f32 or f16 (arg 1), on every thread (attend_group
// splits long row sets): one global layer of a Gemma 3 270M decode step at context C. Bytes/s counts K and V read.
void bm_decode(benchmark::State& state) {
  const int64_t ctx = state.range(0);
  const bool f16 = state.range(1) != 0;
  Setup s(ctx);
  std::vector<uint16_t> kh, vh;
  KeyValueRows r = s.rows;
  if (f16) {
    kh.resize(s.k.size()), vh.resize(s.v.size());
    f32_to_f16_row(s.k.data(), kh.data(), (int64_t)s.k.size());
    f32_to_f16_row(s.v.data(), vh.data(), (int64_t)s.v.size());
    r.keys = kh.data(), r.vals = vh.data(), r.dtype = KvDType::F16;
  }
  for (auto _ : state) {
    attend_group(s.q.data(), kGroup, kHeadDim, 0.0625f, &r, 1, ctx - 1, 0, s.out.data());
    benchmark::DoNotOptimize(s.out.data());
  }
  state.SetBytesProcessed(state.iterations() * ctx * kHeadDim * 2 * (f16 ? 2 : 4));
}

// Decode attention of one KV head's query group over the rows ShadowKV attends at its default budget (2048
// selected + outliers + local window, ~2500 f16 rows) on one thread, as each sequence of a batch runs it:
// Qwen2.5-Coder 0.5B's geometry (7 query heads per KV head of 64) and Gemma 3 270M's (4 of 256). With copies > 1
// the iterations read that many row sets in turn, so the rows come from DRAM as in the model (a batch step reads
// ~250 MB of hot rows on Qwen at 16K): 64 copies are 42 MB for Qwen's shape, 168 MB for Gemma's.
void sparse_attention(benchmark::State& state, int64_t copies) {
  const int hd = (int)state.range(0), group = (int)state.range(1);
  constexpr int64_t kRows = 2560;
  const int64_t set = kRows * hd;  // elements of one row set's keys (and of its values)
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(set), q((size_t)group * hd), acc((size_t)group * hd);
  for (float& x : q) x = nd(rng);
  std::vector<uint16_t> kh(copies * set), vh(kh.size());
  for (int64_t c = 0; c < 2 * copies; ++c) {
    for (float& x : row) x = nd(rng);
    f32_to_f16_row(row.data(), (c < copies ? kh.data() : vh.data()) + (c % copies) * set, set);
  }
  std::vector<SoftmaxAcc> st(group);
  int64_t copy = 0;
  for (auto _ : state) {
    const KeyValueRows rows{kh.data() + copy * set, vh.data() + copy * set, KvDType::F16, kRows, nullptr};
    for (int h = 0; h < group; ++h) st[h] = {-1e30f, 0.0f, &acc[(size_t)h * hd]};
    std::fill(acc.begin(), acc.end(), 0.0f);
    attend_rows(q.data(), group, hd, 0.125f, rows, kRows, 0, st.data());
    benchmark::DoNotOptimize(acc.data());
    copy = (copy + 1) % copies;
  }
  state.SetBytesProcessed(state.iterations() * set * 2 * 2);
}

// The scores alone (vec_ops().group_scores, the decode kernels' first half) over 2560 f16 key rows in blocks of 64
// as attend_range calls it, rows in cache, one thread, the backend SHADOWKV_SIMD selects.
void bm_group_scores(benchmark::State& state) {
  const int hd = (int)state.range(0), group = (int)state.range(1);
  constexpr int kRows = 2560, kBlock = 64;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> kf((size_t)kRows * hd), q((size_t)group * hd), s((size_t)group * kBlock);
  for (float& x : kf) x = nd(rng);
  for (float& x : q) x = nd(rng);
  std::vector<uint16_t> kh(kf.size());
  f32_to_f16_row(kf.data(), kh.data(), (int64_t)kf.size());
  int64_t idx[kBlock];
  for (int j = 0; j < kBlock; ++j) idx[j] = j;
  const simd::VecOps& ops = simd::vec_ops();
  for (auto _ : state) {
    for (int b = 0; b < kRows; b += kBlock)
      ops.group_scores(q.data(), group, hd, 0.125f, kh.data() + (size_t)b * hd, true, idx, kBlock, s.data(), kBlock);
    benchmark::DoNotOptimize(s.data());
  }
  state.counters["ns/row"] =
      benchmark::Counter((double)kRows, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void bm_sparse(benchmark::State& state) { sparse_attention(state, 1); }
void bm_sparse_cold(benchmark::State& state) { sparse_attention(state, 64); }

BENCHMARK(bm_sparse_cold)
    ->Name("SparseAttentionCold")
    ->ArgNames({"hd", "group"})
    ->Args({64, 7})
    ->Args({256, 4})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_sparse)
    ->Name("SparseAttention")
    ->ArgNames({"hd", "group"})
    ->Args({64, 7})
    ->Args({256, 4})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_group_scores)
    ->Name("GroupScores")
    ->ArgNames({"hd", "group"})
    ->Args({64, 7})
    ->Args({64, 4})
    ->Args({128, 4})
    ->Args({128, 8})
    ->Args({256, 4})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_decode)
    ->Name("DecodeAttention")
    ->ArgNames({"ctx", "f16"})
    ->ArgsProduct({{4096, 32768}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(bm_per_query)->Name("PrefillAttention/per_query")->Arg(4096)->Arg(16384)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_tiled)->Name("PrefillAttention/tiled")->Arg(4096)->Arg(16384)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace shadowkv
