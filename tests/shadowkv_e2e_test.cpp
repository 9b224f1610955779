// End-to-end: the `shadowkv` policy against the `full` policy on synthetic projections (2 global layers + 1
// sliding-window layer, GQA 4:2, head_dim 32), through prefill, multi-token append, decode and dense-tail folds.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kv/full_kv_cache.h"
#include "kv/shadowkv/shadowkv_cache.h"
#include "kv_test_util.h"
#include "ops/rope.h"
#include "util/error.h"

namespace shadowkv {
namespace {
using namespace kvtest;

// Factors and values in f32 unless said otherwise, so that exactness checks see only the policy's own error.
KvOptions shadow_options(int rank, const std::string& budget, int dense_tail = -1, const char* dtype = "f32") {
  KvOptions o("shadowkv");
  o.set("rank", std::to_string(rank)).set("dense-tail", std::to_string(dense_tail));
  o.set("factor-dtype", dtype).set("value-dtype", dtype);
  if (!budget.empty()) o.set("budget", budget);
  return o;
}

TEST(ShadowKvEndToEnd, FullRankFullBudgetEqualsFullPolicy) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 700, total = prompt + 80;
  Inputs in(g, total, 0, 1.0f, 11);
  FullKvCache full(g, KvOptions{});
  ShadowKvCache skv(g, shadow_options(kW, "100%", 32));  // dense tail 32: folds every 16 tokens
  const auto fp = feed(full, in, 0, prompt, 128), sp = feed(skv, in, 0, prompt, 128);
  EXPECT_LT(compare(sp, fp).max_abs, 1e-5);
  skv.end_prefill();
  full.end_prefill();
  EXPECT_EQ(skv.compressed_tokens(0), (prompt / 8 - 4) * 8);
  EXPECT_EQ(skv.compressed_tokens(1), 0);  // sliding layer
  EXPECT_GT(skv.candidate_chunks(2, 1), 0);
  EXPECT_EQ(skv.outlier_chunk_count(0, 0), 700 * 24 / 1024);
  // A 10-token "user turn", then single-token decode (crossing several folds).
  auto fd = feed(full, in, prompt, prompt + 10, 10), sd = feed(skv, in, prompt, prompt + 10, 10);
  EXPECT_LT(compare(sd, fd).max_abs, 1e-4);
  fd = feed(full, in, prompt + 10, total, 1), sd = feed(skv, in, prompt + 10, total, 1);
  const Diff d = compare(sd, fd);
  EXPECT_LT(d.max_abs, 1e-4);
  EXPECT_GT(skv.compressed_tokens(0), (prompt / 8 - 4) * 8);  // the folds happened
  EXPECT_GT(skv.segment_count(0), 2);
  EXPECT_EQ(skv.n_tokens(), total);
  std::map<std::string, double> ctr = counter_map(skv);
  EXPECT_GT(ctr["value_misses"], 0);
  EXPECT_GT(ctr["value_hits"], 0);  // full budget: after the first step nearly everything is a hit
  EXPECT_GT(ctr["value_hit_rate"], 0.9);
  // Every candidate is selected, so the hot buffer has no room beyond them: keys and values (f32) of each
  // candidate chunk, nothing idle.
  int64_t cand = 0;
  for (int l : {0, 2})
    for (int h = 0; h < kKv; ++h) cand += skv.candidate_chunks(l, h);
  int64_t hot = -1;
  for (const auto& [name, bytes] : skv.memory().parts)
    if (name == "hot_values") hot = bytes;
  EXPECT_EQ(hot, cand * 8 * kHd * 4 * 2);
}

TEST(ShadowKvEndToEnd, SmallBudgetLowRankIsApproximate) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 700, total = prompt + 50;
  Inputs in(g, total, 0, 1.0f, 12);
  FullKvCache full(g, KvOptions{});
  ShadowKvCache skv(g, shadow_options(8, "64"));
  feed(full, in, 0, prompt, 128), feed(skv, in, 0, prompt, 128);
  skv.end_prefill();
  const Diff d = compare(feed(skv, in, prompt, total, 1), feed(full, in, prompt, total, 1));
  EXPECT_TRUE(d.finite);
  EXPECT_GT(d.max_abs, 1e-3);  // it is an approximation...
  EXPECT_LT(d.rel, 1.0);       // ...of the right thing
  EXPECT_EQ(skv.budget(), 64);
}

