#include "kv/shadowkv/shadowkv_cache.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "kv/full_kv_cache.h"
#include "kv/kv_policy.h"
#include "kv/shadowkv/chunk_rope.h"
#include "kv/shadowkv/landmarks.h"
#include "kv/shadowkv/outliers.h"
#include "kv/shadowkv/unselected_estimate.h"
#include "ops/attention.h"
#include "ops/rope.h"
#include "util/error.h"

namespace shadowkv {

namespace {

// Attention of every KV head's query group over its 3 row sets, as (head, part) jobs: the rows of each head are
// split into parts so that even a single KV head (Gemma 3 270M) uses both cores; parts are merged per head.
void attend_sets_split(const float* q, int n_kv, int group, int hd, float scale, const KeyValueRows* sets, int64_t pos,
                       bool parallel, const SoftmaxAcc* extra, float* out) {
  int64_t most = 0;  // parts per head by row count (attention_parts), so any thread count gives the same result
  for (int h = 0; h < n_kv; ++h) most = std::max(most, sets[h * 3].n + sets[h * 3 + 1].n + sets[h * 3 + 2].n);
  const int parts = std::max(attention_parts(most), most >= 1024 ? 2 : 1);  // 2+: one KV head still uses 2 cores
  const int n_jobs = n_kv * parts;
  std::vector<float> acc((size_t)n_jobs * group * hd, 0.0f);
  std::vector<SoftmaxAcc> st((size_t)n_jobs * group);
  for (size_t i = 0; i < st.size(); ++i) st[i] = {-std::numeric_limits<float>::infinity(), 0.0f, &acc[i * hd]};
#pragma omp parallel for schedule(dynamic, 1) if (n_jobs > 1 && parallel)
  for (int job = 0; job < n_jobs; ++job) {
    const int h = job / parts, part = job % parts;
    const KeyValueRows* hs = sets + h * 3;
    const int64_t total = hs[0].n + hs[1].n + hs[2].n;
    const int64_t lo = total * part / parts, hi = total * (part + 1) / parts;
    int64_t base = 0;
    for (int s = 0; s < 3; ++s) {
      const int64_t b = std::max(lo, base), e = std::min(hi, base + hs[s].n);
      if (b < e) {
        const KeyValueRows sub = slice_rows(hs[s], b - base, e - base, hd);
        attend_rows(q + (int64_t)h * group * hd, group, hd, scale, sub, pos, 0, &st[(size_t)job * group]);
      }
      base += hs[s].n;
    }
  }
  for (int h = 0; h < n_kv; ++h) {
    SoftmaxAcc* first = &st[(size_t)h * parts * group];
    for (int p = 1; p < parts; ++p)
      for (int i = 0; i < group; ++i) merge_acc(first[i], st[((size_t)h * parts + p) * group + i], hd);
    if (extra)
      for (int i = 0; i < group; ++i) merge_acc(first[i], extra[(size_t)h * group + i], hd);
    finish_acc(first, group, hd, out + (int64_t)h * group * hd, hd);
  }
}

const KvPolicyRegistration kShadowKv{
    {"shadowkv",
     "low-rank pre-RoPE keys + landmarks; top-k chunks rebuilt per step, values from the cold tier (arXiv 2410.21465)",
     {{"budget", SettingType::Text, "",
       "attended tokens: a count (2048) or a % of the compressed prompt (1.56%); default 2048, and a prompt that fits "
       "the default budget is not compressed"},
      {"rank", SettingType::Int, "0",
       "rank of the pre-RoPE key factorisation (0 = per model: 160/1024 of the key width, at least min(96, 3/8 of "
       "it), or with one KV head min(160, 5/8 of it))"},
      {"chunk", SettingType::Int, "8", "tokens per chunk (landmark granularity)"},
      {"outliers", SettingType::Int, "-1", "outlier chunks per KV head kept dense (-1 = 24 per 1024 budget tokens)"},
      {"local-chunks", SettingType::Int, "4", "chunks at the end of the prompt kept dense"},
      {"dense-tail", SettingType::Int, "-1",
       "tokens after the prompt kept exact before the oldest half is compressed (-1 = 2048)"},
      {"hot-extra", SettingType::Int, "-1",
       "chunks the hot buffer keeps per KV head beyond the selection, the least recently selected dropped first, so "
       "a chunk that returns is not rebuilt (-1 = half the budget)"},
      {"factor-dtype", SettingType::Text, "auto",
       "storage of U rows: q8 (int8 with a scale per row), f16, f32, or auto (f16 with a single KV head, else q8); "
       "landmarks are f32 with f32, else f16"},
      {"value-dtype", SettingType::Text, "f16",
       "storage of the value store (cold tier), of the hot buffer's rebuilt keys and values and of the outlier chunks: "
       "f16 or f32"},
      {"value-store", SettingType::Text, "ram",
       "where the value store lives: ram, or file[:DIR] (a file in DIR, default $TMPDIR or /tmp, read with pread, "
       "deleted with the sequence; mmap[:DIR] is its older name)"},
      {"unselected", SettingType::Text, "auto",
       "chunks outside a step's selection: mean (each counts as 8 tokens with its landmark's logit and its mean "
       "value, RetroInfer's estimate), drop (not attended, as the authors do), or auto (mean with a single KV head)"},
      {"kv-f16", SettingType::Flag, "false", "sliding-window layers in f16 (as full --kv-f16)"}},
     [](const KvGeometry& g, const KvOptions& o) { return std::make_unique<ShadowKvCache>(g, o); },
     1}};

}  // namespace

ShadowKvCache::ShadowKvCache(const KvGeometry& geometry, const KvOptions& options)
    : geom_(geometry), cfg_(parse_shadowkv_options(options, geometry)) {
  const int n_layers = (int)geom_.layers.size();
  lens_.assign(n_layers, 0);
  global_of_.assign(n_layers, -1);
  sliding_of_.assign(n_layers, -1);
  for (int l = 0; l < n_layers; ++l) {
    const LayerGeometry& lg = geom_.layers[l];
    if (lg.window > 0) {
      sliding_of_[l] = (int)sliding_.size();
      sliding_.emplace_back(lg, cfg_.f16);
      continue;
    }
    global_of_[l] = (int)globals_.size();
    GlobalLayer g;
    g.layer = l;
    const int width = lg.n_kv_head * lg.head_dim;
    g.rank = cfg_.rank > 0 ? cfg_.rank : default_rank(width, lg.n_kv_head);
    g.estimate = estimates_unselected(cfg_, lg.n_kv_head);
    g.tail = DenseLayerStore(lg, false);
    const FactorType factors = factor_type(cfg_, lg.n_kv_head);
    g.coef = FactorRows(g.rank, factors);
    g.heads.resize(lg.n_kv_head);
    for (Head& h : g.heads) {
      h.landmarks = LandmarkPanels(lg.head_dim, factors != FactorType::F32);
      h.outliers = OutlierRows(lg.head_dim, cfg_.f16_values);
    }
    g.hot = HotValueBuffer(lg.n_kv_head, cfg_.chunk, lg.head_dim, cfg_.f16_values);
    globals_.push_back(std::move(g));
    stores_.push_back(
        make_value_store(cfg_.value_store, lg.n_kv_head, (int64_t)cfg_.chunk * lg.head_dim, cfg_.f16_values));
    if (stores_.back()->f16() != globals_.back().hot.f16())
      throw Error("shadowkv: value store and hot buffer types differ");
  }
}

ShadowKvCache::ShadowKvCache(const ShadowKvCache& o)
    : geom_(o.geom_),
      cfg_(o.cfg_),
      lens_(o.lens_),
      global_of_(o.global_of_),
      sliding_of_(o.sliding_of_),
      globals_(o.globals_),
      sliding_(o.sliding_),
      prefill_done_(o.prefill_done_),
      budget_tokens_(o.budget_tokens_),
      n_outliers_(o.n_outliers_),
      outlier_fraction_(o.outlier_fraction_) {
  for (const auto& s : o.stores_) stores_.push_back(s->clone());
}

std::unique_ptr<KvCache> ShadowKvCache::fork(const KvOptions& options) const {
  // Before end_prefill every knob but f16 (the sliding layers' storage) leaves the state as it is: dense, so it is
  // also exactly the `full` policy's state (f32).
  if (prefill_done_ || !options.declares("kv-f16") || options.flag("kv-f16") != cfg_.f16) return nullptr;
  if (options.policy == "full" && !cfg_.f16) {
    std::vector<DenseLayerStore> layers;
    for (size_t l = 0; l < geom_.layers.size(); ++l)
      layers.push_back(sliding_of_[l] >= 0 ? sliding_[sliding_of_[l]] : globals_[global_of_[l]].tail);
    return std::make_unique<FullKvCache>(std::move(layers), false);
  }
  if (options.policy != "shadowkv") return nullptr;
  auto c = std::make_unique<ShadowKvCache>(geom_, options);
  c->lens_ = lens_;
  c->sliding_ = sliding_;
  for (size_t i = 0; i < globals_.size(); ++i) {
    c->globals_[i].tail = globals_[i].tail;
    c->globals_[i].last_q = globals_[i].last_q;
  }
  return c;
}

void ShadowKvCache::attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k,
                           const float* v, float* out) {
  if (layer < 0 || layer >= (int)lens_.size())
    throw Error("kv cache: layer " + std::to_string(layer) + " out of range");
  if (pos0 != lens_[layer])
    throw Error("kv cache: layer " + std::to_string(layer) + " expected position " + std::to_string(lens_[layer]) +
                ", got " + std::to_string(pos0));
  if (n < 1) throw Error("kv cache: attend() needs at least one token");
  if (sliding_of_[layer] >= 0) {
    sliding_[sliding_of_[layer]].append_and_attend(pos0, n, q, k, v, out);
    lens_[layer] += n;
    return;
  }
  GlobalLayer& g = globals_[global_of_[layer]];
  const LayerGeometry& lg = geom_.layers[layer];
  const int64_t kv_w = (int64_t)lg.n_kv_head * lg.head_dim, q_w = (int64_t)lg.n_head * lg.head_dim;
  if (g.segments.empty()) {  // nothing compressed (prefill, or a prompt within the budget): exact, tiled
    g.tail.append_and_attend(pos0, n, q, k, v, out);
    if (!prefill_done_) g.last_q.assign(q + (n - 1) * q_w, q + n * q_w);
    maybe_fold(g, pos0 + n);
  } else {  // several tokens (a new user turn) go one at a time so each sees only its past
    for (int t = 0; t < n; ++t) {
      append_tail(g, pos0 + t, 1, k_pre + t * kv_w, k + t * kv_w, v + t * kv_w);
      decode_attend(g, pos0 + t, q + t * q_w, out + t * q_w);
      maybe_fold(g, pos0 + t + 1);
    }
  }
  lens_[layer] += n;
}

