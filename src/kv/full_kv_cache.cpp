#include "kv/full_kv_cache.h"

#include "kv/kv_policy.h"
#include "util/error.h"

namespace shadowkv {

namespace {

const KvPolicyRegistration kFull{
    {"full", "every token's exact keys and values (sliding-window layers: their window); the baseline",
     [] {
       std::vector<KvSetting> s = {
           {"kv-f16", SettingType::Flag, "false", "store keys and values as f16 instead of f32"}};
       for (KvSetting& p : paged_settings()) s.push_back(std::move(p));
       return s;
     }(),
     [](const KvGeometry& g, const KvOptions& o) { return std::make_unique<FullKvCache>(g, o); }, 0}};

}  // namespace

FullKvCache::FullKvCache(const KvGeometry& g, const KvOptions& o)
    : f16_(o.flag("kv-f16")), block_tokens_(block_tokens_of(o)) {
  layers_.reserve(g.layers.size());
  for (const LayerGeometry& lg : g.layers) layers_.emplace_back(lg, f16_, block_tokens_);
}

std::vector<std::pair<std::string, double>> FullKvCache::counters() const {
  std::vector<const DenseLayerStore*> stores;
  for (const DenseLayerStore& s : layers_) stores.push_back(&s);
  return dense_store_counters(stores);
}

void FullKvCache::attend(int layer, int64_t pos0, int n, const float* q, const float*, const float* k, const float* v,
                         float* out) {
  DenseLayerStore& s = layers_.at(layer);
  if (pos0 != s.n_positions())
    throw Error("kv cache: layer " + std::to_string(layer) + " expected position " + std::to_string(s.n_positions()) +
                ", got " + std::to_string(pos0));
  s.append_and_attend(pos0, n, q, k, v, out);
}

KvMemory FullKvCache::memory() const {
  int64_t global = 0, sliding = 0;
  for (const DenseLayerStore& s : layers_) (s.is_ring() ? sliding : global) += s.bytes();
  KvMemory m;
  m.parts = {{"global_layers", global}, {"sliding_layers", sliding}};
  m.hot = global + sliding;
  return m;
}

}  // namespace shadowkv
