// The `h2o` policy (Heavy-Hitter Oracle, Zhang et al. 2023, arXiv 2306.14048): each global layer keeps, per KV head,
// at most `budget` tokens: the `recent` most recent ones plus the heavy hitters, the tokens with the largest
// attention probability accumulated over all queries so far (summed over the head's GQA query group).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/head_rows.h"
#include "kv/layered_kv_cache.h"

namespace shadowkv {

class H2oKvCache final : public LayeredKvCache {
 public:
  H2oKvCache(const KvGeometry& g, const KvOptions& o);
  std::unique_ptr<KvCache> clone() const override { return std::make_unique<H2oKvCache>(*this); }
  const char* policy() const override { return "h2o"; }
  std::vector<std::pair<std::string, double>> counters() const override;

  int64_t budget() const { return budget_; }
  int64_t recent() const { return recent_; }
  // Positions kept by KV head h of global layer gi (ascending).
  const std::vector<int64_t>& kept_positions(int gi, int h) const { return heads_[gi][h].rows.positions(); }

 protected:
  void attend_global(int gi, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
                     float* out) override;
  void global_memory(KvMemory& m) const override;

 private:
  struct Head {
    HeadRows rows;
    std::vector<float> score;  // accumulated attention probability per row
  };
  void evict(Head& head);

  int64_t budget_ = 0, recent_ = 0;
  int64_t evicted_ = 0;
  std::vector<std::vector<Head>> heads_;  // [global layer][kv head]
};

}  // namespace shadowkv
