#include "eval/inference.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "eval/kv_policies.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

void log_softmax(const float* x, int n, std::vector<float>& out) {
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp((double)x[i] - mx);
  const float lse = mx + (float)std::log(sum);
  out.resize(n);
  for (int i = 0; i < n; ++i) out[i] = x[i] - lse;
}

Prefilled prefill(const Model& m, const std::vector<int32_t>& tokens, const KvOptions& kv, int64_t max_ctx, int chunk,
                  bool end) {
  if (tokens.empty()) throw Error("empty prompt");
  if (max_ctx > m.config().n_ctx_train)
    throw Error("a context of " + std::to_string(max_ctx) + " tokens is more than the model's " +
                std::to_string(m.config().n_ctx_train));
  if ((int64_t)tokens.size() > max_ctx) throw Error("prompt longer than the context");
  Prefilled p;
  const double t0 = now_s();
  p.cache = make_eval_kv_cache(m.kv_geometry(max_ctx, chunk), kv);
  prefill_cache(m, *p.cache, tokens, chunk, p.logits, end);
  p.seconds = now_s() - t0;
  return p;
}

Prefilled shared_prefill(const Model& m, SharedPrefill& d, const KvOptions& o, int64_t max_ctx, int chunk) {
  const double t0 = now_s();
  for (const Prefilled& h : d.heads)
    if (std::unique_ptr<KvCache> c = h.cache->fork(o)) {
      c->end_prefill();
      return {std::move(c), h.logits, h.seconds + (now_s() - t0)};
    }
  // Seed: the policy whose empty cache forks into most of the policies (o among them).
  const KvGeometry geom = m.kv_geometry(max_ctx, chunk);
  const KvOptions* seed = &o;
  int best = 0;
  for (const KvOptions* s : d.policies) {
    const std::unique_ptr<KvCache> empty = make_eval_kv_cache(geom, *s);
    if (!empty->fork(o)) continue;
    int n = 0;
    for (const KvOptions* q : d.policies) n += empty->fork(*q) != nullptr;
    if (n > best) best = n, seed = s;
  }
  Prefilled p = prefill(m, d.tokens, *seed, max_ctx, chunk, false);
  std::unique_ptr<KvCache> c = p.cache->fork(o);
  if (!c)
    c = std::move(p.cache);  // a policy that cannot fork (o is the seed)
  else
    d.heads.push_back({std::move(p.cache), p.logits, p.seconds});
  c->end_prefill();
  return {std::move(c), p.logits, now_s() - t0};
}

GreedyOutput greedy_decode(const Model& m, KvCache& cache, const std::vector<float>& first_logits, int n_predict,
                           int keep_rows) {
  const Tokenizer& tok = m.tokenizer();
  const int V = m.config().n_vocab;
  GreedyOutput g;
  std::vector<float> logits = first_logits;
  StreamDecoder dec(tok);
  const double t0 = now_s();
  while ((int)g.tokens.size() < n_predict) {
    if ((int)g.log_probs.size() < keep_rows) {
      g.log_probs.emplace_back();
      log_softmax(logits.data(), V, g.log_probs.back());
    }
    const int32_t t = argmax(logits.data(), V);
    g.path.push_back(t);
    if (tok.is_stop(t)) {
      g.stop_reason = "eos";
      break;
    }
    g.tokens.push_back(t);
    g.text += dec.push(t);
    if ((int)g.tokens.size() >= n_predict) break;
    m.forward({ForwardItem{&cache, &g.tokens.back(), 1, cache.n_tokens(), false}}, logits);
    ++g.steps;
  }
  if (g.stop_reason.empty()) g.stop_reason = "length";
  g.text += dec.flush();
  g.seconds = now_s() - t0;
  return g;
}

Fidelity teacher_forced(const Model& m, KvCache& cache, const std::vector<float>& first_logits,
                        const GreedyOutput& ref) {
  const int V = m.config().n_vocab;
  Fidelity f;
  std::vector<float> logits = first_logits, lp;
  double kl_sum = 0;
  int agree = 0;
  const int steps = (int)std::min(ref.log_probs.size(), ref.path.size());
  for (int i = 0; i < steps; ++i) {
    if (i > 0) m.forward({ForwardItem{&cache, &ref.path[i - 1], 1, cache.n_tokens(), false}}, logits);
    log_softmax(logits.data(), V, lp);
    const std::vector<float>& p = ref.log_probs[i];
    double kl = 0;
    for (int j = 0; j < V; ++j) {
      const double pj = std::exp((double)p[j]);
      if (pj > 0) kl += pj * ((double)p[j] - lp[j]);
    }
    kl = std::max(0.0, kl);
    if (i == 0) f.kl_first = kl;
    kl_sum += kl;
    agree += argmax(logits.data(), V) == ref.path[i];
  }
  f.steps = steps;
  if (steps > 0) {
    f.kl_mean = kl_sum / steps;
    f.top1 = (double)agree / steps;
  }
  return f;
}

TailPerplexity score_tail(const Model& m, KvCache& cache, const std::vector<float>& first_logits,
                          const std::vector<int32_t>& tokens, int tail, int chunk, const RowObserver& on_row) {
  const int64_t n = (int64_t)tokens.size();
  if (tail < 1 || tail >= n) throw Error("perplexity tail must be between 1 and the document length - 1");
  if (chunk < 1) throw Error("perplexity chunk must be positive");
  if (cache.n_tokens() != n - tail) throw Error("score_tail: the cache does not hold the document's head");
  const int V = m.config().n_vocab;
  const double t0 = now_s();
  TailPerplexity r;
  double nll = 0;
  std::vector<float> lp, logits;
  auto score = [&](const float* row, int32_t next) {
    log_softmax(row, V, lp);
    nll -= lp[next];
    if (on_row) on_row(r.scored, lp);
    ++r.scored;
  };
  // Row 0 (the prefill's last logits) predicts tokens[n - tail]; then each fed token predicts the next one.
  score(first_logits.data(), tokens[n - tail]);
  for (int64_t i = n - tail; i + 1 < n; i += chunk) {
    const int c = (int)std::min<int64_t>(chunk, n - 1 - i);
    m.forward({ForwardItem{&cache, tokens.data() + i, c, i, true}}, logits);
    for (int t = 0; t < c; ++t) score(&logits[(size_t)t * V], tokens[i + t + 1]);
  }
  r.mean_nll = nll / r.scored;
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = now_s() - t0;
  return r;
}

void TailFidelity::add(const std::vector<float>& ref, const std::vector<float>& lp) {
  double d = 0;
  size_t ref_best = 0, best = 0;
  for (size_t j = 0; j < ref.size(); ++j) {
    d += std::exp((double)ref[j]) * ((double)ref[j] - lp[j]);
    if (ref[j] > ref[ref_best]) ref_best = j;
    if (lp[j] > lp[best]) best = j;
  }
  kl.push_back(std::max(0.0, d));
  agree += ref_best == best;
}

double TailFidelity::quantile(double q) const {
  if (kl.empty()) return 0;
  std::vector<double> s = kl;
  std::sort(s.begin(), s.end());
  const double at = q * (double)(s.size() - 1);
  const size_t lo = (size_t)at;
  const size_t hi = std::min(lo + 1, s.size() - 1);
  return s[lo] + (at - (double)lo) * (s[hi] - s[lo]);
}

double TailFidelity::mean() const {
  double sum = 0;
  for (double x : kl) sum += x;
  return kl.empty() ? 0 : sum / (double)kl.size();
}

}  // namespace shadowkv::eval