void ShadowKvCache::ingest(int layer, int64_t pos0, int n, const float* k_pre, const float* k, const float* v) {
  if (layer < 0 || layer >= (int)lens_.size() || pos0 != lens_[layer] || n < 0)
    throw Error("kv cache: ingest() out of order (layer " + std::to_string(layer) + ", position " +
                std::to_string(pos0) + ")");
  if (prefill_done_) throw Error("kv cache: ingest() after end_prefill()");
  const LayerGeometry& lg = geom_.layers[layer];
  const int64_t kv_w = (int64_t)lg.n_kv_head * lg.head_dim;
  const int step = std::max(1, geom_.max_batch_tokens);  // ring stores take at most max_batch_tokens at once
  for (int t0 = 0; t0 < n; t0 += step) {
    const int m = std::min(n - t0, step);
    if (sliding_of_[layer] >= 0)
      sliding_[sliding_of_[layer]].append(pos0 + t0, m, k + t0 * kv_w, v + t0 * kv_w);
    else
      append_tail(globals_[global_of_[layer]], pos0 + t0, m, k_pre + t0 * kv_w, k + t0 * kv_w, v + t0 * kv_w);
  }
  lens_[layer] += n;
}

void ShadowKvCache::append_tail(GlobalLayer& g, int64_t pos, int n, const float*, const float* k, const float* v) {
  g.tail.append(pos, n, k, v);
}

