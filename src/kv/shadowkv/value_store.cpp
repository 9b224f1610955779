#include "kv/shadowkv/value_store.h"

#include <algorithm>
#include <string>

#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {

RamValueStore::RamValueStore(int n_streams, int64_t chunk_elems, bool f16) : chunk_elems_(chunk_elems), f16_(f16) {
  if (n_streams < 0 || chunk_elems < 1) throw Error("value store: bad shape");
  if (f16_) {
    f16s_.resize(n_streams);
  } else {
    f32_.resize(n_streams);
  }
}

int64_t RamValueStore::append(int stream, const float* vals) {
  if (f16_) {
    auto& s = f16s_.at(stream);
    const size_t off = s.size();
    s.resize(off + chunk_elems_);
    f32_to_f16_row(vals, s.data() + off, chunk_elems_);
    return (int64_t)(off / chunk_elems_);
  }
  auto& s = f32_.at(stream);
  s.insert(s.end(), vals, vals + chunk_elems_);
  return (int64_t)(s.size() / chunk_elems_) - 1;
}

void RamValueStore::read(int stream, const int64_t* slots, int n, float* const* dst) const {
  const int64_t have = n_slots(stream);
  for (int i = 0; i < n; ++i) {
    if (slots[i] < 0 || slots[i] >= have)
      throw Error("value store: slot " + std::to_string(slots[i]) + " out of range (" + std::to_string(have) + ")");
    if (f16_) {
      f16_to_f32_row(f16s_[stream].data() + slots[i] * chunk_elems_, dst[i], chunk_elems_);
    } else {
      std::copy_n(f32_[stream].data() + slots[i] * chunk_elems_, chunk_elems_, dst[i]);
    }
  }
}

int64_t RamValueStore::n_slots(int stream) const {
  return (int64_t)(f16_ ? f16s_.at(stream).size() : f32_.at(stream).size()) / chunk_elems_;
}

int64_t RamValueStore::bytes() const {
  int64_t b = 0;
  for (const auto& s : f32_) b += (int64_t)s.size() * 4;
  for (const auto& s : f16s_) b += (int64_t)s.size() * 2;
  return b;
}

}  // namespace shadowkv
