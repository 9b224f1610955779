// Perplexity of a token sequence, evaluated in windows of n_ctx tokens; as llama.cpp does, only the second half
// of each window is scored, so every scored token has at least n_ctx/2 tokens of context.
#pragma once
#include <cstdint>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"

namespace shadowkv {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;
  int64_t scored_tokens = 0;
  int windows = 0;
  double seconds = 0;
};

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int n_ctx, const KvOptions& kv,
                            int chunk = 128);

}  // namespace shadowkv
