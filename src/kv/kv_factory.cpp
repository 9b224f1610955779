// Policy registry: the one place that maps a policy name to its implementation.
#include <algorithm>

#include "kv/full_kv_cache.h"
#include "kv/kv_cache.h"
#include "kv/shadowkv/shadowkv_cache.h"
#include "util/error.h"

namespace shadowkv {

std::unique_ptr<KvCache> make_kv_cache(const KvGeometry& geometry, const KvOptions& options) {
  if (options.policy == "full") return std::make_unique<FullKvCache>(geometry, options);
  if (options.policy == "shadowkv") return make_shadowkv_cache(geometry, options);
  throw Error("unknown KV policy '" + options.policy + "' (available: full, shadowkv)");
}

int64_t full_kv_bytes(const KvGeometry& geometry, int64_t n_tokens, bool f16) {
  int64_t total = 0;
  for (const LayerGeometry& g : geometry.layers) {
    const int64_t slots = g.window > 0 ? std::min<int64_t>(n_tokens, g.window) : n_tokens;
    total += slots * g.n_kv_head * g.head_dim * (f16 ? 2 : 4) * 2;
  }
  return total;
}

}  // namespace shadowkv
