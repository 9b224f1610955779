#include "eval/truncating_kv_cache.h"

#include <algorithm>

#include "ops/attention.h"
#include "util/error.h"

namespace shadowkv::eval {

TruncatingKvCache::TruncatingKvCache(const KvGeometry& g, int64_t keep)
    : g_(g), keep_(keep), layers_(g.layers.size()), n_pos_(g.layers.size(), 0) {
  if (keep < 1) throw Error("truncate:N needs N >= 1");
}

void TruncatingKvCache::trim(Layer& L, int64_t min_pos, int row_floats) {
  size_t drop = 0;
  while (drop < L.pos.size() && L.pos[drop] < min_pos) ++drop;
  if (drop == 0 || drop * 2 < L.pos.size()) return;  // erase in bulk, amortised
  L.pos.erase(L.pos.begin(), L.pos.begin() + drop);
  L.k.erase(L.k.begin(), L.k.begin() + drop * row_floats);
  L.v.erase(L.v.begin(), L.v.begin() + drop * row_floats);
}

void TruncatingKvCache::attend(int layer, int64_t pos0, int n, const float* q, const float*, const float* k,
                               const float* v, float* out) {
  if (layer < 0 || layer >= (int)layers_.size()) throw Error("truncate kv: bad layer index");
  if (pos0 != n_pos_[layer])
    throw Error("truncate kv: layer " + std::to_string(layer) + " expected position " + std::to_string(n_pos_[layer]));
  const LayerGeometry& lg = g_.layers[layer];
  const int D = lg.head_dim, H = lg.n_head, KH = lg.n_kv_head, group = H / KH;
  const int row = KH * D;
  Layer& L = layers_[layer];
  L.k.insert(L.k.end(), k, k + (size_t)n * row);
  L.v.insert(L.v.end(), v, v + (size_t)n * row);
  for (int i = 0; i < n; ++i) L.pos.push_back(pos0 + i);
  n_pos_[layer] = pos0 + n;
  const int window = lg.window > 0 ? (int)std::min<int64_t>(lg.window, keep_) : (int)keep_;

  // attend_rows wants the rows of one kv head contiguous: gather each head's visible rows once per call.
  const int64_t first = std::max<int64_t>(0, pos0 - window + 1);
  size_t r0 = 0;
  while (r0 < L.pos.size() && L.pos[r0] < first) ++r0;
  const int64_t nr = (int64_t)L.pos.size() - (int64_t)r0;
  std::vector<float> hk((size_t)nr * D), hv((size_t)nr * D);
  for (int kh = 0; kh < KH; ++kh) {
    for (int64_t r = 0; r < nr; ++r) {
      std::copy_n(&L.k[(r0 + r) * row + kh * D], D, &hk[r * D]);
      std::copy_n(&L.v[(r0 + r) * row + kh * D], D, &hv[r * D]);
    }
    KeyValueRows rows{hk.data(), hv.data(), KvDType::F32, nr, L.pos.data() + r0};
    for (int i = 0; i < n; ++i) {
      const size_t off = (size_t)i * H * D + (size_t)kh * group * D;  // this kv head's query heads are adjacent
      attend_group(q + off, group, D, lg.scale, &rows, 1, pos0 + i, window, out + off);
    }
  }
  trim(L, pos0 + n - window + 1, row);
}

KvMemory TruncatingKvCache::memory() const {
  int64_t bytes = 0;
  for (const Layer& L : layers_) bytes += (int64_t)(L.k.size() + L.v.size()) * 4 + (int64_t)L.pos.size() * 8;
  KvMemory m;
  m.parts = {{"kv", bytes}};
  m.hot = bytes;
  return m;
}

}  // namespace shadowkv::eval
