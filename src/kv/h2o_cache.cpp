// The `h2o` policy: heavy hitters by accumulated attention plus a recent window, evicted to a per-head budget after
// every attend() (a prefill chunk first attends over the kept tokens and itself, then evicts); see h2o_cache.h.
#include "kv/h2o_cache.h"

#include <algorithm>
#include <numeric>

#include "kv/kv_policy.h"
#include "util/error.h"

namespace shadowkv {

namespace {

const KvPolicyRegistration kH2o{
    {"h2o",
     "Heavy-Hitter Oracle: per KV head, the tokens with the most accumulated attention plus recent ones, up to a "
     "budget (arXiv 2306.14048)",
     {{"budget", SettingType::Int, "1024", "tokens kept per KV head of each global layer"},
      {"recent", SettingType::Int, "-1", "most recent tokens always kept, part of the budget (-1 = budget/2)"}},
     [](const KvGeometry& g, const KvOptions& o) { return std::make_unique<H2oKvCache>(g, o); },
     11}};

}  // namespace

H2oKvCache::H2oKvCache(const KvGeometry& g, const KvOptions& o) : LayeredKvCache(g, false) {
  budget_ = o.integer("budget");
  recent_ = o.integer("recent");
  if (budget_ < 1) throw Error("h2o: --budget must be >= 1, got " + std::to_string(budget_));
  if (recent_ == -1) recent_ = budget_ / 2;
  if (recent_ < 0 || recent_ > budget_)
    throw Error("h2o: --recent must be -1 or between 0 and the budget, got " + std::to_string(recent_));
  for (int gi = 0; gi < n_global(); ++gi) {
    const LayerGeometry& lg = global_geometry(gi);
    heads_.emplace_back(lg.n_kv_head, Head{HeadRows(lg.head_dim), {}});
  }
}

void H2oKvCache::attend_global(int gi, int64_t pos0, int n, const float* q, const float*, const float* k,
                               const float* v, float* out) {
  const LayerGeometry& g = global_geometry(gi);
  const int hd = g.head_dim, width = g.n_kv_head * hd;
  std::vector<Head>& heads = heads_[gi];
  std::vector<float*> probs(g.n_kv_head);
  for (int h = 0; h < g.n_kv_head; ++h) {
    for (int i = 0; i < n; ++i)
      heads[h].rows.append(pos0 + i, k + (int64_t)i * width + h * hd, v + (int64_t)i * width + h * hd);
    heads[h].score.resize(heads[h].rows.size(), 0.0f);
    probs[h] = heads[h].score.data();
  }
  // The chunk attends causally over the kept tokens and itself; every query's probabilities add to the scores.
  attend_layer_with_probs(
      g, pos0, n, q, [&](int h) { return heads[h].rows.view(); }, probs, out);
  for (Head& head : heads) evict(head);
}

void H2oKvCache::evict(Head& head) {
  const int64_t n_rows = head.rows.size(), excess = n_rows - budget_;
  if (excess <= 0) return;
  // Candidates: every row but the `recent` newest (rows are in position order). Lowest score goes first; on a tie
  // the older token.
  std::vector<int64_t> cand(n_rows - recent_);
  std::iota(cand.begin(), cand.end(), 0);
  std::nth_element(cand.begin(), cand.begin() + (excess - 1), cand.end(), [&](int64_t a, int64_t b) {
    return head.score[a] != head.score[b] ? head.score[a] < head.score[b] : a < b;
  });
  std::vector<char> drop(n_rows, 0);
  for (int64_t i = 0; i < excess; ++i) drop[cand[i]] = 1;
  std::vector<int64_t> keep;
  keep.reserve(budget_);
  for (int64_t i = 0; i < n_rows; ++i)
    if (!drop[i]) {
      head.score[keep.size()] = head.score[i];
      keep.push_back(i);
    }
  head.rows.keep(keep);
  head.score.resize(keep.size());
  evicted_ += excess;
}

void H2oKvCache::global_memory(KvMemory& m) const {
  int64_t kv = 0, pos = 0, score = 0;
  for (const auto& layer : heads_)
    for (const Head& h : layer) {
      kv += h.rows.kv_bytes();
      pos += h.rows.pos_bytes();
      score += (int64_t)h.score.size() * (int64_t)sizeof(float);
    }
  m.parts.emplace_back("global_kv", kv);
  m.parts.emplace_back("positions", pos);
  m.parts.emplace_back("scores", score);
  m.hot += kv + pos + score;
}

std::vector<std::pair<std::string, double>> H2oKvCache::counters() const {
  int64_t held = 0, all = 0;
  for (int gi = 0; gi < n_global(); ++gi) {
    for (const Head& h : heads_[gi]) held += h.rows.size();
    all += n_tokens() * global_geometry(gi).n_kv_head;
  }
  return {{"kept_fraction", all > 0 ? (double)held / all : 1.0}, {"evicted", (double)evicted_}};
}

}  // namespace shadowkv
