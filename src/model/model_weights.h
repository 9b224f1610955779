// A model's tensors: views inside the memory-mapped GGUF file, but for the matrices decode streams, which sit in one
// huge-page arena (packed in the decode layout of their type where it has one).
#pragma once
#include <vector>

#include "model/model_config.h"
#include "ops/matmul.h"
#include "util/huge_pages.h"

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
  // Move-only: the matrices point into `arena`, which a copy would not carry along.
  ModelWeights() = default;
  ModelWeights(ModelWeights&&) = default;
  ModelWeights& operator=(ModelWeights&&) = default;
  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;

  QMatrix token_embd;  // [n_vocab rows of n_embd]
  QMatrix output;      // the LM head (token_embd when tied)
  // The matrices decode streams (the layers' and the LM head), in huge-page memory: packed (pack_weights; their
  // `packed` points here) for a Q8_0 head of DRAM size and every Q4_0/Q5_0 matrix, else copied (`data` points here).
  HugeVector<uint8_t> arena;
  const float* output_norm = nullptr;
  const float* rope_freqs = nullptr;  // llama3 frequency divisors [n_rot/2], optional
  std::vector<LayerWeights> layers;
};

// Finds and checks every tensor the architecture needs (names, shapes, supported types); throws Error naming
// the first missing or malformed tensor.
ModelWeights load_model_weights(const GgufFile& file, const ModelConfig& config);

}  // namespace shadowkv
