// Perplexity of a token sequence evaluated in windows of n_ctx tokens exactly as llama.cpp's llama-perplexity does:
// each window starts with the model's BOS token when the model asks for one, and only its second half is scored,
// so every scored token has at least n_ctx/2 tokens of context.
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

// Window w of the layout (llama.cpp tools/perplexity, perplexity()): tokens [w*n_ctx, (w+1)*n_ctx), the first one
// replaced by bos when bos >= 0. There are tokens.size() / n_ctx windows; the logits at positions
// [n_ctx/2, n_ctx-2] are scored against the token that follows, n_ctx - n_ctx/2 - 1 tokens per window.
std::vector<int32_t> perplexity_window(const std::vector<int32_t>& tokens, int window, int n_ctx, int32_t bos);
inline int perplexity_first_scored(int n_ctx) { return n_ctx / 2; }

// tokens: the whole text, encoded with add_bos = true (BOS in front only if the model wants it, as llama.cpp).
// The per-window BOS is the tokenizer's when it adds one (tokenizer.ggml.add_bos_token), else none.
PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int n_ctx, const KvOptions& kv,
                            int chunk = 128);

}  // namespace shadowkv
