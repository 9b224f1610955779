// The `kivi` policy (Liu et al. 2024, "KIVI: a tuning-free asymmetric 2bit quantization for KV cache"), on global
// layers: keys are quantised per channel (min/max over `group` consecutive tokens of each channel), values per token
// (min/max over `group` consecutive channels), both asymmetric with `bits`-bit codes and f16 scale and zero point
// (kivi_codes.h). The newest tokens stay f32: values of the last `residual` tokens, keys of the last `residual`
// tokens plus those not yet forming a full group of `group` (a key group is quantised once `residual + group` exact
// keys have piled up). Each attend() first attends exactly over the dequantised and exact rows, new tokens
// included (f32), then quantises what left the residual window, so a whole-prompt prefill is exact as in the paper.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/layered_kv_cache.h"

namespace shadowkv {

class KiviKvCache : public LayeredKvCache {
 public:
  // Settings bits (2 or 4), group (>= 1), residual (>= 0); Error otherwise.
  KiviKvCache(const KvGeometry& g, const KvOptions& o);

  std::unique_ptr<KvCache> clone() const override { return std::make_unique<KiviKvCache>(*this); }
  const char* policy() const override { return "kivi"; }
  std::vector<std::pair<std::string, double>> counters() const override;

  // Test access: rows [begin, begin + n) of one KV head of global layer gi as attention reads them (f32, [n][hd]);
  // positions whose keys / values are quantised (the first quantized_keys / quantized_values of the layer).
  void decode_rows(int gi, int kv_head, int64_t begin, int64_t n, float* k, float* v) const;
  int64_t quantized_keys(int gi) const { return layers_.at(gi).kq; }
  int64_t quantized_values(int gi) const { return layers_.at(gi).vq; }

  struct Head {
    std::vector<uint8_t> kcodes;         // [kq][krow]: per-channel codes, one packed row per token
    std::vector<uint16_t> kscale, kmin;  // [kq / group][head_dim] f16, per key group and channel
    std::vector<float> ktail;            // [n - kq][head_dim] exact keys
    std::vector<uint8_t> vcodes;         // [vq][vrow]
    std::vector<uint16_t> vscale, vmin;  // [vq][channel groups] f16, per token and group of channels
    std::vector<float> vtail;            // [n - vq][head_dim] exact values
  };
  struct Layer {
    int64_t n = 0, kq = 0, vq = 0;  // positions stored; keys / values quantised (positions 0 .. kq-1 / vq-1)
    std::vector<Head> heads;
  };

 protected:
  void attend_global(int gi, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
                     float* out) override;
  void global_memory(KvMemory& m) const override;

 private:
  void quantize_key_group(int gi);
  void quantize_values(int gi, int64_t count);

  int bits_ = 2, group_ = 32, residual_ = 128;
  std::vector<Layer> layers_;  // per global layer
};

}  // namespace shadowkv
