// Per-KV-head token rows and attention (with per-row probabilities) over a layer's heads; see head_rows.h.
#include "kv/head_rows.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

namespace {
constexpr int kTile = 16;  // query tokens per prefill job
}  // namespace

void HeadRows::append(int64_t pos, const float* k, const float* v) {
  k_.insert(k_.end(), k, k + hd_);
  v_.insert(v_.end(), v, v + hd_);
  pos_.push_back(pos);
}

void HeadRows::set(int64_t i, int64_t pos, const float* k, const float* v) {
  std::memcpy(k_.data() + i * hd_, k, sizeof(float) * hd_);
  std::memcpy(v_.data() + i * hd_, v, sizeof(float) * hd_);
  pos_[i] = pos;
}

void HeadRows::keep(const std::vector<int64_t>& rows) {
  int64_t j = 0, prev = -1;
  for (const int64_t i : rows) {
    if (i <= prev || i >= size()) throw Error("head rows: keep() needs ascending row indices");
    prev = i;
    if (i != j) {
      std::memmove(k_.data() + j * hd_, k_.data() + i * hd_, sizeof(float) * hd_);
      std::memmove(v_.data() + j * hd_, v_.data() + i * hd_, sizeof(float) * hd_);
      pos_[j] = pos_[i];
    }
    ++j;
  }
  k_.resize((size_t)j * hd_);
  v_.resize((size_t)j * hd_);
  pos_.resize(j);
}

void HeadRows::release() {
  k_.shrink_to_fit();
  v_.shrink_to_fit();
  pos_.shrink_to_fit();
}

KeyValueRows HeadRows::view() const {
  KeyValueRows r;
  r.keys = k_.data();
  r.vals = v_.data();
  r.dtype = KvDType::F32;
  r.n = size();
  r.pos = pos_.data();
  return r;
}

void attend_layer(const LayerGeometry& g, int64_t pos0, int n, const float* q, int window, const HeadSets& sets_for,
                  float* out) {
  const int hd = g.head_dim, group = g.n_head / g.n_kv_head;
  const int64_t qstride = (int64_t)g.n_head * hd;
  if (n == 1) {
    // Decode: a job per KV head, and with a single KV head and a short row set its query heads in two halves (each
    // head's result is the same however the heads are grouped); attend_group splits a long row set itself. Inside a
    // parallel region (a batch's sequences attend on their own threads) the halves would run one after the other,
    // each reading every row: one job then reads them once for the whole group.
    int split = 1;
    if (g.n_kv_head == 1 && group > 1 && !omp_in_parallel()) {
      KeyValueRows sets[kMaxHeadSets];
      const int n_sets = sets_for(0, sets);
      int64_t rows = 0;
      for (int i = 0; i < n_sets; ++i) rows += sets[i].n;
      if (attention_parts(rows) == 1) split = 2;
    }
#pragma omp parallel for if (g.n_kv_head * split > 1)
    for (int j = 0; j < g.n_kv_head * split; ++j) {
      const int h = j / split, q0 = h * group + (j % split) * group / split;
      const int nq = h * group + (j % split + 1) * group / split - q0;
      KeyValueRows sets[kMaxHeadSets];
      const int n_sets = sets_for(h, sets);
      attend_group(q + (int64_t)q0 * hd, nq, hd, g.scale, sets, n_sets, pos0, window, out + (int64_t)q0 * hd);
    }
    return;
  }
  const int n_tiles = (n + kTile - 1) / kTile, n_jobs = n_tiles * g.n_kv_head;
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);  // our OpenMP threads cover the cores; each tile's GEMMs run on one
#pragma omp parallel for schedule(dynamic, 1)
  for (int j = 0; j < n_jobs; ++j) {
    const int t0 = (j / g.n_kv_head) * kTile, h = j % g.n_kv_head, nt = std::min(kTile, n - t0);
    KeyValueRows sets[kMaxHeadSets];
    const int n_sets = sets_for(h, sets);
    const int64_t off = t0 * qstride + (int64_t)h * group * hd;
    attend_tile(q + off, qstride, nt, group, hd, g.scale, sets, n_sets, pos0 + t0, window, out + off, qstride);
  }
  openblas_set_num_threads(blas_threads);
}

void attend_with_probs(const float* q, int n_q, int head_dim, float scale, const KeyValueRows& rows, int64_t q_pos,
                       float* out, float* probs) {
  if (rows.dtype != KvDType::F32 || rows.block_rows > 0) throw Error("attend_with_probs: contiguous f32 rows only");
  const int hd = head_dim;
  std::vector<float> acc((size_t)n_q * hd, 0.0f);
  std::vector<SoftmaxAcc> st(n_q);
  for (int h = 0; h < n_q; ++h) st[h] = {-std::numeric_limits<float>::infinity(), 0.0f, &acc[(size_t)h * hd]};
  attend_rows(q, n_q, hd, scale, rows, q_pos, 0, st.data());  // the softmax maximum and normaliser per head
  if (out) finish_acc(st.data(), n_q, hd, out, hd);
  const float* keys = static_cast<const float*>(rows.keys);
  for (int h = 0; h < n_q; ++h) {
    if (st[h].l == 0.0f) continue;
    const float inv = 1.0f / st[h].l;
    const float* qh = q + (int64_t)h * hd;
    for (int64_t i = 0; i < rows.n; ++i) {
      if (rows.pos && (rows.pos[i] < 0 || rows.pos[i] > q_pos)) continue;
      // The same score expression as attend_rows, so the probabilities sum to 1 up to rounding.
      probs[i] += std::exp(scale * dot_f32(qh, keys + i * hd, hd) - st[h].m) * inv;
    }
  }
}

void attend_layer_with_probs(const LayerGeometry& g, int64_t pos0, int n, const float* q,
                             const std::function<KeyValueRows(int h)>& rows_of, const std::vector<float*>& probs,
                             float* out) {
  const int hd = g.head_dim, group = g.n_head / g.n_kv_head;
  const int64_t qstride = (int64_t)g.n_head * hd;
  const int n_tiles = (n + kTile - 1) / kTile, n_jobs = n_tiles * g.n_kv_head;
  std::vector<std::vector<float>> part(n_jobs);  // each job's probability sums, added in job order below
#pragma omp parallel for schedule(dynamic, 1) if (n_jobs > 1)
  for (int j = 0; j < n_jobs; ++j) {
    const int t0 = (j / g.n_kv_head) * kTile, h = j % g.n_kv_head, nt = std::min(kTile, n - t0);
    const KeyValueRows rows = rows_of(h);
    part[j].assign(rows.n, 0.0f);
    for (int t = t0; t < t0 + nt; ++t) {
      const int64_t off = t * qstride + (int64_t)h * group * hd;
      attend_with_probs(q + off, group, hd, g.scale, rows, pos0 + t, out ? out + off : nullptr, part[j].data());
    }
  }
  for (int j = 0; j < n_jobs; ++j) {
    float* p = probs[j % g.n_kv_head];
    for (size_t i = 0; i < part[j].size(); ++i) p[i] += part[j][i];
  }
}

}  // namespace shadowkv