TEST(ShadowKvEndToEnd, UnselectedChunksWithUniformRowsAreEstimatedExactly) {
  // In the global layers every 8-token chunk of the prompt repeats one post-RoPE key and one value: a chunk's
  // landmark is then its key and its mean value its value, so `--unselected mean` (the default) gives full
  // attention's output at any budget, while `drop` (the authors') leaves out most of the mass.
  const KvGeometry g = make_geometry();
  const int64_t prompt = 700, total = prompt + 20;
  Inputs in(g, total, 0, 1.0f, 21);
  for (int l : {0, 2})
    for (int64_t p = 0; p < prompt; ++p) {
      const int64_t first = p / 8 * 8;
      std::copy_n(&in.k[l][first * kW], kW, &in.k[l][p * kW]);
      std::copy_n(&in.v[l][first * kW], kW, &in.v[l][p * kW]);
      std::copy_n(&in.k[l][p * kW], kW, &in.kpre[l][p * kW]);
      apply_rope(g.layers[l].rope, &in.kpre[l][p * kW], kKv, kHd, -p);  // the pre-RoPE key of that post-RoPE key
    }
  FullKvCache full(g, KvOptions{});
  feed(full, in, 0, prompt, 128);
  full.end_prefill();
  const auto want = feed(full, in, prompt, total, 1);
  for (const char* mode : {"mean", "drop"}) {
    KvOptions o = shadow_options(kW, "64");
    o.set("unselected", mode);
    ShadowKvCache skv(g, o);
    feed(skv, in, 0, prompt, 128);
    skv.end_prefill();
    const Diff d = compare(feed(skv, in, prompt, total, 1), want);
    if (std::string(mode) == "mean")
      EXPECT_LT(d.rel, 2e-3);  // value means in f16
    else
      EXPECT_GT(d.rel, 0.05);
  }
}

TEST(ShadowKvEndToEnd, CloneContinuesIdentically) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = prompt + 120;
  Inputs in(g, total, 6, 2.0f, 13);
  ShadowKvCache skv(g, shadow_options(12, "64"));
  feed(skv, in, 0, prompt, 128);
  skv.end_prefill();
  feed(skv, in, prompt, prompt + 5, 1);
  std::unique_ptr<KvCache> copy = skv.clone();
  const auto a = feed(skv, in, prompt + 5, total, 1), b = feed(*copy, in, prompt + 5, total, 1);
  EXPECT_EQ(compare(a, b).max_abs, 0.0f);
  EXPECT_STREQ(copy->policy(), "shadowkv");
}

TEST(ShadowKvEndToEnd, FileValueStoreGivesTheSameOutputsAsRam) {
  // The disk tier changes where values live, not what is attended: bit-identical outputs through prefill,
  // compression, decode and tail-block folds (f16 values, as the default).
  const KvGeometry g = make_geometry();
  const int64_t prompt = 500, total = prompt + 150;
  Inputs in(g, total, 6, 2.0f, 15);
  KvOptions ro = shadow_options(12, "64", 64, "f16"), mo = ro;
  mo.set("value-store", "file");
  ShadowKvCache ram(g, ro), disk(g, mo);
  EXPECT_EQ(compare(feed(disk, in, 0, prompt, 128), feed(ram, in, 0, prompt, 128)).max_abs, 0.0f);
  ram.end_prefill();
  disk.end_prefill();
  std::unique_ptr<KvCache> copy = disk.clone();
  const auto r = feed(ram, in, prompt, total, 1);
  EXPECT_EQ(compare(feed(disk, in, prompt, total, 1), r).max_abs, 0.0f);
  EXPECT_EQ(compare(feed(*copy, in, prompt, total, 1), r).max_abs, 0.0f);
  EXPECT_GT(disk.memory().cold, 0);
}

