#include "kv/shadowkv/hot_value_buffer.h"

#include <algorithm>

namespace shadowkv {

HotValueBuffer::HotValueBuffer(int n_heads, int chunk, int head_dim)
    : row_elems_((int64_t)chunk * head_dim), heads_(n_heads) {}

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
        std::copy_n(&h.keys[(size_t)s * row_elems_], row_elems_, &h.keys[(size_t)d * row_elems_]);
        std::copy_n(&h.vals[(size_t)s * row_elems_], row_elems_, &h.vals[(size_t)d * row_elems_]);
        h.ids[d] = h.ids[s];
        h.slot_of[h.ids[d]] = d;
      }
  }
  h.ids.resize(new_size, -1);
  h.keys.resize((size_t)new_size * row_elems_);
  h.vals.resize((size_t)new_size * row_elems_);
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
  for (const Head& h : heads_) b += (int64_t)(h.keys.size() + h.vals.size()) * 4;
  return b;
}

}  // namespace shadowkv
