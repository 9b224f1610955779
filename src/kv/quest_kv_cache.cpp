// The `quest` policy: dense f16 keys/values plus per-page key min/max; decode attends the top pages by upper bound.
#include "kv/quest_kv_cache.h"

#include <algorithm>
#include <string>

#include "kv/kv_policy.h"
#include "ops/attention.h"
#include "ops/f16.h"
#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

namespace {

const KvPolicyRegistration kQuest{
    {"quest",
     "every token kept (f16); decode attends the pages whose key min/max bound the query's scores highest "
     "(arXiv 2406.10774)",
     [] {
       std::vector<KvSetting> s = {
           {"budget", SettingType::Int, "2048", "attended tokens per KV head in a decode step (budget/page pages)"},
           {"page", SettingType::Int, "16", "tokens per page"}};
       for (KvSetting& p : paged_settings()) s.push_back(std::move(p));
       return s;
     }(),
     [](const KvGeometry& g, const KvOptions& o) { return std::make_unique<QuestKvCache>(g, o); }, 10}};

constexpr int64_t kPageBlock = 64;  // pages whose min/max are converted to f32 at once

int64_t checked_budget(const KvOptions& o) {
  const int64_t b = o.integer("budget");
  if (b < 0) throw Error("quest: --budget must be >= 0 tokens, got " + std::to_string(b));
  return b;
}

int64_t checked_page(const KvOptions& o) {
  const int64_t p = o.integer("page");
  if (p < 1 || p > (1 << 20)) throw Error("quest: --page must be in 1..1048576 tokens, got " + std::to_string(p));
  return p;
}

}  // namespace

QuestKvCache::QuestKvCache(const KvGeometry& g, const KvOptions& o)
    : LayeredKvCache(g, false), budget_(checked_budget(o)), page_(checked_page(o)), block_tokens_(block_tokens_of(o)) {
  for (int gi = 0; gi < n_global(); ++gi) {
    const LayerGeometry& lg = global_geometry(gi);
    Layer L;
    L.kv = DenseLayerStore(lg, true, block_tokens_);
    L.min.resize(lg.n_kv_head);
    L.max.resize(lg.n_kv_head);
    layers_.push_back(std::move(L));
  }
}

std::unique_ptr<KvCache> QuestKvCache::fork(const KvOptions& o) const {
  if (o.policy != "quest" || checked_page(o) != page_ || block_tokens_of(o) != block_tokens_) return nullptr;
  auto c = std::make_unique<QuestKvCache>(*this);
  c->budget_ = checked_budget(o);
  return c;
}

void QuestKvCache::update_pages(int gi, int64_t pos0, int n) {
  Layer& L = layers_[gi];
  const int hd = global_geometry(gi).head_dim;
  for (int h = 0; h < (int)L.min.size(); ++h) {
    std::vector<uint16_t>&mn = L.min[h], &mx = L.max[h];
    for (int64_t pos = pos0; pos < pos0 + n; ++pos) {
      const uint16_t* row = static_cast<const uint16_t*>(L.kv.key_ptr(h, pos));
      if (pos % page_ == 0) {  // a new page: its first key is its min and max
        mn.insert(mn.end(), row, row + hd);
        mx.insert(mx.end(), row, row + hd);
        continue;
      }
      uint16_t* pmn = &mn[(pos / page_) * hd];
      uint16_t* pmx = &mx[(pos / page_) * hd];
      for (int c = 0; c < hd; ++c) {
        const float x = f16_to_f32(row[c]);
        if (x < f16_to_f32(pmn[c])) pmn[c] = row[c];
        if (x > f16_to_f32(pmx[c])) pmx[c] = row[c];
      }
    }
  }
}

std::vector<float> QuestKvCache::page_scores(int gi, int kv_head, const float* q_group) const {
  const Layer& L = layers_.at(gi);
  const LayerGeometry& g = global_geometry(gi);
  const int hd = g.head_dim, group = g.n_head / g.n_kv_head;
  const int64_t n_pages = (int64_t)L.min.at(kv_head).size() / hd;
  std::vector<float> scores(n_pages), mn((size_t)kPageBlock * hd), mx((size_t)kPageBlock * hd);
  for (int64_t p0 = 0; p0 < n_pages; p0 += kPageBlock) {
    const int64_t np = std::min(kPageBlock, n_pages - p0);
    f16_to_f32_row(&L.min[kv_head][p0 * hd], mn.data(), np * hd);
    f16_to_f32_row(&L.max[kv_head][p0 * hd], mx.data(), np * hd);
    for (int64_t p = 0; p < np; ++p) {
      const float *pmn = &mn[p * hd], *pmx = &mx[p * hd];
      float best = 0.0f;
      for (int j = 0; j < group; ++j) {
        const float* qj = q_group + (int64_t)j * hd;
        float b = 0.0f;
        for (int c = 0; c < hd; ++c) b += std::max(qj[c] * pmn[c], qj[c] * pmx[c]);
        best = j == 0 ? b : std::max(best, b);
      }
      scores[p0 + p] = best;
    }
  }
  return scores;
}

