// The transformer forward pass for gemma3, llama and qwen2, over a batch of rows that may belong to several
// sequences. Read top to bottom: embed, then per layer attention block and feed-forward block, then the head.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/model.h"
#include "ops/quant.h"
#include "ops/rope.h"
#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {
namespace {

// Row-wise RMSNorm of `rows` vectors of width n (in place allowed).
void rmsnorm_rows(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
#pragma omp parallel for if (rows > 16)
  for (int64_t r = 0; r < rows; ++r) rmsnorm(x + r * n, w, y + r * n, n, eps);
}

void add_bias(float* x, const float* b, int64_t rows, int64_t n) {
  if (!b) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) x[r * n + i] += b[i];
}

// The items' tokens' embedding rows into x, back to back, and each row's position in its own sequence into pos.
void embed(const QMatrix& emb, const ModelConfig& c, const std::vector<ForwardItem>& items, float* x, int64_t* pos) {
  const int64_t E = c.n_embd;
  const bool gemma = c.arch == Arch::Gemma3;
  const float scale = gemma ? std::sqrt((float)E) : 1.0f;
  for (int64_t r = 0, i = 0; i < (int64_t)items.size(); ++i) {
    for (int t = 0; t < items[i].n; ++t, ++r) {
      const int32_t tok = items[i].tokens[t];
      if (tok < 0 || tok >= c.n_vocab) throw Error("token id " + std::to_string(tok) + " is out of range");
      dequantize_row(emb.type, emb.data + tok * emb.row_stride, &x[r * E], E);
      if (gemma) scale_f32(scale, &x[r * E], E);
      pos[r] = items[i].pos0 + t;
    }
  }
}

// One layer's rows for the caches: queries, keys before and after RoPE, values, and where the attention goes.
struct AttentionRows {
  const float *q, *k_pre, *k, *v;
  float* out;
  int64_t qw, kvw;  // row widths of q / out and of the keys and values
};

// Each item's cache attends its rows of layer l. A decode step's sequences attend in parallel (each on one thread:
// a cache's own parallel regions run inline, and its results do not depend on the thread count); prefill chunks
// one after the other, each over all threads. One sequence (or one thread) runs outside any region: inside an
// inactive one (`parallel if (false)`, or a team of one) a cache's own regions would be nested ones, for which
// libgomp starts new threads every time instead of reusing its pool.
void attend_all(const std::vector<ForwardItem>& items, const std::vector<RowSpan>& body, int l,
                const AttentionRows& a) {
  auto attend = [&](size_t i) {
    const int64_t r = body[i].begin;
    items[i].cache->attend(l, items[i].pos0, items[i].n, a.q + r * a.qw, a.k_pre + r * a.kvw, a.k + r * a.kvw,
                           a.v + r * a.kvw, a.out + r * a.qw);
  };
  const bool all_decode = std::all_of(items.begin(), items.end(), [](const ForwardItem& it) { return it.n == 1; });
  if (all_decode && items.size() > 1 && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < items.size(); ++i) attend(i);
  } else {
    for (size_t i = 0; i < items.size(); ++i) attend(i);
  }
}

}  // namespace

