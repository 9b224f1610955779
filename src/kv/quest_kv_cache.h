// The `quest` policy (Tang et al. 2024, "Quest: query-aware sparsity for efficient long-context LLM inference"), on
// global layers: every key and value is kept (f16, the paper's setting, so its KV is half of full's f32), and per
// page of `page` tokens and KV head the channel-wise min and max of the stored post-RoPE keys (f16: they are stored
// keys' values, so exact). Prefill and multi-token appends attend exactly (dense, causal). A decode step scores each
// page of a KV head with the upper bound sum_c max(q_c min_c, q_c max_c) of q.k over its keys, taking the max over
// the GQA group's query heads (a page that matters to any head of the group is kept), keeps the budget/page
// best pages (the last page, holding the current token, always) and attends exactly over their tokens; a sequence
// of no more than `budget` tokens is attended densely.
#pragma once
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/dense_layer_store.h"
#include "kv/layered_kv_cache.h"

namespace shadowkv {

class QuestKvCache : public LayeredKvCache {
 public:
  // Settings budget (>= 0 tokens per KV head) and page (>= 1 tokens); Error otherwise.
  QuestKvCache(const KvGeometry& g, const KvOptions& o);

  std::unique_ptr<KvCache> clone() const override { return std::make_unique<QuestKvCache>(*this); }
  // The stored state does not depend on the budget: any quest variant with the same page size can continue it.
  std::unique_ptr<KvCache> fork(const KvOptions& o) const override;
  const char* policy() const override { return "quest"; }
  std::vector<std::pair<std::string, double>> counters() const override;

  // Per page of KV head kv_head of global layer gi: the page's score for a query group q_group ([group][head_dim]),
  // the max over the group's heads of the bound sum_c max(q_c min_c, q_c max_c).
  std::vector<float> page_scores(int gi, int kv_head, const float* q_group) const;
  // The pages a decode step with query group q_group at the last stored position attends, ascending.
  std::vector<int64_t> select_pages(int gi, int kv_head, const float* q_group) const;
  int64_t pages_per_step() const { return std::max<int64_t>(1, budget_ / page_); }

 protected:
  void attend_global(int gi, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
                     float* out) override;
  void global_memory(KvMemory& m) const override;

 private:
  struct Layer {
    DenseLayerStore kv;                           // f16 keys and values, append-only
    std::vector<std::vector<uint16_t>> min, max;  // per KV head: [page][head_dim] f16
  };
  void update_pages(int gi, int64_t pos0, int n);
  void attend_sparse(int gi, int64_t pos, const float* q, float* out);

  int64_t budget_ = 2048, page_ = 16;
  int64_t block_tokens_ = 0;                     // --paged: tokens per pool block of the stores (0: not paged)
  std::vector<Layer> layers_;                    // per global layer
  int64_t pages_selected_ = 0, pages_seen_ = 0;  // decode steps, summed over global layers and KV heads
};

}  // namespace shadowkv
