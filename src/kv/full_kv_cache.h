// The `full` policy: every layer keeps exact keys and values (sliding-window layers only their window).
// It is the baseline every other policy is measured against.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/dense_layer_store.h"
#include "kv/kv_cache.h"

namespace shadowkv {

class FullKvCache : public KvCache {
 public:
  FullKvCache(const KvGeometry& g, const KvOptions& o);
  // Adopts per-layer stores holding the same positions (e.g. another policy's dense prefill state).
  FullKvCache(std::vector<DenseLayerStore> layers, bool f16) : layers_(std::move(layers)), f16_(f16) {}

  void attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
              float* out) override;
  int64_t n_tokens() const override { return layers_.empty() ? 0 : layers_.back().n_positions(); }
  KvMemory memory() const override;
  std::unique_ptr<KvCache> clone() const override { return std::make_unique<FullKvCache>(*this); }
  std::unique_ptr<KvCache> fork(const KvOptions& o) const override {
    return o.policy == "full" && o.flag("kv-f16") == f16_ && block_tokens_of(o) == block_tokens_ ? clone() : nullptr;
  }
  std::vector<std::pair<std::string, double>> counters() const override;
  const char* policy() const override { return "full"; }

 private:
  std::vector<DenseLayerStore> layers_;
  bool f16_ = false;
  int64_t block_tokens_ = 0;  // tokens per block of the global layers (0: not paged)
};

}  // namespace shadowkv
