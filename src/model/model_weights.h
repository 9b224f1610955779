// Views of a model's tensors inside the memory-mapped GGUF file (nothing is copied but the matrices decode reads
// from a packed copy: a large Q8_0 LM head and the Q4_0/Q5_0 layer matrices).
#pragma once
#include <memory>
#include <vector>

#include "model/model_config.h"
#include "ops/matmul.h"

namespace shadowkv {

struct LayerWeights {
  const float* attn_norm = nullptr;
  QMatrix wq, wk, wv, wo;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // qwen2
  const float *q_norm = nullptr, *k_norm = nullptr;         // gemma3: per-head RMSNorm weights [head_dim]
  const float* post_attn_norm = nullptr;                    // gemma3
  const float* ffn_norm = nullptr;
  QMatrix gate, up, down;
  const float* post_ffw_norm = nullptr;  // gemma3
};

struct ModelWeights {
  QMatrix token_embd;  // [n_vocab rows of n_embd]
  QMatrix output;      // the LM head (token_embd when tied)
  // The packed copies (pack_weights) that matrices' `packed` point into: a Q8_0 head of DRAM size, every Q4_0/Q5_0
  // layer matrix.
  std::vector<std::shared_ptr<const std::vector<uint8_t>>> packed;
  const float* output_norm = nullptr;
  const float* rope_freqs = nullptr;  // llama3 frequency divisors [n_rot/2], optional
  std::vector<LayerWeights> layers;
};

// Finds and checks every tensor the architecture needs (names, shapes, supported types); throws Error naming
// the first missing or malformed tensor.
ModelWeights load_model_weights(const GgufFile& file, const ModelConfig& config);

}  // namespace shadowkv