TEST(ShadowKvEndToEnd, LongGenerationFoldsAndStaysClose) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 700, gen = 2000, total = prompt + gen;
  Inputs in(g, total, 6, 2.0f, 14);
  FullKvCache full(g, KvOptions{});
  // Dense tail 64 tokens: generated tokens are compressed in blocks of 32 once 64 have piled up.
  ShadowKvCache all(g, shadow_options(12, "100000", 64));  // every chunk selected: error = low-rank error only
  ShadowKvCache sparse(g, shadow_options(12, "128", 64));
  ShadowKvCache none(g, shadow_options(12, "0", 64));  // baseline: local window + outliers + dense tail only
  feed(full, in, 0, prompt, 128), feed(all, in, 0, prompt, 128), feed(sparse, in, 0, prompt, 128);
  feed(none, in, 0, prompt, 128);
  all.end_prefill(), sparse.end_prefill(), none.end_prefill();
  const auto f = feed(full, in, prompt, total, 1);
  const Diff da = compare(feed(all, in, prompt, total, 1), f);
  const Diff ds = compare(feed(sparse, in, prompt, total, 1), f);
  const Diff d0 = compare(feed(none, in, prompt, total, 1), f);
  EXPECT_TRUE(da.finite && ds.finite);
  EXPECT_LT(da.max_abs, 1e-2) << "rel " << da.rel;
  // 16 selected chunks out of ~330 candidates: landmark selection must recover much of what the baseline (local
  // window, outliers and a 64-token dense tail) misses.
  EXPECT_LT(ds.rel, 0.6 * d0.rel) << "max " << ds.max_abs;
  printf("long generation rel err: full budget %.2e (max %.2e), budget 128 %.3f, budget 0 %.3f\n", da.rel, da.max_abs,
         ds.rel, d0.rel);
  // Folding keeps the dense tail bounded (local window + at most the dense tail) and the compressed part growing.
  const int64_t tail = total - sparse.compressed_tokens(2);
  EXPECT_LT(tail, 4 * 8 + 64);
  EXPECT_GE(tail, 4 * 8 + 32);
  EXPECT_EQ(sparse.segment_count(2), 1 + (gen + (prompt % 8) + 4 * 8 - 4 * 8 - 32) / 32);
  // Memory: the cold tier holds the values of every candidate chunk; parts are all named.
  const KvMemory m = sparse.memory();
  int64_t cand = 0;
  for (int l : {0, 2})
    for (int h = 0; h < kKv; ++h) cand += sparse.candidate_chunks(l, h);
  EXPECT_EQ(m.cold, cand * 8 * kHd * 4);
  std::vector<std::string> names;
  for (const auto& p : m.parts) names.push_back(p.first);
  EXPECT_EQ(names, (std::vector<std::string>{"U", "SVt", "landmarks", "value_means", "outliers", "local_tail",
                                             "hot_values", "value_store", "sliding_layers"}));
  int64_t sum = 0;
  for (const auto& p : m.parts) sum += p.second;
  EXPECT_EQ(sum, m.total());
}

TEST(ShadowKvEndToEnd, ShortPromptStaysDenseThenTailBlocksAreCompressed) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 20, total = 400;
  Inputs in(g, total, 0, 1.0f, 15);
  FullKvCache full(g, KvOptions{});
  ShadowKvCache skv(g, shadow_options(kW, "100000", 64));
  feed(full, in, 0, prompt, 128), feed(skv, in, 0, prompt, 128);
  skv.end_prefill();
  EXPECT_EQ(skv.compressed_tokens(0), 0);  // no chunk outside the local window yet
  const Diff d = compare(feed(skv, in, prompt, total, 1), feed(full, in, prompt, total, 1));
  EXPECT_LT(d.max_abs, 1e-4);
  EXPECT_GT(skv.compressed_tokens(0), 250);  // tail blocks of 32 compressed once 64 + local had piled up
  EXPECT_GT(skv.candidate_chunks(2, 0), 0);
}

