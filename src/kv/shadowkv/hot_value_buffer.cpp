// The hot buffer of selected (and recently selected) chunks' rebuilt keys and values (hot_value_buffer.h).
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
  KeyValueRows r{h.keys.data(), h.vals.data(), f16_ ? KvDType::F16 : KvDType::F32, (int64_t)h.index.size(), nullptr};
  r.index = h.index.data();
  return r;
}

void HotValueBuffer::grow(Head& h, int64_t n_slots) const {
  if ((int64_t)h.ids.size() >= n_slots) return;
  h.ids.resize(n_slots, -1);
  h.last.resize(n_slots, -1);
  h.keys.resize((size_t)n_slots * slot_bytes());
  h.vals.resize((size_t)n_slots * slot_bytes());
}

const std::vector<int>& HotValueBuffer::take_slots(Head& h, size_t n, int64_t cap) const {
  std::vector<int>& free_slots = h.free_slots;
  std::vector<std::pair<int64_t, int>>& old = h.old;  // occupied slots not selected now
  free_slots.clear();
  old.clear();
  for (int s = 0; s < (int)h.ids.size(); ++s) {
    if (h.ids[s] < 0)
      free_slots.push_back(s);
    else if (h.last[s] < h.tick)
      old.push_back({h.last[s], s});
  }
  // Chunks held after this update: at most cap (the selection + extra), so the oldest ones go.
  const int64_t occupied = (int64_t)(h.ids.size() - free_slots.size());
  const int64_t drop = std::min<int64_t>((int64_t)old.size(), std::max<int64_t>(0, occupied + (int64_t)n - cap));
  if (drop > 0) std::nth_element(old.begin(), old.begin() + (drop - 1), old.end());
  for (int64_t i = 0; i < drop; ++i) {
    const int s = old[i].second;
    h.slot_of[h.ids[s]] = -1;
    h.ids[s] = -1;
    free_slots.push_back(s);
  }
  std::sort(free_slots.begin(), free_slots.end());
  free_slots.resize(n);  // enough: the buffer has cap >= selected slots
  return free_slots;
}

const std::vector<HotValueBuffer::Miss>& HotValueBuffer::update(int head, const int64_t* selected, int64_t n_selected,
                                                                int64_t extra) {
  Head& h = heads_[head];
  ++h.tick;
  h.misses.clear();
  const int64_t cap = n_selected + std::max<int64_t>(0, extra);
  grow(h, cap);
  int64_t max_id = -1;
  for (int64_t i = 0; i < n_selected; ++i) max_id = std::max(max_id, selected[i]);
  if ((int64_t)h.slot_of.size() <= max_id) h.slot_of.resize(max_id + 1, -1);
  for (int64_t i = 0; i < n_selected; ++i) {  // hits keep their slot; misses are queued with no slot yet
    const int s = h.slot_of[selected[i]];
    if (s >= 0) {
      h.last[s] = h.tick;
    } else {
      h.misses.push_back({selected[i], -1});
    }
  }
  const std::vector<int>& free_slots = take_slots(h, h.misses.size(), cap);
  for (size_t i = 0; i < h.misses.size(); ++i) {
    const int s = free_slots[i];
    h.misses[i].slot = s;
    h.ids[s] = h.misses[i].chunk;
    h.last[s] = h.tick;
    h.slot_of[h.misses[i].chunk] = s;
  }
  h.index.clear();
  for (int64_t i = 0; i < n_selected; ++i)  // in selection order
    for (int r = 0; r < chunk_; ++r) h.index.push_back((int64_t)h.slot_of[selected[i]] * chunk_ + r);
  hits_ += n_selected - (int64_t)h.misses.size();
  misses_ += (int64_t)h.misses.size();
  return h.misses;
}

int64_t HotValueBuffer::bytes() const {
  int64_t b = 0;
  for (const Head& h : heads_) b += (int64_t)(h.keys.size() + h.vals.size());
  return b;
}

}  // namespace shadowkv
