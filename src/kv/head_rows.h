// Per-KV-head token rows for the eviction policies (streaming, h2o, snapkv, pyramidkv): exact f32 post-RoPE keys
// and values with their positions (kept tokens differ per head), plus attention over a layer's heads: plain causal
// (and windowed) attention as DenseLayerStore computes it, and attention that also returns each row's softmax
// probability summed over the query group (the attention-score statistics those policies rank tokens by).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "kv/kv_cache.h"
#include "ops/attention.h"

namespace shadowkv {

class HeadRows {
 public:
  HeadRows() = default;
  explicit HeadRows(int head_dim) : hd_(head_dim) {}

  // Adds a row (head_dim floats each) for the token at `pos`.
  void append(int64_t pos, const float* k, const float* v);
  // Overwrites row i (ring buffers).
  void set(int64_t i, int64_t pos, const float* k, const float* v);
  // Keeps rows `rows` (ascending indices), in that order, and drops the others.
  void keep(const std::vector<int64_t>& rows);
  // Frees capacity beyond the rows held (after a large keep()).
  void release();

  // The rows as an attention input, with per-row positions (rows at or before the query's position are visible).
  KeyValueRows view() const;
  int64_t size() const { return (int64_t)pos_.size(); }
  int64_t position(int64_t i) const { return pos_[i]; }
  const std::vector<int64_t>& positions() const { return pos_; }
  const float* key(int64_t i) const { return k_.data() + i * hd_; }
  const float* value(int64_t i) const { return v_.data() + i * hd_; }
  int64_t kv_bytes() const { return size() * hd_ * 2 * (int64_t)sizeof(float); }  // keys + values held
  int64_t pos_bytes() const { return size() * (int64_t)sizeof(int64_t); }

 private:
  int hd_ = 0;
  std::vector<float> k_, v_;  // [row][head_dim]
  std::vector<int64_t> pos_;
};

// Writes head h's row sets (at most kMaxHeadSets) into sets and returns their count.
constexpr int kMaxHeadSets = 4;
using HeadSets = std::function<int(int h, KeyValueRows* sets)>;

// Attention of n query tokens at positions pos0.. of one layer (q and out [n, n_head*head_dim]) over each KV head's
// row sets, which must include the new tokens' own rows; a row at p is visible to q_pos iff p <= q_pos and
// (window == 0 or the set is a sink set or q_pos - p < window). Decode uses attend_group per KV head, a prefill
// chunk attend_tile per (16-token tile, KV head), as DenseLayerStore does.
void attend_layer(const LayerGeometry& g, int64_t pos0, int n, const float* q, int window, const HeadSets& sets_for,
                  float* out);

// Softmax attention of n_q query heads (q [n_q][head_dim]) at q_pos over f32 rows (those with pos <= q_pos, or all
// when rows.pos is null): writes out [n_q][head_dim] unless it is null, and adds to probs[i] row i's attention
// probability summed over the n_q heads.
void attend_with_probs(const float* q, int n_q, int head_dim, float scale, const KeyValueRows& rows, int64_t q_pos,
                       float* out, float* probs);

// attend_with_probs for n query tokens at pos0.. of one layer (q and out as in attend_layer; out may be null): head
// h's query group attends rows_of(h), whose probabilities, summed over the group and the n tokens, are added to
// probs[h][0 .. rows_of(h).n). Parallel over (tile of tokens, KV head); the sums do not depend on the thread count.
void attend_layer_with_probs(const LayerGeometry& g, int64_t pos0, int n, const float* q,
                             const std::function<KeyValueRows(int h)>& rows_of, const std::vector<float*>& probs,
                             float* out);

}  // namespace shadowkv