TEST(ShadowKvEndToEnd, DefaultBudgetKeepsAShortPromptExact) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 700, total = 760;
  Inputs in(g, total, 0, 1.0f, 16);
  FullKvCache full(g, KvOptions{});
  ShadowKvCache skv(g, shadow_options(0, ""));  // default budget 2048 tokens > the prompt
  feed(full, in, 0, prompt, 128), feed(skv, in, 0, prompt, 128);
  skv.end_prefill();
  EXPECT_EQ(skv.compressed_tokens(0), 0);
  EXPECT_EQ(compare(feed(skv, in, prompt, total, 1), feed(full, in, prompt, total, 1)).max_abs, 0.0f);
}

TEST(ShadowKvEndToEnd, MultiTokenAppendsFoldAsTheyGo) {
  // A 200-token turn after the prompt, in one call, with a 32-token dense tail: the tail must be folded inside
  // the call (the old code read the layer length once per call and folded too little, then nothing).
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 500;
  Inputs in(g, total, 0, 1.0f, 17);
  FullKvCache full(g, KvOptions{});
  ShadowKvCache skv(g, shadow_options(kW, "100%", 32));
  feed(full, in, 0, prompt, 128), feed(skv, in, 0, prompt, 128);
  skv.end_prefill(), full.end_prefill();
  const Diff d = compare(feed(skv, in, prompt, total, 200), feed(full, in, prompt, total, 200));
  EXPECT_LT(d.max_abs, 1e-4);
  EXPECT_LT(total - skv.compressed_tokens(0), 4 * 8 + 32);
  EXPECT_GE(total - skv.compressed_tokens(0), 4 * 8 + 16);
}

TEST(ShadowKvEndToEnd, EachTailBlockGetsItsOwnBasis) {
  // Keys of rank 6 whose subspace changes after the prompt: rank 6 fits each block exactly only if every block
  // is fitted on its own keys (projecting generated keys onto the prompt's basis would lose most of them).
  const KvGeometry g = make_geometry();
  const int64_t prompt = 400, total = 700;
  Inputs in(g, total, 6, 2.0f, 18, prompt);
  FullKvCache full(g, KvOptions{});
  ShadowKvCache skv(g, shadow_options(6, "100%", 64));
  feed(full, in, 0, prompt, 128), feed(skv, in, 0, prompt, 128);
  skv.end_prefill();
  const Diff d = compare(feed(skv, in, prompt, total, 1), feed(full, in, prompt, total, 1));
  EXPECT_GT(skv.segment_count(0), 3);
  EXPECT_LT(d.rel, 0.02) << "max " << d.max_abs;
}

TEST(ShadowKvEndToEnd, HotBufferIsSeededByTheLastPromptQuery) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 700;
  Inputs in(g, prompt + 1, 6, 2.0f, 19);
  ShadowKvCache skv(g, shadow_options(12, "128"));
  feed(skv, in, 0, prompt, 128);
  skv.end_prefill();
  std::map<std::string, double> ctr = counter_map(skv);
  EXPECT_EQ(ctr["value_misses"], 2 * kKv * 16);  // both global layers, every head: 16 chunks fetched
  EXPECT_EQ(ctr["value_hits"], 0);
  feed(skv, in, prompt, prompt + 1, 1);
  ctr = counter_map(skv);
  EXPECT_GT(ctr["value_hits"], 0);  // the first decode step already finds chunks in the buffer
}

