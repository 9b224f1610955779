// The `q8` and `q4` policies: global-layer keys and values as Q8_0 / Q4_0 rows (ops/quantize.h), read back through
// ops/quant.h's dequantisation into the f32 attention kernels (kv/decoded_attention.h).
#include "kv/quantized_kv_cache.h"

#include <string>

#include "kv/decoded_attention.h"
#include "kv/kv_policy.h"
#include "ops/quant.h"
#include "ops/quantize.h"
#include "util/error.h"

namespace shadowkv {

namespace {

const KvPolicyRegistration kQ8{
    {"q8",
     "global-layer keys and values quantised as llama.cpp Q8_0 blocks (32 values, f16 scale, int8): ~3.8x less "
     "than f32",
     {},
     [](const KvGeometry& g, const KvOptions&) { return std::make_unique<QuantizedKvCache>(g, GgmlType::Q8_0); },
     30}};

const KvPolicyRegistration kQ4{
    {"q4",
     "global-layer keys and values quantised as llama.cpp Q4_0 blocks (32 values, f16 scale, 4-bit): ~7.1x less "
     "than f32",
     {},
     [](const KvGeometry& g, const KvOptions&) { return std::make_unique<QuantizedKvCache>(g, GgmlType::Q4_0); },
     31}};

// One KV head's rows of a layer: dequantised with quant.h, a block of contiguous rows per call.
class QuantRows : public RowDecoder {
 public:
  QuantRows(GgmlType type, int hd, int64_t row_bytes, const std::vector<std::vector<uint8_t>>& k,
            const std::vector<std::vector<uint8_t>>& v)
      : type_(type), hd_(hd), row_bytes_(row_bytes), k_(k), v_(v) {}
  void decode(int h, int64_t begin, int64_t n, float* k, float* v) const override {
    dequantize_row(type_, k_[h].data() + begin * row_bytes_, k, n * hd_);
    dequantize_row(type_, v_[h].data() + begin * row_bytes_, v, n * hd_);
  }

 private:
  GgmlType type_;
  int hd_;
  int64_t row_bytes_;
  const std::vector<std::vector<uint8_t>>&k_, &v_;
};

}  // namespace

QuantizedKvCache::QuantizedKvCache(const KvGeometry& g, GgmlType type) : LayeredKvCache(g, false), type_(type) {
  const char* name = policy();
  for (int gi = 0; gi < n_global(); ++gi) {
    const LayerGeometry& lg = global_geometry(gi);
    if (lg.head_dim % 32 != 0)
      throw Error(std::string("KV policy '") + name + "' quantises rows in blocks of 32 values: head_dim " +
                  std::to_string(lg.head_dim) + " of layer " + std::to_string(global_layer(gi)) +
                  " is not a multiple of 32");
    Layer L;
    L.row_bytes = shadowkv::row_bytes(type, lg.head_dim);
    L.k.resize(lg.n_kv_head);
    L.v.resize(lg.n_kv_head);
    layers_.push_back(std::move(L));
  }
}

void QuantizedKvCache::attend_global(int gi, int64_t pos0, int n, const float* q, const float*, const float* k,
                                     const float* v, float* out) {
  const LayerGeometry& g = global_geometry(gi);
  Layer& L = layers_[gi];
  const int hd = g.head_dim, width = g.n_kv_head * hd;
  for (int h = 0; h < g.n_kv_head; ++h) {
    L.k[h].resize((size_t)(pos0 + n) * L.row_bytes);
    L.v[h].resize((size_t)(pos0 + n) * L.row_bytes);
    for (int i = 0; i < n; ++i) {
      const size_t at = (size_t)(pos0 + i) * L.row_bytes;
      quantize_row(type_, k + (int64_t)i * width + h * hd, L.k[h].data() + at, hd);
      quantize_row(type_, v + (int64_t)i * width + h * hd, L.v[h].data() + at, hd);
    }
  }
  L.n = pos0 + n;
  attend_decoded(g, QuantRows(type_, hd, L.row_bytes, L.k, L.v), pos0, n, q, out);
}

void QuantizedKvCache::global_memory(KvMemory& m) const {
  int64_t k = 0, v = 0;
  for (const Layer& L : layers_)
    for (size_t h = 0; h < L.k.size(); ++h) k += L.n * L.row_bytes, v += L.n * L.row_bytes;
  m.parts.emplace_back(type_ == GgmlType::Q8_0 ? "k_q8_0" : "k_q4_0", k);
  m.parts.emplace_back(type_ == GgmlType::Q8_0 ? "v_q8_0" : "v_q4_0", v);
  m.hot += k + v;
}

const uint8_t* QuantizedKvCache::key_bytes(int gi, int kv_head, int64_t pos) const {
  return layers_.at(gi).k.at(kv_head).data() + pos * layers_[gi].row_bytes;
}

const uint8_t* QuantizedKvCache::value_bytes(int gi, int kv_head, int64_t pos) const {
  return layers_.at(gi).v.at(kv_head).data() + pos * layers_[gi].row_bytes;
}

int64_t QuantizedKvCache::row_bytes(int gi) const { return layers_.at(gi).row_bytes; }

}  // namespace shadowkv
