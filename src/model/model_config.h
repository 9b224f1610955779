// Hyperparameters of a supported architecture, read from GGUF metadata (no hard-coded model sizes).
#pragma once
#include <string>
#include <vector>

#include "kv/kv_cache.h"

namespace shadowkv {

class GgufFile;

enum class Arch { Gemma3, Llama, Qwen2 };

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string arch_name;
  std::string name;  // general.name
  int n_vocab = 0, n_embd = 0, n_layer = 0, n_ff = 0;
  int n_head = 0, n_kv_head = 0, head_dim = 0, n_rot = 0;
  int n_ctx_train = 0;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;        // global layers
  float rope_base_local = 10000.0f;  // gemma3 sliding-window layers
  float rope_linear_scale = 1.0f;    // rope.scaling.type == linear: positions divided by the factor
  int sliding_window = 0;            // 0: no sliding layers
  std::vector<bool> layer_sliding;   // per layer
  float attn_scale = 1.0f;
  bool has_qkv_bias = false;
  bool instruction_tuned = false;  // has a chat template

  // Per-layer attention geometry for the KV cache (rope_freqs: optional llama3 frequency divisors).
  KvGeometry kv_geometry(int64_t max_ctx, int max_batch_tokens, const float* rope_freqs) const;
};

// Reads and validates the config; throws Error for an unsupported architecture or missing/invalid keys.
ModelConfig read_model_config(const GgufFile& file);

}  // namespace shadowkv