TEST(ShadowKvEndToEnd, ForkBeforeEndPrefillEqualsAFreshPrefill) {
  // The eval harness prefills once and forks the dense state for each variant (rank, budget, ...).
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = 360;
  Inputs in(g, total, 6, 2.0f, 20);
  ShadowKvCache base(g, shadow_options(0, ""));
  ShadowKvCache fresh(g, shadow_options(12, "64", 16));
  feed(base, in, 0, prompt, 128), feed(fresh, in, 0, prompt, 128);
  std::unique_ptr<KvCache> forked = base.fork(shadow_options(12, "64", 16));
  ASSERT_NE(forked, nullptr);
  forked->end_prefill(), fresh.end_prefill();
  EXPECT_EQ(compare(feed(*forked, in, prompt, total, 1), feed(fresh, in, prompt, total, 1)).max_abs, 0.0f);
  // Before end_prefill the state is dense: it is also exactly the `full` policy's.
  FullKvCache full(g, KvOptions{});
  feed(full, in, 0, prompt, 128);
  std::unique_ptr<KvCache> as_full = base.fork(KvOptions{});
  ASSERT_NE(as_full, nullptr);
  EXPECT_STREQ(as_full->policy(), "full");
  EXPECT_EQ(compare(feed(*as_full, in, prompt, total, 1), feed(full, in, prompt, total, 1)).max_abs, 0.0f);
  KvOptions f16 = shadow_options(12, "64");
  f16.set("kv-f16", "true");  // the sliding layers' storage differs: cannot fork
  EXPECT_EQ(base.fork(f16), nullptr);
  base.end_prefill();
  EXPECT_EQ(base.fork(shadow_options(12, "64")), nullptr);  // compressed already
}

TEST(ShadowKvEndToEnd, HalfPrecisionFactorsAndValuesHalveTheirBytesAndStayClose) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 700, total = 760;
  Inputs in(g, total, 0, 1.0f, 21);
  FullKvCache full(g, KvOptions{});
  ShadowKvCache f32(g, shadow_options(kW, "100%")), f16(g, shadow_options(kW, "100%", -1, "f16"));
  feed(full, in, 0, prompt, 128), feed(f32, in, 0, prompt, 128), feed(f16, in, 0, prompt, 128);
  f32.end_prefill(), f16.end_prefill();
  const auto ref = feed(full, in, prompt, total, 1);
  const Diff d = compare(feed(f16, in, prompt, total, 1), ref);
  EXPECT_LT(d.rel, 2e-3) << "max " << d.max_abs;
  EXPECT_GT(d.max_abs, 0.0f);                                              // f16 rounding is visible...
  EXPECT_LT(compare(feed(f32, in, prompt, total, 1), ref).max_abs, 1e-4);  // ...f32 is exact
  auto part = [](const KvMemory& m, const std::string& name) {
    for (const auto& [n, b] : m.parts)
      if (n == name) return b;
    return int64_t{-1};
  };
  EXPECT_EQ(2 * part(f16.memory(), "U"), part(f32.memory(), "U"));
  EXPECT_LT(part(f16.memory(), "landmarks"), part(f32.memory(), "landmarks"));
  EXPECT_EQ(2 * part(f16.memory(), "value_store"), part(f32.memory(), "value_store"));
  EXPECT_GT(part(f16.memory(), "hot_values"), 0);
  EXPECT_EQ(2 * part(f16.memory(), "hot_values"), part(f32.memory(), "hot_values"));
  EXPECT_GT(part(f16.memory(), "outliers"), 0);
  EXPECT_EQ(2 * part(f16.memory(), "outliers"), part(f32.memory(), "outliers"));  // with the values' precision
  // q8 factors: U rows of rank bytes + a 4-byte scale, landmarks as f16, and the outputs still close to full.
  KvOptions q8o = shadow_options(kW, "100%", -1, "f16");
  q8o.set("factor-dtype", "q8");
  ShadowKvCache q8(g, q8o);
  feed(q8, in, 0, prompt, 128);
  q8.end_prefill();
  const Diff dq = compare(feed(q8, in, prompt, total, 1), ref);
  EXPECT_LT(dq.rel, 2e-2) << "max " << dq.max_abs;
  EXPECT_GT(dq.rel, d.rel);  // int8 rounding is coarser than f16's
  EXPECT_EQ(part(q8.memory(), "U") * 4 * kW, part(f32.memory(), "U") * (kW + 4));
  EXPECT_EQ(part(q8.memory(), "landmarks"), part(f16.memory(), "landmarks"));
  KvOptions bad = shadow_options(0, "");
  bad.set("factor-dtype", "f8");
  EXPECT_THROW(ShadowKvCache(g, bad), Error);
  bad = shadow_options(0, "");
  bad.set("value-dtype", "bf16");
  EXPECT_THROW(ShadowKvCache(g, bad), Error);
}

