// Open-addressing hash index from token text to id. Much faster than std::unordered_map for the merge loop's many
// lookups into a 262K-entry vocabulary: one probe touches a flat 8-byte slot, and the text is compared only on a tag
// match. Keys are views; their storage must outlive the index.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace shadowkv {

class PieceIndex {
 public:
  // Call once with the number of keys before inserting.
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    slots_.assign(cap, Slot{0, -1});
    mask_ = cap - 1;
  }
  // Inserts key -> id (id >= 0) unless the key is already present: the first insert wins.
  void insert(std::string_view key, int32_t id) {
    if (static_cast<size_t>(id) >= keys_.size()) keys_.resize(id + 1);
    const uint64_t h = hash(key);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = {tag, id};
        keys_[id] = key;
        return;
      }
      if (s.tag == tag && keys_[s.id] == key) return;
    }
  }
  int32_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash(key);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && keys_[s.id] == key) return s.id;
    }
  }

 private:
  struct Slot {
    uint32_t tag;
    int32_t id;
  };
  static uint64_t hash(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a final mix so the low (index) bits are well spread
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
  }
  std::vector<Slot> slots_;
  std::vector<std::string_view> keys_;  // by id
  size_t mask_ = 0;
};

}  // namespace shadowkv
