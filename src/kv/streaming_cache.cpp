// The `streaming` policy (StreamingLLM, Xiao et al. 2023, arXiv 2309.17453): each global layer keeps, per KV head,
// the first `sinks` tokens (attention sinks) and a ring of the last `window` tokens, so memory is fixed and
// generation unbounded. A key at p is visible to the query at q iff p <= q and (p < sinks or q - p < window), also
// inside a prefill chunk. Unlike the paper, keys keep their original RoPE positions (we do not re-assign positions
// inside the cache to run past the trained length: generation is bounded by the context anyway).
#include <memory>
#include <string>
#include <vector>

#include "kv/head_rows.h"
#include "kv/kv_policy.h"
#include "kv/layered_kv_cache.h"
#include "util/error.h"

namespace shadowkv {
namespace {

class StreamingKvCache final : public LayeredKvCache {
 public:
  StreamingKvCache(const KvGeometry& g, const KvOptions& o);
  std::unique_ptr<KvCache> clone() const override { return std::make_unique<StreamingKvCache>(*this); }
  const char* policy() const override { return "streaming"; }
  std::vector<std::pair<std::string, double>> counters() const override;

 protected:
  void attend_global(int gi, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
                     float* out) override;
  void global_memory(KvMemory& m) const override;

 private:
  int64_t rows_held() const;

  int64_t sinks_ = 0;
  int window_ = 0;
  std::vector<std::vector<HeadRows>> sink_, recent_;  // [global layer][kv head]; recent_: a ring of window_ rows
};

StreamingKvCache::StreamingKvCache(const KvGeometry& g, const KvOptions& o) : LayeredKvCache(g, false) {
  sinks_ = o.integer("sinks");
  const int64_t window = o.integer("window");
  if (sinks_ < 0) throw Error("streaming: --sinks must be >= 0, got " + std::to_string(sinks_));
  if (window < 1 || window > (1 << 30)) throw Error("streaming: --window must be >= 1, got " + std::to_string(window));
  window_ = (int)window;
  for (int gi = 0; gi < n_global(); ++gi) {
    const LayerGeometry& lg = global_geometry(gi);
    sink_.emplace_back(lg.n_kv_head, HeadRows(lg.head_dim));
    recent_.emplace_back(lg.n_kv_head, HeadRows(lg.head_dim));
  }
}

void StreamingKvCache::attend_global(int gi, int64_t pos0, int n, const float* q, const float*, const float* k,
                                     const float* v, float* out) {
  const LayerGeometry& g = global_geometry(gi);
  const int hd = g.head_dim, width = g.n_kv_head * hd;
  // Sink tokens join the sinks at once; the others are held aside until the chunk has attended over them.
  std::vector<HeadRows> fresh(g.n_kv_head, HeadRows(hd));
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < g.n_kv_head; ++h) {
      const int64_t off = (int64_t)i * width + h * hd;
      (pos0 + i < sinks_ ? sink_[gi][h] : fresh[h]).append(pos0 + i, k + off, v + off);
    }
  attend_layer(
      g, pos0, n, q, window_,
      [&](int h, KeyValueRows* sets) {
        sets[0] = sink_[gi][h].view();
        sets[0].sink = true;
        sets[1] = recent_[gi][h].view();
        sets[2] = fresh[h].view();
        return 3;
      },
      out);
  for (int h = 0; h < g.n_kv_head; ++h) {
    HeadRows& ring = recent_[gi][h];
    for (int64_t i = 0; i < fresh[h].size(); ++i) {  // in order: the ring fills its slots one by one
      const int64_t slot = (fresh[h].position(i) - sinks_) % window_;
      if (slot == ring.size())
        ring.append(fresh[h].position(i), fresh[h].key(i), fresh[h].value(i));
      else
        ring.set(slot, fresh[h].position(i), fresh[h].key(i), fresh[h].value(i));
    }
  }
}

int64_t StreamingKvCache::rows_held() const {
  int64_t rows = 0;
  for (int gi = 0; gi < n_global(); ++gi)
    for (size_t h = 0; h < sink_[gi].size(); ++h) rows += sink_[gi][h].size() + recent_[gi][h].size();
  return rows;
}

void StreamingKvCache::global_memory(KvMemory& m) const {
  int64_t kv = 0, pos = 0;
  for (int gi = 0; gi < n_global(); ++gi)
    for (size_t h = 0; h < sink_[gi].size(); ++h) {
      kv += sink_[gi][h].kv_bytes() + recent_[gi][h].kv_bytes();
      pos += sink_[gi][h].pos_bytes() + recent_[gi][h].pos_bytes();
    }
  m.parts.emplace_back("global_kv", kv);
  m.parts.emplace_back("positions", pos);
  m.hot += kv + pos;
}

std::vector<std::pair<std::string, double>> StreamingKvCache::counters() const {
  int64_t all = 0;
  for (int gi = 0; gi < n_global(); ++gi) all += n_tokens() * global_geometry(gi).n_kv_head;
  return {{"kept_fraction", all > 0 ? (double)rows_held() / all : 1.0}};
}

const KvPolicyRegistration kStreaming{
    {"streaming",
     "StreamingLLM: the first tokens (attention sinks) plus a window of recent tokens; fixed memory (arXiv 2309.17453)",
     {{"sinks", SettingType::Int, "4", "first tokens kept forever (attention sinks)"},
      {"window", SettingType::Int, "1024", "recent tokens attended (a key at p is visible to q iff q - p < window)"}},
     [](const KvGeometry& g, const KvOptions& o) { return std::make_unique<StreamingKvCache>(g, o); },
     10}};

}  // namespace
}  // namespace shadowkv