std::vector<int64_t> QuestKvCache::select_pages(int gi, int kv_head, const float* q_group) const {
  const std::vector<float> scores = page_scores(gi, kv_head, q_group);
  const int64_t n_pages = (int64_t)scores.size(), k = pages_per_step();
  std::vector<int64_t> sel(n_pages);
  for (int64_t p = 0; p < n_pages; ++p) sel[p] = p;
  if (n_pages <= k) return sel;
  // The last page always; the best k-1 of the others (higher score first, then lower index).
  auto better = [&](int64_t a, int64_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  std::nth_element(sel.begin(), sel.begin() + (k - 1), sel.end() - 1, better);
  sel.resize(k - 1);
  std::sort(sel.begin(), sel.end());
  sel.push_back(n_pages - 1);
  return sel;
}

void QuestKvCache::attend_sparse(int gi, int64_t pos, const float* q, float* out) {
  const Layer& L = layers_[gi];
  const LayerGeometry& g = global_geometry(gi);
  const int hd = g.head_dim, group = g.n_head / g.n_kv_head;
  std::vector<int64_t> n_sel(g.n_kv_head);
#pragma omp parallel for if (g.n_kv_head > 1)
  for (int h = 0; h < g.n_kv_head; ++h) {
    const float* qh = q + (int64_t)h * group * hd;
    const std::vector<int64_t> sel = select_pages(gi, h, qh);
    const KeyValueRows all = L.kv.rows(h);
    std::vector<KeyValueRows> sets;  // one per run of consecutive selected pages
    for (size_t i = 0; i < sel.size();) {
      size_t j = i + 1;
      while (j < sel.size() && sel[j] == sel[j - 1] + 1) ++j;
      const int64_t begin = sel[i] * page_, end = std::min(pos + 1, (sel[j - 1] + 1) * page_);
      sets.push_back(slice_rows(all, begin, end, hd));
      i = j;
    }
    attend_group(qh, group, hd, g.scale, sets.data(), (int)sets.size(), pos, 0, out + (int64_t)h * group * hd);
    n_sel[h] = (int64_t)sel.size();
  }
  const int64_t n_pages = pos / page_ + 1;
  for (int64_t s : n_sel) pages_selected_ += s, pages_seen_ += n_pages;
}

void QuestKvCache::attend_global(int gi, int64_t pos0, int n, const float* q, const float*, const float* k,
                                 const float* v, float* out) {
  Layer& L = layers_[gi];
  const int64_t total = pos0 + n, n_pages = (total + page_ - 1) / page_;
  if (n > 1 || total <= budget_ || n_pages <= pages_per_step()) {  // dense: exact over everything
    L.kv.append_and_attend(pos0, n, q, k, v, out);
    update_pages(gi, pos0, n);
    if (n == 1) pages_selected_ += n_pages * (int64_t)L.min.size(), pages_seen_ += n_pages * (int64_t)L.min.size();
    return;
  }
  L.kv.append(pos0, n, k, v);
  update_pages(gi, pos0, n);
  attend_sparse(gi, pos0, q, out);
}

void QuestKvCache::global_memory(KvMemory& m) const {
  int64_t kv = 0, meta = 0;
  for (const Layer& L : layers_) {
    kv += L.kv.bytes();
    for (size_t h = 0; h < L.min.size(); ++h) meta += 2 * (int64_t)(L.min[h].size() + L.max[h].size());
  }
  m.parts.emplace_back("kv_f16", kv);
  m.parts.emplace_back("page_minmax", meta);
  m.hot += kv + meta;
}

std::vector<std::pair<std::string, double>> QuestKvCache::counters() const {
  std::vector<const DenseLayerStore*> stores;
  for (const Layer& L : layers_) stores.push_back(&L.kv);
  std::vector<std::pair<std::string, double>> c = dense_store_counters(stores);
  if (pages_seen_ > 0) c.emplace_back("pages_selected_fraction", (double)pages_selected_ / pages_seen_);
  return c;
}

}  // namespace shadowkv
