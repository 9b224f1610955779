// Skeleton shared by the survey's policies (streaming, h2o, snapkv, pyramidkv, quest, kivi, q8, q4): sliding-window
// layers keep the `full` policy's exact ring (DenseLayerStore) and only global layers follow the policy, which
// implements attend_global() and global_memory(). The position bookkeeping and the sliding part live here once.
#pragma once
#include <memory>
#include <vector>

#include "kv/dense_layer_store.h"
#include "kv/kv_cache.h"

namespace shadowkv {

class LayeredKvCache : public KvCache {
 public:
  void attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
              float* out) final;
  int64_t n_tokens() const override { return lens_.empty() ? 0 : lens_.back(); }
  KvMemory memory() const final;

 protected:
  // sliding_f16: the sliding layers' rings store f16 (the policy's --kv-f16, if it has one).
  LayeredKvCache(const KvGeometry& geometry, bool sliding_f16);

  // Global layer `gi` (0-based among global layers; geometry().layers[global_layer(gi)]): store the n new tokens
  // at positions pos0.. and write their causal attention, as KvCache::attend describes.
  virtual void attend_global(int gi, int64_t pos0, int n, const float* q, const float* k_pre, const float* k,
                             const float* v, float* out) = 0;
  // Adds the global layers' parts (name, bytes) to m and to its hot/cold totals.
  virtual void global_memory(KvMemory& m) const = 0;

  const KvGeometry& geometry() const { return geom_; }
  int n_global() const { return (int)global_layer_.size(); }
  int global_layer(int gi) const { return global_layer_[gi]; }
  const LayerGeometry& global_geometry(int gi) const { return geom_.layers[global_layer_[gi]]; }

 private:
  KvGeometry geom_;
  std::vector<int64_t> lens_;      // positions stored per layer
  std::vector<int> global_of_;     // layer -> global index or -1
  std::vector<int> sliding_of_;    // layer -> sliding index or -1
  std::vector<int> global_layer_;  // global index -> layer
  std::vector<DenseLayerStore> sliding_;
};

}  // namespace shadowkv
