// Paged KV allocation: the shared block pool and block tables, and `full` / `quest` with --paged against the same
// policies with one growing buffer per head, on the synthetic inputs of kv_test_util.h.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kv/block_pool.h"
#include "kv/dense_layer_store.h"
#include "kv/full_kv_cache.h"
#include "kv/kv_policy.h"
#include "kv/quest_kv_cache.h"
#include "kv_test_util.h"
#include "ops/attention.h"
#include "util/error.h"

namespace shadowkv {
namespace {
using namespace kvtest;

TEST(BlockPool, ReusesGivenBlocksAndCountsThem) {
  BlockPool pool(1000);
  std::set<void*> taken;
  for (int i = 0; i < 10; ++i) taken.insert(pool.take());
  EXPECT_EQ(taken.size(), 10u);
  const BlockPoolStats s = pool.stats();
  EXPECT_EQ(s.blocks_used, 10);
  EXPECT_GE(s.blocks_total, 10);
  EXPECT_EQ(s.bytes_used, 10 * 1000);
  void* back = *taken.begin();
  pool.give(back);
  EXPECT_EQ(pool.stats().blocks_used, 9);
  EXPECT_EQ(pool.take(), back);  // the free list is reused before the pool grows
  EXPECT_EQ(pool.stats().blocks_total, s.blocks_total);
  for (void* b : taken) pool.give(b);
  EXPECT_EQ(pool.stats().blocks_used, 0);
}

TEST(BlockTable, CopiesAreDeepAndBlocksGoBackToThePool) {
  const int64_t row_bytes = 24, rows_per_block = 5;  // a block size no other test uses: a pool of its own
  BlockPool& pool = BlockPool::of_size(row_bytes * rows_per_block);
  const int64_t before = pool.stats().blocks_used;
  {
    BlockTable t(row_bytes, rows_per_block);
    t.reserve(12);
    EXPECT_EQ(t.n_blocks(), 3);
    EXPECT_EQ(t.capacity_rows(), 15);
    for (int64_t i = 0; i < 12; ++i) std::memset(t.row(i), (int)i + 1, row_bytes);
    BlockTable c = t;
    EXPECT_EQ(pool.stats().blocks_used, before + 6);
    std::memset(t.row(7), 0x55, row_bytes);
    for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(c.row(i)[row_bytes - 1], i + 1) << i;
    BlockTable m = std::move(c);
    EXPECT_EQ(m.row(11)[0], 12);
    EXPECT_EQ(pool.stats().blocks_used, before + 6);
  }
  EXPECT_EQ(pool.stats().blocks_used, before);
}

TEST(PagedRows, RunsStopAtBlockEndsAndSlicesFollowThem) {
  const int hd = 4;
  std::vector<float> a(3 * hd), b(3 * hd);
  for (int i = 0; i < 3 * hd; ++i) a[i] = (float)i, b[i] = 100.0f + i;
  const void* kb[] = {a.data(), b.data()};
  const void* vb[] = {b.data(), a.data()};
  KeyValueRows kv;
  kv.key_blocks = kb, kv.val_blocks = vb, kv.block_rows = 3, kv.n = 6;
  RowRun r = row_run(kv, 1, hd);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(static_cast<const float*>(r.keys)[0], 4.0f);
  r = row_run(kv, 4, hd);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(static_cast<const float*>(r.keys)[0], 104.0f);
  EXPECT_EQ(static_cast<const float*>(r.vals)[0], 4.0f);
  const KeyValueRows s = slice_rows(kv, 2, 5, hd);  // rows 2..4: one row of block 0, two of block 1
  EXPECT_EQ(s.n, 3);
  EXPECT_EQ(row_run(s, 0, hd).n, 1);
  EXPECT_EQ(static_cast<const float*>(row_run(s, 1, hd).keys)[0], 100.0f);
}

// Prefill in chunks, a multi-token append, then decode steps; the outputs of every layer.
std::vector<std::vector<float>> run_policy(KvCache& c, const Inputs& in, int64_t prompt) {
  auto out = feed(c, in, 0, prompt, 128);
  c.end_prefill();
  auto add = [&](const std::vector<std::vector<float>>& more) {
    for (size_t l = 0; l < out.size(); ++l) out[l].insert(out[l].end(), more[l].begin(), more[l].end());
  };
  add(feed(c, in, prompt, prompt + 5, 5));
  add(feed(c, in, prompt + 5, in.n, 1));
  return out;
}

void check_paged_full_equals_contiguous(bool f16, int block_tokens, int64_t prompt, int64_t total) {
  KvGeometry g = make_geometry();
  g.max_ctx = total;
  const Inputs in(g, total, 0, 1.0f, 71);
  const std::string f = f16 ? "true" : "false";
  FullKvCache flat(g, opts("full", {{"kv-f16", f}}));
  FullKvCache paged(g,
                    opts("full", {{"kv-f16", f}, {"paged", "true"}, {"block-tokens", std::to_string(block_tokens)}}));
  const auto a = run_policy(paged, in, prompt), b = run_policy(flat, in, prompt);
  const Diff d = compare(a, b);
  // The same rows in the same order; only where the kernels' key blocks break differs (rounding): nowhere when a
  // pool block is a multiple of them (128 rows in prefill tiles, 64 in decode).
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel, 1e-6) << "block " << block_tokens;
  if (block_tokens % 128 == 0) {
    EXPECT_EQ(d.max_abs, 0.0f) << "block " << block_tokens;
  }
  EXPECT_EQ(paged.memory().total(), flat.memory().total());
}

TEST(PagedFull, EqualsContiguousF32) {
  for (int block : {1, 7, 16, 64, 128, 256}) check_paged_full_equals_contiguous(false, block, 300, 340);
}

TEST(PagedFull, EqualsContiguousF16) {
  for (int block : {16, 128}) check_paged_full_equals_contiguous(true, block, 300, 340);
}

TEST(PagedFull, EqualsContiguousOnLongRowSetsSplitOverParts) {
  check_paged_full_equals_contiguous(false, 128, 4400, 4410);  // decode splits >= 4096 rows into parts
}

TEST(PagedFull, ReportsBlocksAndFragmentation) {
  const KvGeometry g = make_geometry();
  const Inputs in(g, 300, 0, 1.0f, 72);
  FullKvCache paged(g, opts("full", {{"paged", "true"}, {"block-tokens", "128"}}));
  feed(paged, in, 0, 300, 128);
  auto c = counter_map(paged);
  // Two global layers x 2 KV heads x (keys, values) x ceil(300 / 128) blocks.
  EXPECT_EQ(c["kv_blocks"], 2 * kKv * 2 * 3);
  const double global_used = 2.0 * kKv * 2 * 300 * kHd * 4, global_reserved = 2.0 * kKv * 2 * 384 * kHd * 4;
  EXPECT_EQ(c["global_reserved_bytes"], global_reserved);  // the sliding layer's ring is not counted
  EXPECT_NEAR(c["global_fragmentation"], 1.0 - global_used / global_reserved, 1e-12);
  FullKvCache flat(g, KvOptions{});
  feed(flat, in, 0, 300, 128);
  c = counter_map(flat);
  EXPECT_EQ(c.count("kv_blocks"), 0u);
  EXPECT_GE(c["global_reserved_bytes"], global_used);
  EXPECT_NEAR(c["global_fragmentation"], 1.0 - global_used / c["global_reserved_bytes"], 1e-12);
}

TEST(PagedFull, SequencesShareThePoolAndCloneDeeply) {
  const KvGeometry g = make_geometry();
  const Inputs in(g, 200, 0, 1.0f, 73);
  const KvOptions o = opts("full", {{"paged", "true"}, {"block-tokens", "32"}});
  BlockPool& pool = BlockPool::of_size(32 * kHd * 4);
  const int64_t base = pool.stats().blocks_used;
  int64_t grown = 0;
  {
    FullKvCache a(g, o), b(g, o);
    feed(a, in, 0, 200, 64);
    feed(b, in, 0, 40, 64);
    // 2 global layers x 2 heads x (K, V): ceil(200/32) = 7 and ceil(40/32) = 2 blocks each.
    EXPECT_EQ(pool.stats().blocks_used - base, 8 * (7 + 2));
    std::unique_ptr<KvCache> c = b.clone();
    EXPECT_EQ(pool.stats().blocks_used - base, 8 * (7 + 2 + 2));
    const auto from_b = feed(b, in, 40, 41, 1), from_c = feed(*c, in, 40, 41, 1);
    EXPECT_EQ(compare(from_c, from_b).max_abs, 0.0f);
    grown = pool.stats().blocks_total;
  }
  EXPECT_EQ(pool.stats().blocks_used, base);  // every block back in the pool
  FullKvCache d(g, o);
  feed(d, in, 0, 200, 64);
  EXPECT_EQ(pool.stats().blocks_total, grown);  // a later sequence reuses them: the pool does not grow
}

TEST(PagedQuest, EqualsContiguousQuestWithTheSameSelection) {
  const KvGeometry g = make_geometry();
  const Inputs in(g, 260, 4, 2.0f, 74);
  QuestKvCache flat(g, opts("quest", {{"budget", "64"}, {"page", "8"}}));
  QuestKvCache paged(g, opts("quest", {{"budget", "64"}, {"page", "8"}, {"paged", "true"}, {"block-tokens", "20"}}));
  const auto a = run_policy(paged, in, 230), b = run_policy(flat, in, 230);
  EXPECT_LT(compare(a, b).rel, 1e-6);
  EXPECT_EQ(counter_map(paged)["pages_selected_fraction"], counter_map(flat)["pages_selected_fraction"]);
  EXPECT_LT(counter_map(paged)["pages_selected_fraction"], 0.5);  // sparse decode steps did run
  EXPECT_GT(counter_map(paged)["kv_blocks"], 0.0);
}

TEST(PagedSettings, AreDeclaredAndChecked) {
  for (const char* policy : {"full", "quest"}) {
    const KvPolicyDecl& d = kv_policy(policy);
    EXPECT_NE(find_setting(d, "paged"), nullptr) << policy;
    EXPECT_NE(find_setting(d, "block-tokens"), nullptr) << policy;
  }
  const KvGeometry g = make_geometry();
  EXPECT_THROW(make_kv_cache(g, opts("full", {{"paged", "true"}, {"block-tokens", "0"}})), Error);
  EXPECT_THROW(make_kv_cache(g, opts("quest", {{"paged", "true"}, {"block-tokens", "70000"}})), Error);
  EXPECT_NO_THROW(make_kv_cache(g, opts("full", {{"block-tokens", "0"}})));  // ignored without --paged
}

}  // namespace
}  // namespace shadowkv
