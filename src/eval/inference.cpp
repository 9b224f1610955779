#include "eval/inference.h"

#include <algorithm>
#include <cmath>

#include "eval/kv_policies.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"
#include "util/clock.h"
#include "util/error.h"

namespace shadowkv::eval {
Prefilled prefill(const Model& m, const std::vector<int32_t>& tokens, const KvOptions& kv, int64_t max_ctx, int chunk,
                  bool end) {
  Prefilled p;  // an empty prompt, a context over the model's or a prompt over the context: Error from submit()
  const double t0 = now_s();
  SequenceRequest r;
  r.cache = make_eval_kv_cache(m.kv_geometry(max_ctx, chunk), kv);
  r.feed = tokens;
  r.ctx = max_ctx;
  r.prefill_chunk = chunk;
  r.end_prefill = end;
  const int V = m.config().n_vocab;
  r.on_logits = [&p, V](int64_t, const float* row) { p.logits.assign(row, row + V); };
  p.cache = run_one(m, std::move(r)).cache;
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

GreedyOutput greedy_decode(const Model& m, std::unique_ptr<KvCache>& cache, const std::vector<float>& first_logits,
                           int n_predict, int keep_rows) {
  const int V = m.config().n_vocab;
  GreedyOutput g;
  const double t0 = now_s();
  SequenceRequest r;
  r.cache = std::move(cache);
  r.first_logits = first_logits;
  r.n_predict = n_predict;
  r.sampling.temperature = 0;
  r.on_logits = [&](int64_t, const float* row) {  // every row a token is chosen from
    if ((int)g.log_probs.size() < keep_rows) {
      g.log_probs.emplace_back();
      log_softmax(row, V, g.log_probs.back());
    }
    g.path.push_back(argmax(row, V));
  };
  SequenceResult res = run_one(m, std::move(r));
  cache = std::move(res.cache);
  g.tokens = std::move(res.tokens);
  g.text = std::move(res.text);
  g.stop_reason = res.stop_reason == "eos" ? "eos" : "length";
  g.steps = res.stats.decode_steps;
  g.seconds = now_s() - t0;
  return g;
}

Fidelity teacher_forced(const Model& m, std::unique_ptr<KvCache>& cache, const std::vector<float>& first_logits,
                        const GreedyOutput& ref) {
  const int V = m.config().n_vocab;
  Fidelity f;
  const int steps = (int)std::min(ref.log_probs.size(), ref.path.size());
  if (steps == 0) return f;
  std::vector<float> lp;
  double kl_sum = 0;
  int agree = 0, i = 0;
  SequenceRequest r;
  r.cache = std::move(cache);
  r.first_logits = first_logits;
  r.forced.assign(ref.path.begin(), ref.path.begin() + steps);  // full's path, stop token included
  r.stop_at_eos = false;
  r.on_logits = [&](int64_t, const float* row) {
    log_softmax(row, V, lp);
    const std::vector<float>& p = ref.log_probs[i];
    double kl = 0;
    for (int j = 0; j < V; ++j) {
      const double pj = std::exp((double)p[j]);
      if (pj > 0) kl += pj * ((double)p[j] - lp[j]);
    }
    kl = std::max(0.0, kl);
    if (i == 0) f.kl_first = kl;
    kl_sum += kl;
    agree += argmax(row, V) == ref.path[i];
    ++i;
  };
  cache = run_one(m, std::move(r)).cache;
  f.steps = i;
  f.kl_mean = kl_sum / std::max(1, i);
  f.top1 = (double)agree / std::max(1, i);
  return f;
}

TailPerplexity score_tail(const Model& m, std::unique_ptr<KvCache>& cache, const std::vector<float>& first_logits,
                          const std::vector<int32_t>& tokens, int tail, int chunk, const RowObserver& on_row) {
  const int64_t n = (int64_t)tokens.size();
  if (tail < 1 || tail >= n) throw Error("perplexity tail must be between 1 and the document length - 1");
  if (chunk < 1) throw Error("perplexity chunk must be positive");
  if (cache->n_tokens() != n - tail) throw Error("score_tail: the cache does not hold the document's head");
  const int V = m.config().n_vocab;
  const double t0 = now_s();
  TailPerplexity r;
  double nll = 0;
  std::vector<float> lp;
  auto score = [&](const float* row, int32_t next) {
    log_softmax(row, V, lp);
    nll -= lp[next];
    if (on_row) on_row(r.scored, lp);
    ++r.scored;
  };
  // Row 0 (the prefill's last logits) predicts tokens[n - tail]; then each fed token predicts the next one.
  score(first_logits.data(), tokens[n - tail]);
  if (tail > 1) {
    SequenceRequest q;
    q.cache = std::move(cache);
    q.feed.assign(tokens.begin() + (n - tail), tokens.end() - 1);
    q.prefill_chunk = chunk;
    q.end_prefill = false;
    q.observe_from = 0;
    q.on_logits = [&](int64_t pos, const float* row) { score(row, tokens[pos + 1]); };
    cache = run_one(m, std::move(q)).cache;
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
