// The `snapkv` (Li et al. 2024, arXiv 2404.14469) and `pyramidkv` (Cai et al. 2024, arXiv 2406.02069) policies, one
// implementation: prefill is exact and dense; at end_prefill each global layer's KV heads keep the prompt tokens
// that the last `window` prompt queries (the observation window) attend to most, votes pooled along positions,
// plus the window itself. Tokens after the prompt are all kept. SnapKV gives every layer the same budget;
// PyramidKV's budgets shrink linearly with depth around the same mean.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/head_rows.h"
#include "kv/layered_kv_cache.h"

namespace shadowkv {

// PyramidKV's schedule over n_layers global layers: min = budget / beta, max = 2 * budget - min, layer i gets
// max - i * (max - min) / (n_layers - 1) (one layer: budget).
std::vector<int64_t> pyramid_budgets(int64_t budget, int64_t beta, int n_layers);

class SnapKvCache final : public LayeredKvCache {
 public:
  // o.policy is "snapkv" or "pyramidkv".
  SnapKvCache(const KvGeometry& g, const KvOptions& o);
  void end_prefill() override;
  std::unique_ptr<KvCache> clone() const override { return std::make_unique<SnapKvCache>(*this); }
  // Before end_prefill: this prompt as another snapkv/pyramidkv variant whose window is not larger than ours.
  std::unique_ptr<KvCache> fork(const KvOptions& o) const override;
  const char* policy() const override { return name_.c_str(); }
  std::vector<std::pair<std::string, double>> counters() const override;

  // Prompt tokens kept per KV head of global layer gi (a prompt no longer than this is kept whole).
  int64_t layer_budget(int gi) const { return layer_budget_[gi]; }
  // Positions held by KV head h of global layer gi (ascending).
  const std::vector<int64_t>& kept_positions(int gi, int h) const { return heads_[gi][h].positions(); }

 protected:
  void attend_global(int gi, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
                     float* out) override;
  void global_memory(KvMemory& m) const override;

 private:
  void configure(const KvOptions& o);  // settings and per-layer budgets
  void compress_layer(int gi);

  std::string name_;
  int64_t budget_ = 0, window_ = 0, kernel_ = 0, beta_ = 0;
  bool avg_pool_ = false;
  std::vector<int64_t> layer_budget_;         // per global layer
  std::vector<std::vector<HeadRows>> heads_;  // [global layer][kv head]
  std::vector<std::vector<float>> obs_q_;     // per global layer: the last <= window_ prompt queries [row][n_head*hd]
  bool compressed_ = false;
  int64_t evicted_ = 0;
};

}  // namespace shadowkv
