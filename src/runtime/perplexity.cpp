// Windowed perplexity with llama.cpp's layout: BOS per window where the model wants it, second half scored.
#include "runtime/perplexity.h"

#include <chrono>
#include <cmath>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace shadowkv {

std::vector<int32_t> perplexity_window(const std::vector<int32_t>& tokens, int window, int n_ctx, int32_t bos) {
  const size_t start = (size_t)window * n_ctx;
  if (window < 0 || n_ctx <= 0 || start + n_ctx > tokens.size()) throw Error("perplexity window out of range");
  std::vector<int32_t> w(tokens.begin() + start, tokens.begin() + start + n_ctx);
  if (bos >= 0) w[0] = bos;
  return w;
}

namespace {

// -log softmax(row)[target], in double.
double nll_of(const float* row, int n_vocab, int32_t target) {
  float mx = row[0];
  for (int j = 1; j < n_vocab; ++j) mx = std::max(mx, row[j]);
  double sum = 0;
  for (int j = 0; j < n_vocab; ++j) sum += std::exp((double)row[j] - mx);
  return -((double)row[target] - mx - std::log(sum));
}

}  // namespace

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int n_ctx, const KvOptions& kv,
                            int chunk) {
  if (n_ctx < 16) throw Error("perplexity needs a context of at least 16 tokens");
  if ((int64_t)tokens.size() < n_ctx)
    throw Error("the text has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                std::to_string(n_ctx) + " (lower -c)");
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer& tok = model.tokenizer();
  const int32_t bos = tok.add_bos_default() && tok.bos() >= 0 ? tok.bos() : -1;
  const int V = model.config().n_vocab;
  const int first = perplexity_first_scored(n_ctx);
  PerplexityResult r;
  double nll = 0;
  std::vector<float> logits;
  const int n_windows = (int)(tokens.size() / n_ctx);
  for (int win = 0; win < n_windows; ++win) {
    const std::vector<int32_t> w = perplexity_window(tokens, win, n_ctx, bos);
    auto cache = make_kv_cache(model.kv_geometry(n_ctx, chunk), kv);
    for (int i = 0; i < n_ctx; i += chunk) {
      const int n = std::min(chunk, n_ctx - i);
      const bool scored = i + n > first;  // this chunk holds positions >= first
      model.forward({ForwardItem{cache.get(), w.data() + i, n, i, scored}}, logits);
      if (!scored) continue;
      // Row t is position i+t; positions [first, n_ctx-2] predict the next token of the window.
      for (int t = std::max(0, first - i); t < n && i + t <= n_ctx - 2; ++t) {
        nll += nll_of(&logits[(size_t)t * V], V, w[i + t + 1]);
        ++r.scored_tokens;
      }
    }
    ++r.windows;
  }
  r.mean_nll = nll / std::max<int64_t>(1, r.scored_tokens);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace shadowkv
