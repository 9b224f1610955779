// Windowed perplexity with llama.cpp's layout: BOS per window where the model wants it, second half scored.
#include "runtime/perplexity.h"

#include <cmath>

#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"
#include "util/clock.h"
#include "util/error.h"

namespace shadowkv {

std::vector<int32_t> perplexity_window(const std::vector<int32_t>& tokens, int window, int n_ctx, int32_t bos) {
  const size_t start = (size_t)window * n_ctx;
  if (window < 0 || n_ctx <= 0 || start + n_ctx > tokens.size()) throw Error("perplexity window out of range");
  std::vector<int32_t> w(tokens.begin() + start, tokens.begin() + start + n_ctx);
  if (bos >= 0) w[0] = bos;
  return w;
}

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int n_ctx, const KvOptions& kv,
                            int chunk) {
  if (n_ctx < 16) throw Error("perplexity needs a context of at least 16 tokens");
  if ((int64_t)tokens.size() < n_ctx)
    throw Error("the text has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                std::to_string(n_ctx) + " (lower -c)");
  const double t0 = now_s();
  const Tokenizer& tok = model.tokenizer();
  const int32_t bos = tok.add_bos_default() && tok.bos() >= 0 ? tok.bos() : -1;
  const int V = model.config().n_vocab;
  const int first = perplexity_first_scored(n_ctx);
  const int n_windows = (int)(tokens.size() / n_ctx);
  // Windows run as sequences of the engine loop, a few at a time; each scores its own rows.
  SchedulerOptions so;
  so.max_batch = 4;
  so.prefill_chunk = chunk;
  Scheduler sched(model, so);
  std::vector<double> nll(n_windows, 0.0);
  std::vector<int64_t> scored(n_windows, 0);
  std::vector<SequenceRequest> reqs(n_windows);
  for (int win = 0; win < n_windows; ++win) {
    SequenceRequest& r = reqs[win];
    r.feed = perplexity_window(tokens, win, n_ctx, bos);
    r.kv = kv;
    r.ctx = n_ctx;
    r.end_prefill = false;  // nothing is generated: a compressing policy would compress for nothing
    r.observe_from = first;
    // Row `pos` predicts the window's next token; positions [first, n_ctx-2] are scored (their targets are the
    // text's own tokens: only a window's first token is replaced by BOS).
    const int64_t base = (int64_t)win * n_ctx;
    r.on_logits = [&, win, base](int64_t pos, const float* row) {
      if (pos > n_ctx - 2) return;
      nll[win] += log_sum_exp(row, V) - row[tokens[base + pos + 1]];
      ++scored[win];
    };
  }
  sched.run(std::move(reqs));
  PerplexityResult r;
  double total = 0;
  for (int win = 0; win < n_windows; ++win) total += nll[win], r.scored_tokens += scored[win];
  r.windows = n_windows;
  r.mean_nll = total / std::max<int64_t>(1, r.scored_tokens);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = now_s() - t0;
  return r;
}

}  // namespace shadowkv
