#include "kv/dense_layer_store.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "kv/head_rows.h"
#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

DenseLayerStore::DenseLayerStore(const LayerGeometry& g, bool f16, int64_t block_tokens) : g_(g), f16_(f16) {
  if (block_tokens < 0) throw Error("dense store: block size must be >= 0 tokens");
  if (g.window > 0) {
    k_.resize(g.n_kv_head);
    v_.resize(g.n_kv_head);
    ring_cap_ = g.window;
    reserve(ring_cap_);
    slot_pos_.assign(ring_cap_, -1);
  } else if (block_tokens > 0) {
    block_tokens_ = block_tokens;
    kp_.assign(g.n_kv_head, BlockTable((int64_t)g.head_dim * elem(), block_tokens_));
    vp_.assign(g.n_kv_head, BlockTable((int64_t)g.head_dim * elem(), block_tokens_));
  } else {
    k_.resize(g.n_kv_head);
    v_.resize(g.n_kv_head);
  }
}

const uint8_t* DenseLayerStore::slot(bool value, int h, int64_t i) const {
  if (is_paged()) return (value ? vp_ : kp_)[h].row(i);
  return (value ? v_ : k_)[h].data() + (size_t)i * g_.head_dim * elem();
}

void DenseLayerStore::reserve(int64_t slots) {
  if (is_paged()) {
    for (int h = 0; h < g_.n_kv_head; ++h) kp_[h].reserve(slots), vp_[h].reserve(slots);
    return;
  }
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
  if (!is_ring()) reserve(pos0 + n - origin_);
  // A ring keeps only the chunk's last `window` tokens; earlier ones would be overwritten at once.
  const int first = is_ring() ? std::max<int>(0, n - (int)ring_cap_) : 0;
  for (int i = first; i < n; ++i) {
    const int64_t pos = pos0 + i;
    const int64_t slot = is_ring() ? pos % ring_cap_ : pos - origin_;
    if (is_ring()) slot_pos_[slot] = pos;
    for (int h = 0; h < g_.n_kv_head; ++h) {
      const float* ks = k + (int64_t)i * width + h * hd;
      const float* vs = v + (int64_t)i * width + h * hd;
      uint8_t* kd = mutable_slot(false, h, slot);
      uint8_t* vd = mutable_slot(true, h, slot);
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
  if (is_paged()) {
    r.key_blocks = kp_[kv_head].blocks();
    r.val_blocks = vp_[kv_head].blocks();
    r.block_rows = block_tokens_;
  } else {
    r.keys = k_[kv_head].data();
    r.vals = v_[kv_head].data();
  }
  r.dtype = f16_ ? KvDType::F16 : KvDType::F32;
  r.n = is_ring() ? ring_cap_ : n_pos_ - origin_;
  r.pos = is_ring() ? slot_pos_.data() : nullptr;
  r.pos0 = is_ring() ? 0 : origin_;
  return r;
}

void DenseLayerStore::drop_front(int64_t n) {
  const int64_t keep = n_pos_ - origin_ - n;
  if (is_ring() || is_paged() || n < 0 || keep < 0)
    throw Error("dense store: cannot drop " + std::to_string(n) + " positions");
  const int64_t new_cap = keep + keep / 2 + 64;  // a fresh, smaller buffer: the dropped rows' memory is released
  const size_t row = (size_t)g_.head_dim * elem();
  for (int h = 0; h < g_.n_kv_head; ++h)
    for (std::vector<uint8_t>* buf : {&k_[h], &v_[h]}) {
      std::vector<uint8_t> fresh((size_t)new_cap * row);
      std::memcpy(fresh.data(), buf->data() + (size_t)n * row, (size_t)keep * row);
      buf->swap(fresh);
    }
  cap_ = new_cap;
  origin_ += n;
}

const void* DenseLayerStore::key_ptr(int kv_head, int64_t pos) const { return slot(false, kv_head, pos - origin_); }

const float* DenseLayerStore::key_row(int kv_head, int64_t pos) const {
  return reinterpret_cast<const float*>(slot(false, kv_head, pos - origin_));
}

const float* DenseLayerStore::value_row(int kv_head, int64_t pos) const {
  return reinterpret_cast<const float*>(slot(true, kv_head, pos - origin_));
}

void DenseLayerStore::append_and_attend(int64_t pos0, int n, const float* q, const float* k, const float* v,
                                        float* out) {
  const int hd = g_.head_dim, width = g_.n_kv_head * hd;
  // Append-only stores take the new rows first; a ring attends over itself plus the new rows held aside (in the
  // store's dtype, so a token is seen with the same rounding before and after it enters the ring).
  std::vector<std::vector<uint8_t>> new_k, new_v;
  std::vector<int64_t> new_pos;
  if (!is_ring()) {
    append(pos0, n, k, v);
  } else {
    new_k.assign(g_.n_kv_head, std::vector<uint8_t>((size_t)n * hd * elem()));
    new_v.assign(g_.n_kv_head, std::vector<uint8_t>((size_t)n * hd * elem()));
    new_pos.resize(n);
    for (int i = 0; i < n; ++i) {
      new_pos[i] = pos0 + i;
      for (int h = 0; h < g_.n_kv_head; ++h) {
        const float* ks = k + (int64_t)i * width + h * hd;
        const float* vs = v + (int64_t)i * width + h * hd;
        if (f16_) {
          f32_to_f16_row(ks, reinterpret_cast<uint16_t*>(new_k[h].data()) + (size_t)i * hd, hd);
          f32_to_f16_row(vs, reinterpret_cast<uint16_t*>(new_v[h].data()) + (size_t)i * hd, hd);
        } else {
          std::memcpy(new_k[h].data() + (size_t)i * hd * 4, ks, sizeof(float) * hd);
          std::memcpy(new_v[h].data() + (size_t)i * hd * 4, vs, sizeof(float) * hd);
        }
      }
    }
  }
  // Decode: one query per KV head; prefill: tiles of query tokens, each reading a key block once (attend_layer).
  attend_layer(
      g_, pos0, n, q, g_.window,
      [&](int h, KeyValueRows* sets) {
        sets[0] = rows(h);
        if (!is_ring()) return 1;  // append-only: rows are at their index, the tile masks causally
        sets[1] = {new_k[h].data(), new_v[h].data(), sets[0].dtype, n, new_pos.data()};
        return 2;
      },
      out);
  if (is_ring()) append(pos0, n, k, v);
}

int64_t DenseLayerStore::bytes() const {
  const int64_t slots = is_ring() ? std::min(n_pos_, ring_cap_) : n_pos_ - origin_;
  return slots * g_.n_kv_head * g_.head_dim * (int64_t)elem() * 2;
}

int64_t DenseLayerStore::reserved_bytes() const {
  if (!is_paged()) return (is_ring() ? ring_cap_ : cap_) * g_.n_kv_head * g_.head_dim * (int64_t)elem() * 2;
  int64_t b = 0;
  for (int h = 0; h < g_.n_kv_head; ++h) b += kp_[h].bytes() + vp_[h].bytes();
  return b;
}

int64_t DenseLayerStore::blocks() const {
  int64_t b = 0;
  for (int h = 0; h < (int)kp_.size(); ++h) b += kp_[h].n_blocks() + vp_[h].n_blocks();
  return b;
}

std::vector<KvSetting> paged_settings() {
  return {{"paged", SettingType::Flag, "false",
           "keep the global layers' tokens in fixed-size blocks from a pool shared by all sequences (PagedAttention)"},
          {"block-tokens", SettingType::Int, "128", "tokens per block with --paged"}};
}

int64_t block_tokens_of(const KvOptions& o) {
  if (!o.flag("paged")) return 0;
  const int64_t p = o.integer("block-tokens");
  if (p < 1 || p > 65536) throw Error("--block-tokens must be in 1..65536, got " + std::to_string(p));
  return p;
}

std::vector<std::pair<std::string, double>> dense_store_counters(const std::vector<const DenseLayerStore*>& stores) {
  int64_t used = 0, reserved = 0, blocks = 0;
  bool paged = false;
  for (const DenseLayerStore* s : stores) {
    if (s->is_ring()) continue;  // a ring holds exactly its window from the start
    used += s->bytes(), reserved += s->reserved_bytes(), blocks += s->blocks();
    paged = paged || s->is_paged();
  }
  std::vector<std::pair<std::string, double>> c = {
      {"global_reserved_bytes", (double)reserved},
      {"global_fragmentation", reserved > 0 ? 1.0 - (double)used / reserved : 0.0}};
  if (paged) c.emplace_back("kv_blocks", (double)blocks);
  return c;
}

}  // namespace shadowkv