std::vector<float> ShadowKvCache::pre_rope_keys(const GlobalLayer& g, int64_t n_tok) const {
  const LayerGeometry& lg = geom_.layers[g.layer];
  const int hd = lg.head_dim, n_kv = lg.n_kv_head, width = n_kv * hd;
  std::vector<float> kpre((size_t)n_tok * width);
#pragma omp parallel for if (n_tok > 256)
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int h = 0; h < n_kv; ++h)
      std::memcpy(&kpre[(size_t)t * width + h * hd], g.tail.key_row(h, g.comp_end + t), sizeof(float) * hd);
    apply_rope(lg.rope, &kpre[(size_t)t * width], n_kv, hd, -(g.comp_end + t));  // rotation back by its angle
  }
  return kpre;
}

void ShadowKvCache::maybe_fold(GlobalLayer& g, int64_t len) {
  if (!prefill_done_) return;
  const int64_t local = (int64_t)cfg_.local_chunks * cfg_.chunk, block = tail_block_tokens(cfg_);
  if (len - g.comp_end - local < std::max<int64_t>(cfg_.dense_tail, block)) return;
  const int64_t chunks = block / cfg_.chunk;
  const int64_t outl = n_outliers_ > 0 ? std::max<int64_t>(1, std::llround(outlier_fraction_ * chunks)) : 0;
  compress_block(g, chunks, outl);
}