void Model::forward(const std::vector<ForwardItem>& items, std::vector<float>& logits) const {
  const ModelConfig& c = config_;
  const int64_t E = c.n_embd, hd = c.head_dim, qw = (int64_t)c.n_head * hd, kvw = (int64_t)c.n_kv_head * hd;
  const bool gemma = c.arch == Arch::Gemma3;

  // Row layout: the items' tokens back to back; pos[r] is each row's position in its own sequence.
  int64_t R = 0, out_rows = 0;
  for (const ForwardItem& it : items) {
    if (it.n <= 0 || !it.cache) throw Error("forward: empty item");
    R += it.n;
    out_rows += it.all_logits ? it.n : 1;
  }
  // Each item's rows go through the matrix products as a batch of their own (matmul_spans), so a sequence's
  // results do not depend on what else is in the batch.
  std::vector<RowSpan> body, head;
  for (int64_t r = 0, o = 0, i = 0; i < (int64_t)items.size(); r += items[i].n, ++i) {
    body.push_back({r, items[i].n});
    head.push_back({o, items[i].all_logits ? items[i].n : 1});
    o += head.back().n;
  }
  std::vector<int64_t> pos(R);
  std::vector<float> x(R * E), xn(R * E), q(R * qw), k(R * kvw), k_pre(R * kvw), v(R * kvw), att(R * qw);
  std::vector<float> gate(R * c.n_ff), up(R * c.n_ff);

  // 1. Embedding lookup (Gemma scales embeddings by sqrt(n_embd)).
  embed(weights_.token_embd, c, items, x.data(), pos.data());

  const KvGeometry& geo = layer_geometry_;
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = weights_.layers[l];
    const LayerGeometry& lg = geo.layers[l];

    // 2. Attention block: projections, (gemma) per-head q/k norm, RoPE, then each sequence's cache attends.
    rmsnorm_rows(x.data(), L.attn_norm, xn.data(), R, E, c.rms_eps);
    matmul_spans({{&L.wq, q.data()}, {&L.wk, k.data()}, {&L.wv, v.data()}}, xn.data(), body);
    add_bias(q.data(), L.bq, R, qw);
    add_bias(k.data(), L.bk, R, kvw);
    add_bias(v.data(), L.bv, R, kvw);
    if (gemma) {
      rmsnorm_rows(q.data(), L.q_norm, q.data(), R * c.n_head, hd, c.rms_eps);
      rmsnorm_rows(k.data(), L.k_norm, k.data(), R * c.n_kv_head, hd, c.rms_eps);
    }
    std::memcpy(k_pre.data(), k.data(), sizeof(float) * R * kvw);
#pragma omp parallel for if (R > 4)
    for (int64_t r = 0; r < R; ++r) {
      apply_rope(lg.rope, &q[r * qw], c.n_head, hd, pos[r]);
      apply_rope(lg.rope, &k[r * kvw], c.n_kv_head, hd, pos[r]);
    }
    attend_all(items, body, l, {q.data(), k_pre.data(), k.data(), v.data(), att.data(), qw, kvw});
    matmul_spans(L.wo, att.data(), body, xn.data());
    if (gemma) rmsnorm_rows(xn.data(), L.post_attn_norm, xn.data(), R, E, c.rms_eps);
    for (int64_t i = 0; i < R * E; ++i) x[i] += xn[i];

    // 3. Feed-forward block: GeGLU (gemma) or SwiGLU (llama, qwen2).
    rmsnorm_rows(x.data(), L.ffn_norm, xn.data(), R, E, c.rms_eps);
    matmul_spans({{&L.gate, gate.data()}, {&L.up, up.data()}}, xn.data(), body);
#pragma omp parallel for if (R > 4)
    for (int64_t r = 0; r < R; ++r) glu_f32(gemma, &gate[r * c.n_ff], &up[r * c.n_ff], c.n_ff);
    matmul_spans(L.down, gate.data(), body, xn.data());
    if (gemma) rmsnorm_rows(xn.data(), L.post_ffw_norm, xn.data(), R, E, c.rms_eps);
    for (int64_t i = 0; i < R * E; ++i) x[i] += xn[i];
  }

  // 4. Head: final norm and the (possibly tied) output projection, only for the rows that want logits.
  std::vector<float> h(out_rows * E);
  for (int64_t r = 0, o = 0, i = 0; i < (int64_t)items.size(); r += items[i].n, ++i) {
    const int first = items[i].all_logits ? 0 : items[i].n - 1;
    for (int t = first; t < items[i].n; ++t, ++o)
      rmsnorm(&x[(r + t) * E], weights_.output_norm, &h[o * E], E, c.rms_eps);
  }
  logits.resize(out_rows * (int64_t)c.n_vocab);
  matmul_spans(weights_.output, h.data(), head, logits.data());
}

}  // namespace shadowkv
