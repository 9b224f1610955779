// A loaded model: the mapped GGUF file, its config, weight views and tokenizer, and the forward pass.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "kv/kv_cache.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "tokenizer/tokenizer.h"

namespace shadowkv {

// One sequence's share of a forward pass: n new tokens at positions pos0.. appended to `cache`.
struct ForwardItem {
  KvCache* cache = nullptr;
  const int32_t* tokens = nullptr;
  int n = 0;
  int64_t pos0 = 0;
  bool all_logits = false;  // logits for every new token (perplexity) instead of only the last
};

class Model {
 public:
  // Opens, validates and maps the model; throws Error with the file's path and the problem.
  static std::unique_ptr<Model> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& file() const { return *file_; }

  // KV geometry for sequences of this model (max_batch_tokens: the most tokens one forward item may carry).
  KvGeometry kv_geometry(int64_t max_ctx, int max_batch_tokens) const;

  // Runs the items through the model together (weights are read once for all of them). logits receives, per
  // item in order, one row of n_vocab floats (or n rows if all_logits), and is resized to fit.
  void forward(const std::vector<ForwardItem>& items, std::vector<float>& logits) const;

 private:
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  KvGeometry layer_geometry_;  // per-layer RoPE/window/scale, built once at load
};

}  // namespace shadowkv
