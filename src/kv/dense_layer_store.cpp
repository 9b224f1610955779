#include "kv/dense_layer_store.h"

#include <algorithm>
#include <cstring>

#include "ops/vec.h"

namespace shadowkv {

DenseLayerStore::DenseLayerStore(const LayerGeometry& g, int max_batch_tokens, bool f16) : g_(g), f16_(f16) {
  k_.resize(g.n_kv_head);
  v_.resize(g.n_kv_head);
  if (g.window > 0) {
    ring_cap_ = g.window + std::max(1, max_batch_tokens) - 1;
    reserve(ring_cap_);
    slot_pos_.assign(ring_cap_, -1);
  }
}

void DenseLayerStore::reserve(int64_t slots) {
  if (slots <= cap_) return;
  const int64_t new_cap = ring_cap_ > 0 ? slots : std::max<int64_t>(slots, cap_ + cap_ / 2 + 64);
  for (int h = 0; h < g_.n_kv_head; ++h) {
    k_[h].resize((size_t)new_cap * g_.head_dim * elem());
    v_[h].resize((size_t)new_cap * g_.head_dim * elem());
  }
  cap_ = new_cap;
}

void DenseLayerStore::append(int64_t pos0, int n, const float* k, const float* v) {
  const int hd = g_.head_dim, width = g_.n_kv_head * hd;
  if (!is_ring()) reserve(pos0 + n);
  for (int i = 0; i < n; ++i) {
    const int64_t pos = pos0 + i;
    const int64_t slot = is_ring() ? pos % ring_cap_ : pos;
    if (is_ring()) slot_pos_[slot] = pos;
    for (int h = 0; h < g_.n_kv_head; ++h) {
      const float* ks = k + (int64_t)i * width + h * hd;
      const float* vs = v + (int64_t)i * width + h * hd;
      uint8_t* kd = k_[h].data() + (size_t)slot * hd * elem();
      uint8_t* vd = v_[h].data() + (size_t)slot * hd * elem();
      if (f16_) {
        f32_to_f16_row(ks, reinterpret_cast<uint16_t*>(kd), hd);
        f32_to_f16_row(vs, reinterpret_cast<uint16_t*>(vd), hd);
      } else {
        std::memcpy(kd, ks, sizeof(float) * hd);
        std::memcpy(vd, vs, sizeof(float) * hd);
      }
    }
  }
  n_pos_ = pos0 + n;
}

KeyValueRows DenseLayerStore::rows(int kv_head) const {
  KeyValueRows r;
  r.keys = k_[kv_head].data();
  r.vals = v_[kv_head].data();
  r.dtype = f16_ ? KvDType::F16 : KvDType::F32;
  r.n = is_ring() ? ring_cap_ : n_pos_;
  r.pos = is_ring() ? slot_pos_.data() : nullptr;
  return r;
}

void DenseLayerStore::attend(int64_t pos0, int n, const float* q, float* out) const {
  const int hd = g_.head_dim, group = g_.n_head / g_.n_kv_head;
  const int64_t qstride = (int64_t)g_.n_head * hd;
  const int n_jobs = n * g_.n_kv_head;
  auto job = [&](int j) {
    const int i = j / g_.n_kv_head, h = j % g_.n_kv_head;
    KeyValueRows r = rows(h);
    const int64_t q_pos = pos0 + i;
    if (!is_ring()) r.n = q_pos + 1;  // causal: an append-only store is visible up to the query itself
    attend_group(q + i * qstride + (int64_t)h * group * hd, group, hd, g_.scale, &r, 1, q_pos, g_.window,
                 out + i * qstride + (int64_t)h * group * hd);
  };
  if (n_jobs > 1) {
#pragma omp parallel for schedule(dynamic, 4)
    for (int j = 0; j < n_jobs; ++j) job(j);
  } else {
    for (int j = 0; j < n_jobs; ++j) job(j);
  }
}

int64_t DenseLayerStore::bytes() const {
  const int64_t slots = is_ring() ? std::min(n_pos_, ring_cap_) : n_pos_;
  return slots * g_.n_kv_head * g_.head_dim * (int64_t)elem() * 2;
}

}  // namespace shadowkv