int64_t ShadowKvCache::budget_chunks(const GlobalLayer& g) const {
  // A percentage is of everything compressed so far, so `100%` still selects every chunk after folds.
  const int64_t tokens =
      cfg_.budget_percent ? (int64_t)std::ceil(cfg_.budget_value / 100.0 * (double)g.comp_end) : budget_tokens_;
  const int64_t k = tokens / cfg_.chunk;
  return tokens > 0 && k == 0 ? 1 : k;
}

// Chunks rebuilt per GEMM: large enough for an efficient SGEMM, small enough that one head's misses still split
// over both cores; fixed, so the rebuilt keys never depend on the thread count.
constexpr size_t kRebuildChunks = 32;

const ShadowKvCache::Segment& ShadowKvCache::segment_at(const GlobalLayer& g, int64_t p) {
  return *std::upper_bound(g.segments.begin(), g.segments.end(), p,
                           [](int64_t x, const Segment& s) { return x < s.end; });
}

void ShadowKvCache::fill_slots(GlobalLayer& g, const Fill* fills, size_t n) const {
  const LayerGeometry& lg = geom_.layers[g.layer];
  const int hd = lg.head_dim, chunk = cfg_.chunk, head = fills[0].head;
  const std::vector<int64_t>& cand_chunk = g.heads[head].cand_chunk;
  const Segment& seg = segment_at(g, cand_chunk[fills[0].cand] * chunk);
  thread_local std::vector<float> coef, keys;
  coef.resize(n * chunk * g.rank);
  keys.resize(n * chunk * hd);
  for (size_t i = 0; i < n; ++i) g.coef.read(cand_chunk[fills[i].cand] * chunk, chunk, &coef[i * chunk * g.rank]);
  rebuild_keys(coef.data(), (int)(n * chunk), &seg.svt[(size_t)head * g.rank * hd], g.rank, hd, keys.data());
  const ValueStore& store = *stores_[global_of_[g.layer]];  // same element type as the hot buffer (constructor)
  for (size_t i = 0; i < n; ++i) {
    float* k = &keys[i * chunk * hd];
    apply_rope_run(lg.rope, k, chunk, hd, hd, cand_chunk[fills[i].cand] * chunk, g.angles.get());
    g.hot.put_keys(head, fills[i].slot, k);
    store.read(head, fills[i].cand, g.hot.value_slot(head, fills[i].slot));
  }
}