// The default factor dtype (auto) stores U rows as f16 when a layer has a single KV head and as int8 otherwise.
TEST(ShadowKvEndToEnd, AutoFactorDtypeIsF16WithOneKvHeadElseQ8) {
  KvGeometry one = make_geometry();  // 2 query heads of 64 over one KV head: the same widths as the default geometry
  for (LayerGeometry& l : one.layers) {
    l.n_head = 2, l.n_kv_head = 1, l.head_dim = kW;
    l.scale = 1.0f / std::sqrt((float)kW);  // the rope stays on 32 dimensions (partial rotary), as Inputs applies it
  }
  const int64_t prompt = 700;
  for (const KvGeometry& g : {make_geometry(), one}) {
    Inputs in(g, prompt, 0, 1.0f, 23);
    auto u_bytes = [&](const char* dtype) {
      KvOptions o("shadowkv");  // factor-dtype unset: auto
      o.set("rank", "16").set("budget", "64");
      if (dtype) o.set("factor-dtype", dtype);
      ShadowKvCache c(g, o);
      feed(c, in, 0, prompt, 128);
      c.end_prefill();
      for (const auto& [name, bytes] : c.memory().parts)
        if (name == "U") return bytes;
      return int64_t{-1};
    };
    const bool single = g.layers[0].n_kv_head == 1;
    EXPECT_GT(u_bytes("f16"), u_bytes("q8"));
    EXPECT_EQ(u_bytes(nullptr), u_bytes(single ? "f16" : "q8")) << "KV heads " << g.layers[0].n_kv_head;
  }
}

// Decode attention splits each KV head's rows over threads when there are many (more threads than KV heads); the
// split must step through f16 rows (hot buffer) by their own size. 4 threads over 2 KV heads: 2 parts per head.
TEST(ShadowKvEndToEnd, F16HotBufferSplitOverThreadsStaysClose) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 2400, total = 2408;
  Inputs in(g, total, 0, 1.0f, 31);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(4);
  ShadowKvCache f32(g, shadow_options(kW, "100%")), f16(g, shadow_options(kW, "100%", -1, "f16"));
  feed(f32, in, 0, prompt, 128), feed(f16, in, 0, prompt, 128);
  f32.end_prefill(), f16.end_prefill();
  const Diff d = compare(feed(f16, in, prompt, total, 1), feed(f32, in, prompt, total, 1));
  omp_set_num_threads(threads);
  EXPECT_LT(d.rel, 2e-3) << "max " << d.max_abs;
}

TEST(ShadowKvEndToEnd, RejectsOutOfOrderPositions) {
  const KvGeometry g = make_geometry();
  ShadowKvCache skv(g, shadow_options(0, ""));
  std::vector<float> q(kQw), k(kW), out(kQw);
  EXPECT_THROW(skv.attend(0, 5, 1, q.data(), k.data(), k.data(), k.data(), out.data()), Error);
  EXPECT_THROW(skv.attend(7, 0, 1, q.data(), k.data(), k.data(), k.data(), out.data()), Error);
}

}  // namespace
}  // namespace shadowkv
