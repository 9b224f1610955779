// Outlier chunks (ShadowKV step 3): chunks whose keys are badly summarised by their landmark stay dense (exact
// post-RoPE K and V) for the whole decode. A chunk's score is the minimum cosine similarity of its keys to its
// landmark; the lowest scores are the outliers.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/attention.h"

namespace shadowkv {

// scores[c] = min over the chunk's rows of cos(key, landmark[c]); layouts as in chunk_landmarks().
void chunk_min_cosine(const float* keys, int64_t row_stride, const float* landmarks, int64_t n_chunks, int chunk,
                      int head_dim, float* scores);

// The `count` chunks with the lowest score (ties: lower index first), returned in increasing chunk order.
std::vector<int64_t> pick_outliers(const float* scores, int64_t n_chunks, int64_t count);

// One KV head's outlier rows (post-RoPE keys and values of whole chunks), f32 or IEEE half like the hot buffer's.
class OutlierRows {
 public:
  OutlierRows() = default;
  OutlierRows(int head_dim, bool f16) : hd_(head_dim), f16_(f16) {}
  // Appends n rows of keys and values (head_dim floats each, back to back).
  void append(const float* keys, const float* vals, int64_t n);
  int64_t size() const { return n_; }
  int64_t bytes() const { return (int64_t)(kf_.size() + vf_.size()) * 4 + (int64_t)(kh_.size() + vh_.size()) * 2; }
  KeyValueRows rows() const;

 private:
  int hd_ = 0;
  bool f16_ = false;
  int64_t n_ = 0;
  std::vector<float> kf_, vf_;
  std::vector<uint16_t> kh_, vh_;
};

}  // namespace shadowkv