void ShadowKvCache::select_and_fetch(GlobalLayer& g, const float* q) {
  const LayerGeometry& lg = geom_.layers[g.layer];
  const int hd = lg.head_dim, n_kv = lg.n_kv_head, group = lg.n_head / n_kv;
  const int64_t k = budget_chunks(g), extra = cfg_.hot_extra >= 0 ? cfg_.hot_extra : k / 2;
  std::vector<Fill> fills;
  for (int h = 0; h < n_kv; ++h) {
    Head& hs = g.heads[h];
    hs.selector.select(q + (int64_t)h * group * hd, group, hd, lg.scale, hs.landmarks, k, &hs.selected);
    const int64_t n = (int64_t)hs.selected.size(), room = std::min(extra, hs.landmarks.size() - n);  // no idle slots
    for (const HotValueBuffer::Miss& m : g.hot.update(h, hs.selected.data(), n, room))
      fills.push_back({h, m.chunk, m.slot});
  }
  // Misses in batches of one head and one segment (candidates are in position order within a head).
  std::sort(fills.begin(), fills.end(),
            [](const Fill& a, const Fill& b) { return a.head != b.head ? a.head < b.head : a.cand < b.cand; });
  const auto seg_end = [&](const Fill& f) {
    return segment_at(g, g.heads[f.head].cand_chunk[f.cand] * cfg_.chunk).end;
  };
  std::vector<std::pair<size_t, size_t>> batches;
  for (size_t i = 0; i < fills.size();) {
    size_t j = i + 1;
    const int64_t end = seg_end(fills[i]);
    while (j < fills.size() && j - i < kRebuildChunks && fills[j].head == fills[i].head && seg_end(fills[j]) == end)
      ++j;
    batches.push_back({i, j});
    i = j;
  }
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);  // our OpenMP threads cover the cores
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)fills.size() * cfg_.chunk * (g.rank + 16) * hd > (1 << 17))
  for (size_t b = 0; b < batches.size(); ++b)
    fill_slots(g, &fills[batches[b].first], batches[b].second - batches[b].first);
  openblas_set_num_threads(blas_threads);
}

void ShadowKvCache::decode_attend(GlobalLayer& g, int64_t pos, const float* q, float* out) {
  const LayerGeometry& lg = geom_.layers[g.layer];
  const int hd = lg.head_dim, n_kv = lg.n_kv_head, group = lg.n_head / n_kv;
  select_and_fetch(g, q);
  // Exact attention over outliers + selected + dense tail (local window and generated tokens).
  std::vector<KeyValueRows> sets((size_t)n_kv * 3);
  int64_t rows = 0;
  for (int h = 0; h < n_kv; ++h) {
    const Head& hs = g.heads[h];
    sets[h * 3 + 0] = hs.outliers.rows();
    sets[h * 3 + 1] = g.hot.rows(h);
    sets[h * 3 + 2] = g.tail.rows(h);  // all in the past of this query: no mask needed
    rows += sets[h * 3].n + sets[h * 3 + 1].n + sets[h * 3 + 2].n;
  }
  std::vector<float> rest_acc;
  const std::vector<SoftmaxAcc> rest = estimate_rest(g, &rest_acc);
  attend_sets_split(q, n_kv, group, hd, lg.scale, sets.data(), pos, rows * group * hd > (1 << 17),
                    rest.empty() ? nullptr : rest.data(), out);
}

std::vector<SoftmaxAcc> ShadowKvCache::estimate_rest(const GlobalLayer& g, std::vector<float>* acc) const {
  if (!g.estimate) return {};
  const LayerGeometry& lg = geom_.layers[g.layer];
  const int hd = lg.head_dim, n_kv = lg.n_kv_head, group = lg.n_head / n_kv;
  acc->assign((size_t)n_kv * group * hd, 0.0f);
  std::vector<SoftmaxAcc> st((size_t)n_kv * group);
  for (size_t i = 0; i < st.size(); ++i) st[i] = {0.0f, 0.0f, &(*acc)[i * hd]};  // l = 0: merge_acc skips it
  for (int h = 0; h < n_kv; ++h) {
    const Head& hs = g.heads[h];
    if (hs.selector.candidates() > 0)
      estimate_unselected(hs.selector, group, hd, cfg_.chunk, hs.value_means.data(), hs.mean_scales.data(), hs.selected,
                          &st[(size_t)h * group]);
  }
  return st;
}

