// Test-only KV policy "truncate:N": every layer keeps only the last N positions (a sliding window of N on top
// of the layer's own window). It is deliberately lossy, so the harness can show that a broken policy scores
// visibly worse than `full` before the real compressed policies exist. Not registered in make_kv_cache.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_cache.h"

namespace shadowkv::eval {

class TruncatingKvCache : public KvCache {
 public:
  TruncatingKvCache(const KvGeometry& g, int64_t keep);

  void attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
              float* out) override;
  int64_t n_tokens() const override { return n_pos_.empty() ? 0 : n_pos_.back(); }
  KvMemory memory() const override;
  std::unique_ptr<KvCache> clone() const override { return std::make_unique<TruncatingKvCache>(*this); }
  const char* policy() const override { return "truncate"; }

 private:
  // Rows of one layer, token-major: k/v [row][n_kv_head*head_dim], pos [row]. Old rows are dropped lazily.
  struct Layer {
    std::vector<float> k, v;
    std::vector<int64_t> pos;
  };
  void trim(Layer& L, int64_t min_pos, int row_floats);

  KvGeometry g_;
  int64_t keep_;
  std::vector<Layer> layers_;
  std::vector<int64_t> n_pos_;  // positions seen per layer
};

}  // namespace shadowkv::eval
