#include "runtime/perplexity.h"

#include <chrono>
#include <cmath>

#include "util/error.h"

namespace shadowkv {

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int n_ctx, const KvOptions& kv,
                            int chunk) {
  if (n_ctx < 16) throw Error("perplexity needs a context of at least 16 tokens");
  if ((int64_t)tokens.size() < n_ctx)
    throw Error("the text has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                std::to_string(n_ctx) + " (lower -c)");
  const auto t0 = std::chrono::steady_clock::now();
  const int V = model.config().n_vocab;
  PerplexityResult r;
  double nll = 0;
  std::vector<float> logits;
  for (size_t start = 0; start + n_ctx <= tokens.size(); start += n_ctx) {
    auto cache = make_kv_cache(model.kv_geometry(n_ctx, chunk), kv);
    const int32_t* w = tokens.data() + start;
    for (int i = 0; i < n_ctx; i += chunk) {
      const int n = std::min(chunk, n_ctx - i);
      const bool scored = i + n > n_ctx / 2;
      model.forward({ForwardItem{cache.get(), w + i, n, i, scored}}, logits);
      if (!scored) continue;
      // Row t predicts token i+t+1; score predictions of tokens in the window's second half.
      for (int t = 0; t < n; ++t) {
        const int target_idx = i + t + 1;
        if (target_idx < n_ctx / 2 || target_idx >= n_ctx) continue;
        const float* row = &logits[(size_t)t * V];
        float mx = row[0];
        for (int j = 1; j < V; ++j) mx = std::max(mx, row[j]);
        double sum = 0;
        for (int j = 0; j < V; ++j) sum += std::exp((double)row[j] - mx);
        nll += -(row[w[target_idx]] - mx - std::log(sum));
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
