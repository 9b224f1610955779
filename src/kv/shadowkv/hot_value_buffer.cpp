#include "kv/shadowkv/hot_value_buffer.h"

#include <algorithm>
#include <cstring>

#include "ops/vec.h"

namespace shadowkv {

HotValueBuffer::HotValueBuffer(int n_heads, int chunk, int head_dim, bool f16)
    : row_elems_((int64_t)chunk * head_dim), chunk_(chunk), f16_(f16), heads_(n_heads) {}

void HotValueBuffer::put_keys(int head, int slot, const float* keys) {
  uint8_t* kd = &heads_[head].keys[(size_t)slot * slot_bytes()];
  if (f16_)
    f32_to_f16_row(keys, reinterpret_cast<uint16_t*>(kd), row_elems_);
  else
    std::memcpy(kd, keys, slot_bytes());
}

KeyValueRows HotValueBuffer::rows(int head) const {
  const Head& h = heads_[head];
  return {h.keys.data(), h.vals.data(), f16_ ? KvDType::F16 : KvDType::F32, (int64_t)h.ids.size() * chunk_, nullptr};
}

const std::vector<HotValueBuffer::Miss>& HotValueBuffer::update(int head, const int64_t* selected, int64_t n_selected) {
  Head& h = heads_[head];
  h.misses.clear();
  const int old_size = (int)h.ids.size();
  h.keep.assign(old_size, 0);
  int64_t max_id = -1;
  for (int64_t i = 0; i < n_selected; ++i) max_id = std::max(max_id, selected[i]);
  if ((int64_t)h.slot_of.size() <= max_id) h.slot_of.resize(max_id + 1, -1);

  // Pass 1: hits keep their slot; misses are queued with no slot yet.
  int64_t hits = 0;
  for (int64_t i = 0; i < n_selected; ++i) {
    const int s = h.slot_of[selected[i]];
    if (s >= 0) {
      h.keep[s] = 1;
      ++hits;
    } else {
      h.misses.push_back({selected[i], -1});
    }
  }
  // Pass 2: free the slots of chunks that dropped out; misses take freed slots first, then new ones at the end.
  // If the selection shrank, the surviving entries past the new size move down (rare: only if k decreases).
  const int new_size = (int)n_selected;
  std::vector<int> free_slots;
  for (int s = 0; s < old_size; ++s)
    if (!h.keep[s]) {
      h.slot_of[h.ids[s]] = -1;
      if (s < new_size) free_slots.push_back(s);
    }
  if (new_size < old_size) {
    for (int s = new_size; s < old_size; ++s)
      if (h.keep[s]) {  // move a kept entry into a free low slot; it stays a hit (keys/values copied along)
        const int d = free_slots.back();
        free_slots.pop_back();
        std::memcpy(&h.keys[(size_t)d * slot_bytes()], &h.keys[(size_t)s * slot_bytes()], slot_bytes());
        std::memcpy(&h.vals[(size_t)d * slot_bytes()], &h.vals[(size_t)s * slot_bytes()], slot_bytes());
        h.ids[d] = h.ids[s];
        h.slot_of[h.ids[d]] = d;
      }
  }
  h.ids.resize(new_size, -1);
  h.keys.resize((size_t)new_size * slot_bytes());
  h.vals.resize((size_t)new_size * slot_bytes());
  for (int s = old_size; s < new_size; ++s) free_slots.push_back(s);
  // free_slots now has exactly one entry per miss.
  for (size_t i = 0; i < h.misses.size(); ++i) {
    const int s = free_slots[i];
    h.misses[i].slot = s;
    h.ids[s] = h.misses[i].chunk;
    h.slot_of[h.misses[i].chunk] = s;
  }
  hits_ += hits;
  misses_ += (int64_t)h.misses.size();
  return h.misses;
}

int64_t HotValueBuffer::bytes() const {
  int64_t b = 0;
  for (const Head& h : heads_) b += (int64_t)(h.keys.size() + h.vals.size());
  return b;
}

}  // namespace shadowkv
