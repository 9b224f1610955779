// The `q8` and `q4` policies (survey "Keep the Cost Down", quantisation family): the global layers store every key
// and value row in llama.cpp's block formats, Q8_0 (32 values, an f16 scale, int8 codes: 34 bytes) or Q4_0
// (32 values, an f16 scale, 4-bit codes: 18 bytes), quantised when stored; attention dequantises the rows it reads
// and runs the exact f32 kernels. A prefill chunk is stored before it attends, so it sees its own keys and values
// with the same rounding as later tokens do. Sliding-window layers stay exact f32 rings (LayeredKvCache).
#pragma once
#include <memory>
#include <vector>

#include "kv/layered_kv_cache.h"
#include "ops/ggml_type.h"

namespace shadowkv {

class QuantizedKvCache : public LayeredKvCache {
 public:
  // type: Q8_0 or Q4_0. Error if a global layer's head_dim is not a multiple of 32.
  QuantizedKvCache(const KvGeometry& g, GgmlType type);

  std::unique_ptr<KvCache> clone() const override { return std::make_unique<QuantizedKvCache>(*this); }
  // The state depends only on the format: a fork to the same policy is a copy.
  std::unique_ptr<KvCache> fork(const KvOptions& o) const override { return o.policy == policy() ? clone() : nullptr; }
  const char* policy() const override { return type_ == GgmlType::Q8_0 ? "q8" : "q4"; }

  // Test access: the stored bytes of `pos`'s key or value row of one KV head of global layer gi (row_bytes long).
  const uint8_t* key_bytes(int gi, int kv_head, int64_t pos) const;
  const uint8_t* value_bytes(int gi, int kv_head, int64_t pos) const;
  int64_t row_bytes(int gi) const;

 protected:
  void attend_global(int gi, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
                     float* out) override;
  void global_memory(KvMemory& m) const override;

 private:
  struct Layer {
    int64_t row_bytes = 0;
    int64_t n = 0;                           // rows stored per head
    std::vector<std::vector<uint8_t>> k, v;  // per KV head: n rows of row_bytes
  };
  GgmlType type_;
  std::vector<Layer> layers_;  // per global layer
};

}  // namespace shadowkv