void ShadowKvCache::end_prefill() {
  if (prefill_done_) return;  // later turns stay in the dense tail and are folded like generated tokens
  prefill_done_ = true;
  int64_t n_prompt = 0;
  for (const GlobalLayer& g : globals_) n_prompt = std::max(n_prompt, lens_[g.layer]);
  budget_tokens_ = budget_tokens(cfg_, n_prompt);
  n_outliers_ = outlier_chunks(cfg_, budget_tokens_);
  const int64_t prompt_chunks = std::max<int64_t>(0, n_prompt / cfg_.chunk - cfg_.local_chunks);
  outlier_fraction_ = (double)n_outliers_ / (double)std::max<int64_t>({1, prompt_chunks, budget_tokens_ / cfg_.chunk});
  // The default budget selects a short prompt whole: compressing it would only lose precision. An explicit budget
  // always compresses (so `--rank <width> --budget 100%` exercises the whole path).
  const bool compress = prompt_chunks > 0 && (cfg_.budget_value >= 0 || prompt_chunks * cfg_.chunk > budget_tokens_);
  for (GlobalLayer& g : globals_) {
    if (compress) {
      compress_block(g, prompt_chunks, n_outliers_);
      if (!g.last_q.empty()) select_and_fetch(g, g.last_q.data());  // the authors seed the buffer like this
    }
    std::vector<float>().swap(g.last_q);
  }
}

void ShadowKvCache::cover_angles(GlobalLayer& g, int64_t end) {
  if (g.angles && g.angles->limit() >= end) return;
  const RopeSpec& rope = geom_.layers[g.layer].rope;
  for (const GlobalLayer& o : globals_)
    if (o.angles && o.angles->limit() >= end && o.angles->inv_freq() == rope.inv_freq) {
      g.angles = o.angles;
      return;
    }
  // Room for generation beyond the prompt, so the table is not rebuilt at every fold.
  g.angles = std::make_shared<const RunAngles>(rope, cfg_.chunk, end + (end >> 2) + 4096);
}

void ShadowKvCache::compress_block(GlobalLayer& g, int64_t n_chunks, int64_t n_outliers) {
  if (n_chunks <= 0) return;
  cover_angles(g, g.comp_end + n_chunks * cfg_.chunk);
  const LayerGeometry& lg = geom_.layers[g.layer];
  const int hd = lg.head_dim, n_kv = lg.n_kv_head, width = n_kv * hd, chunk = cfg_.chunk;
  const int64_t n_tok = n_chunks * chunk, first_chunk = g.comp_end / chunk;
  ValueStore& store = *stores_[global_of_[g.layer]];

  // This block's own basis; U rows are shared by all heads (kept even where a head holds the chunk as an outlier).
  const std::vector<float> kpre = pre_rope_keys(g, n_tok);
  KeyBasis basis = fit_key_basis(kpre.data(), n_tok, width, g.rank, KeyFactorMethod::kGramEig);
  std::vector<float> coef((size_t)n_tok * g.rank);
  project_keys(basis, kpre.data(), n_tok, coef.data());
  if (g.coef.type() == FactorType::Q8) balance_columns(coef.data(), n_tok, &basis);  // int8 rows: U, not U.S
  g.segments.push_back({g.comp_end, g.comp_end + n_tok, split_basis_by_head(basis, n_kv, hd)});
  g.coef.append(coef.data(), n_tok);

  std::vector<float> lm((size_t)n_chunks * hd), score(n_chunks);
  std::vector<int8_t> vm;
  std::vector<float> vm_scale;
  const int64_t ce = (int64_t)chunk * hd;
  for (int h = 0; h < n_kv; ++h) {
    Head& hs = g.heads[h];
    const float* keys = g.tail.key_row(h, g.comp_end);
    const float* vals = g.tail.value_row(h, g.comp_end);
    chunk_landmarks(keys, hd, n_chunks, chunk, hd, lm.data());
    chunk_min_cosine(keys, hd, lm.data(), n_chunks, chunk, hd, score.data());
    vm.clear();
    vm_scale.clear();
    if (g.estimate) chunk_value_means(vals, hd, n_chunks, chunk, hd, &vm, &vm_scale);
    const std::vector<int64_t> out = pick_outliers(score.data(), n_chunks, n_outliers);
    size_t oi = 0;
    for (int64_t c = 0; c < n_chunks; ++c) {
      const float* kc = keys + c * ce;
      const float* vc = vals + c * ce;
      if (oi < out.size() && out[oi] == c) {  // stays exact and always attended
        ++oi;
        hs.outliers.append(kc, vc, chunk);
        continue;
      }
      hs.landmarks.append(&lm[c * hd], 1);
      if (g.estimate) {
        hs.value_means.insert(hs.value_means.end(), &vm[c * hd], &vm[(c + 1) * hd]);
        hs.mean_scales.push_back(vm_scale[c]);
      }
      hs.cand_chunk.push_back(first_chunk + c);
      store.append(h, vc);
    }
  }
  g.tail.drop_front(n_tok);
  g.comp_end += n_tok;
}

