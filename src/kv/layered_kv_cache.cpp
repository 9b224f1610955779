#include "kv/layered_kv_cache.h"

#include <string>

#include "util/error.h"

namespace shadowkv {

LayeredKvCache::LayeredKvCache(const KvGeometry& g, bool sliding_f16) : geom_(g) {
  const int n_layers = (int)g.layers.size();
  lens_.assign(n_layers, 0);
  global_of_.assign(n_layers, -1);
  sliding_of_.assign(n_layers, -1);
  for (int l = 0; l < n_layers; ++l) {
    const LayerGeometry& lg = g.layers[l];
    if (lg.n_head < 1 || lg.n_kv_head < 1 || lg.head_dim < 1 || lg.n_head % lg.n_kv_head != 0)
      throw Error("kv cache: bad layer geometry (n_head must be a multiple of n_kv_head)");
    if (lg.window > 0) {
      sliding_of_[l] = (int)sliding_.size();
      sliding_.emplace_back(lg, sliding_f16);
    } else {
      global_of_[l] = (int)global_layer_.size();
      global_layer_.push_back(l);
    }
  }
}

void LayeredKvCache::attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k,
                            const float* v, float* out) {
  if (layer < 0 || layer >= (int)lens_.size()) throw Error("kv cache: no layer " + std::to_string(layer));
  if (pos0 != lens_[layer])
    throw Error("kv cache: layer " + std::to_string(layer) + " expected position " + std::to_string(lens_[layer]) +
                ", got " + std::to_string(pos0));
  if (sliding_of_[layer] >= 0)
    sliding_[sliding_of_[layer]].append_and_attend(pos0, n, q, k, v, out);
  else
    attend_global(global_of_[layer], pos0, n, q, k_pre, k, v, out);
  lens_[layer] = pos0 + n;
}

KvMemory LayeredKvCache::memory() const {
  KvMemory m;
  int64_t sliding = 0;
  for (const DenseLayerStore& s : sliding_) sliding += s.bytes();
  global_memory(m);
  if (!sliding_.empty()) m.parts.emplace_back("sliding_layers", sliding);
  m.hot += sliding;
  return m;
}

}  // namespace shadowkv
