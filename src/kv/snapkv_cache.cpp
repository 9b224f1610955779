// The `snapkv` and `pyramidkv` policies (one implementation, two registrations); see snapkv_cache.h. Votes follow
// the authors' code: each observation query's softmax over its causal prefix, summed over the queries and (GQA)
// the KV head's query group, restricted to the positions before the window, pooled with a centred 1-D max or
// average pool (padding kernel/2; the average divides by the kernel, as PyTorch's avg_pool1d does).
#include "kv/snapkv_cache.h"

#include <algorithm>
#include <numeric>

#include "kv/kv_policy.h"
#include "util/error.h"

namespace shadowkv {

namespace {

std::vector<KvSetting> snap_settings(bool pyramid) {
  std::vector<KvSetting> s = {
      {"budget", SettingType::Int, "1024",
       pyramid ? "mean prompt tokens kept per KV head over the global layers" : "prompt tokens kept per KV head"},
      {"window", SettingType::Int, "32", "observation window: the last prompt tokens, whose queries vote; kept"},
      {"kernel", SettingType::Int, "7", "pooling kernel over positions (odd)"},
      {"pool", SettingType::Text, "max", "pooling of the votes: max or avg"}};
  if (pyramid) s.insert(s.begin() + 1, {"beta", SettingType::Int, "20", "the last layer keeps budget/beta tokens"});
  return s;
}

std::unique_ptr<KvCache> make_snap(const KvGeometry& g, const KvOptions& o) {
  return std::make_unique<SnapKvCache>(g, o);
}

const KvPolicyRegistration kSnapKv{{"snapkv",
                                    "SnapKV: at the end of the prompt, keep per KV head the prompt tokens the last "
                                    "queries attend to most, pooled (arXiv 2404.14469)",
                                    snap_settings(false), make_snap, 12}};
const KvPolicyRegistration kPyramidKv{{"pyramidkv",
                                       "PyramidKV: SnapKV with per-layer budgets shrinking with depth, same mean "
                                       "(arXiv 2406.02069)",
                                       snap_settings(true), make_snap, 13}};

// The n_select rows of [0, votes.size()) with the largest pooled vote (ties: the earlier position), ascending.
std::vector<int64_t> top_pooled(const std::vector<float>& votes, int64_t n_select, int64_t kernel, bool avg) {
  const int64_t n = (int64_t)votes.size(), half = kernel / 2;
  std::vector<float> pooled(n);
  for (int64_t p = 0; p < n; ++p) {
    const int64_t b = std::max<int64_t>(0, p - half), e = std::min(n, p + half + 1);
    float acc = avg ? 0.0f : votes[b];
    for (int64_t j = b; j < e; ++j) acc = avg ? acc + votes[j] : std::max(acc, votes[j]);
    pooled[p] = avg ? acc / (float)kernel : acc;
  }
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  n_select = std::clamp<int64_t>(n_select, 0, n);
  std::partial_sort(idx.begin(), idx.begin() + n_select, idx.end(),
                    [&](int64_t a, int64_t b) { return pooled[a] != pooled[b] ? pooled[a] > pooled[b] : a < b; });
  idx.resize(n_select);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

std::vector<int64_t> pyramid_budgets(int64_t budget, int64_t beta, int n_layers) {
  if (n_layers <= 1) return std::vector<int64_t>(std::max(0, n_layers), budget);
  const int64_t lo = budget / beta, hi = 2 * budget - lo;
  std::vector<int64_t> b(n_layers);
  for (int i = 0; i < n_layers; ++i) b[i] = hi - (int64_t)i * (hi - lo) / (n_layers - 1);
  return b;
}

SnapKvCache::SnapKvCache(const KvGeometry& g, const KvOptions& o) : LayeredKvCache(g, false) {
  configure(o);
  for (int gi = 0; gi < n_global(); ++gi) {
    const LayerGeometry& lg = global_geometry(gi);
    heads_.emplace_back(lg.n_kv_head, HeadRows(lg.head_dim));
  }
  obs_q_.resize(n_global());
}

void SnapKvCache::configure(const KvOptions& o) {
  name_ = o.policy;
  if (name_ != "snapkv" && name_ != "pyramidkv") throw Error("snapkv: cannot be configured as '" + name_ + "'");
  budget_ = o.integer("budget");
  window_ = o.integer("window");
  kernel_ = o.integer("kernel");
  const std::string pool = o.text("pool");
  if (budget_ < 0) throw Error(name_ + ": --budget must be >= 0, got " + std::to_string(budget_));
  if (window_ < 1 || window_ > (1 << 20))
    throw Error(name_ + ": --window must be >= 1, got " + std::to_string(window_));
  if (kernel_ < 1 || kernel_ % 2 == 0)
    throw Error(name_ + ": --kernel must be odd and >= 1, got " + std::to_string(kernel_));
  if (pool != "max" && pool != "avg") throw Error(name_ + ": --pool must be max or avg, got '" + pool + "'");
  avg_pool_ = pool == "avg";
  if (name_ == "pyramidkv") {
    beta_ = o.integer("beta");
    if (beta_ < 1) throw Error("pyramidkv: --beta must be >= 1, got " + std::to_string(beta_));
    layer_budget_ = pyramid_budgets(budget_, beta_, n_global());
  } else {
    layer_budget_.assign(n_global(), budget_);
  }
}

std::unique_ptr<KvCache> SnapKvCache::fork(const KvOptions& o) const {
  if (compressed_ || (o.policy != "snapkv" && o.policy != "pyramidkv")) return nullptr;
  auto c = std::make_unique<SnapKvCache>(*this);
  c->configure(o);
  return c->window_ <= window_ ? std::move(c) : nullptr;  // a larger window needs queries we did not keep
}

void SnapKvCache::attend_global(int gi, int64_t pos0, int n, const float* q, const float*, const float* k,
                                const float* v, float* out) {
  const LayerGeometry& g = global_geometry(gi);
  const int hd = g.head_dim, width = g.n_kv_head * hd;
  const int64_t qw = (int64_t)g.n_head * hd;
  for (int h = 0; h < g.n_kv_head; ++h)
    for (int i = 0; i < n; ++i)
      heads_[gi][h].append(pos0 + i, k + (int64_t)i * width + h * hd, v + (int64_t)i * width + h * hd);
  if (!compressed_) {  // the prompt's last window_ queries are the observation window
    std::vector<float>& obs = obs_q_[gi];
    obs.insert(obs.end(), q, q + n * qw);
    const int64_t excess = (int64_t)obs.size() - window_ * qw;
    if (excess > 0) obs.erase(obs.begin(), obs.begin() + excess);
  }
  attend_layer(
      g, pos0, n, q, 0,
      [&](int h, KeyValueRows* sets) {
        sets[0] = heads_[gi][h].view();
        return 1;
      },
      out);
}

void SnapKvCache::end_prefill() {
  if (compressed_) return;
  for (int gi = 0; gi < n_global(); ++gi) {
    compress_layer(gi);
    std::vector<float>().swap(obs_q_[gi]);
  }
  compressed_ = true;
}

void SnapKvCache::compress_layer(int gi) {
  const LayerGeometry& g = global_geometry(gi);
  std::vector<HeadRows>& heads = heads_[gi];
  const int64_t n_prompt = heads.empty() ? 0 : heads[0].size();  // row i holds position i until now
  if (n_prompt <= layer_budget_[gi]) return;
  const int64_t qw = (int64_t)g.n_head * g.head_dim, stored = (int64_t)obs_q_[gi].size() / qw;
  const int64_t w = std::min(window_, stored), prefix = n_prompt - w;
  std::vector<std::vector<float>> votes(g.n_kv_head, std::vector<float>(n_prompt, 0.0f));
  std::vector<float*> ptr(g.n_kv_head);
  for (int h = 0; h < g.n_kv_head; ++h) ptr[h] = votes[h].data();
  attend_layer_with_probs(
      g, prefix, (int)w, obs_q_[gi].data() + (stored - w) * qw, [&](int h) { return heads[h].view(); }, ptr, nullptr);
  for (int h = 0; h < g.n_kv_head; ++h) {
    votes[h].resize(prefix);  // the window is kept anyway
    std::vector<int64_t> keep = top_pooled(votes[h], layer_budget_[gi] - w, kernel_, avg_pool_);
    for (int64_t p = prefix; p < n_prompt; ++p) keep.push_back(p);
    evicted_ += n_prompt - (int64_t)keep.size();
    heads[h].keep(keep);
    heads[h].release();
  }
}

void SnapKvCache::global_memory(KvMemory& m) const {
  int64_t kv = 0, pos = 0, obs = 0;
  for (int gi = 0; gi < n_global(); ++gi) {
    for (const HeadRows& h : heads_[gi]) kv += h.kv_bytes(), pos += h.pos_bytes();
    obs += (int64_t)obs_q_[gi].size() * (int64_t)sizeof(float);
  }
  m.parts.emplace_back("global_kv", kv);
  m.parts.emplace_back("positions", pos);
  if (!compressed_) m.parts.emplace_back("observation_queries", obs);
  m.hot += kv + pos + obs;
}

std::vector<std::pair<std::string, double>> SnapKvCache::counters() const {
  int64_t held = 0, all = 0;
  for (int gi = 0; gi < n_global(); ++gi) {
    for (const HeadRows& h : heads_[gi]) held += h.size();
    all += n_tokens() * global_geometry(gi).n_kv_head;
  }
  return {{"kept_fraction", all > 0 ? (double)held / all : 1.0}, {"evicted", (double)evicted_}};
}

}  // namespace shadowkv