int64_t ShadowKvCache::compressed_tokens(int layer) const {
  const int gi = global_of_.at(layer);
  return gi < 0 ? 0 : globals_[gi].comp_end;
}

int64_t ShadowKvCache::candidate_chunks(int layer, int kv_head) const {
  const int gi = global_of_.at(layer);
  return gi < 0 ? 0 : (int64_t)globals_[gi].heads.at(kv_head).cand_chunk.size();
}

int64_t ShadowKvCache::outlier_chunk_count(int layer, int kv_head) const {
  const int gi = global_of_.at(layer);
  if (gi < 0) return 0;
  return globals_[gi].heads.at(kv_head).outliers.size() / cfg_.chunk;
}

int64_t ShadowKvCache::segment_count(int layer) const {
  const int gi = global_of_.at(layer);
  return gi < 0 ? 0 : (int64_t)globals_[gi].segments.size();
}

int ShadowKvCache::rank(int layer) const {
  const int gi = global_of_.at(layer);
  return gi < 0 ? 0 : globals_[gi].rank;
}

KvMemory ShadowKvCache::memory() const {
  int64_t u = 0, svt = 0, lms = 0, vms = 0, outl = 0, tail = 0, hot = 0, cold = 0, sliding = 0;
  for (size_t i = 0; i < globals_.size(); ++i) {
    const GlobalLayer& g = globals_[i];
    u += g.coef.bytes();
    for (const Segment& s : g.segments) svt += (int64_t)s.svt.size() * 4;
    tail += g.tail.bytes() + (int64_t)g.last_q.size() * 4;
    for (const Head& h : g.heads) {
      lms += h.landmarks.bytes() + (int64_t)h.cand_chunk.size() * 8;
      vms += (int64_t)h.value_means.size() + (int64_t)h.mean_scales.size() * 4;
      outl += h.outliers.bytes();
    }
    hot += g.hot.bytes();
    cold += stores_[i]->bytes();
  }
  for (const DenseLayerStore& s : sliding_) sliding += s.bytes();
  KvMemory m;
  m.parts = {{"U", u},
             {"SVt", svt},
             {"landmarks", lms},
             {"value_means", vms},
             {"outliers", outl},
             {"local_tail", tail},
             {"hot_values", hot},
             {"value_store", cold},
             {"sliding_layers", sliding}};
  m.hot = u + svt + lms + vms + outl + tail + hot + sliding;
  m.cold = cold;
  return m;
}

std::vector<std::pair<std::string, double>> ShadowKvCache::counters() const {
  int64_t hits = 0, misses = 0;
  for (const GlobalLayer& g : globals_) {
    hits += g.hot.hits();
    misses += g.hot.misses();
  }
  const double rate = hits + misses > 0 ? (double)hits / (double)(hits + misses) : 0.0;
  return {{"value_hits", (double)hits},
          {"value_misses", (double)misses},
          {"value_hit_rate", rate},
          {"budget_tokens", (double)budget_tokens_}};
}

}  // namespace shadowkv
