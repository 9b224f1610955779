// The harness's prefill, greedy decode, teacher-forced comparison and tail scoring, as clients of the engine loop
// (runtime/scheduler.h). Caches come from make_eval_kv_cache, so the test-only truncate:N runs through the same code.
// Functions that continue a cache take it by unique_ptr& and hand it back when done.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"

namespace shadowkv::eval {

struct Prefilled {
  std::unique_ptr<KvCache> cache;
  std::vector<float> logits;  // last prompt position
  double seconds = 0;         // includes end_prefill
};

// Feeds tokens in chunks into a fresh cache of policy `kv` sized for max_ctx positions and ends the prefill
// (unless `end` is false); throws Error if the prompt is longer than the model's context.
Prefilled prefill(const Model& m, const std::vector<int32_t>& tokens, const KvOptions& kv, int64_t max_ctx, int chunk,
                  bool end = true);

// Prefills of one prompt shared by several policies: the prompt is prefilled once per group of policies whose
// prefill state is the same (KvCache::fork), seeded with the policy that can be forked into the most of them.
struct SharedPrefill {
  std::vector<int32_t> tokens;
  std::vector<const KvOptions*> policies;  // every policy that will ask
  std::vector<Prefilled> heads;            // prefills not yet ended
};

// A prefilled, ended cache of policy o (one of d.policies); seconds = the shared prefill's + this end_prefill.
Prefilled shared_prefill(const Model& m, SharedPrefill& d, const KvOptions& o, int64_t max_ctx, int chunk);

struct GreedyOutput {
  std::vector<int32_t> tokens;  // generated, without a final stop token
  std::vector<int32_t> path;    // every argmax taken, stop token included (the teacher-forcing reference)
  std::string text;
  std::string stop_reason;                    // "eos" or "length"
  std::vector<std::vector<float>> log_probs;  // log-softmax of the first keep_rows steps (row i predicts path[i])
  double seconds = 0;
  int64_t steps = 0;  // forward passes
};

// Greedy decoding from the prefill logits, at most n_predict tokens, stopping at the tokenizer's stop tokens.
GreedyOutput greedy_decode(const Model& m, std::unique_ptr<KvCache>& cache, const std::vector<float>& first_logits,
                           int n_predict, int keep_rows);

struct Fidelity {
  int steps = 0;
  double kl_mean = 0;   // mean over steps of KL(full || policy), nats
  double kl_first = 0;  // first decode step
  double top1 = 0;      // fraction of steps whose argmax equals full's
};

// Feeds full's greedy path into `cache` (already prefilled, whose last logits are first_logits) and compares the
// policy's next-token distribution with full's at each of ref.log_probs.size() steps.
Fidelity teacher_forced(const Model& m, std::unique_ptr<KvCache>& cache, const std::vector<float>& first_logits,
                        const GreedyOutput& ref);


struct TailPerplexity {
  double perplexity = 0, mean_nll = 0;
  int64_t scored = 0;
  double seconds = 0;  // scoring only (the prefill is the caller's)
};

// Called with each scored row's index (0 = the prefill's last logits) and its log-softmax.
using RowObserver = std::function<void(int64_t row, const std::vector<float>& log_probs)>;

// `cache` holds tokens[0, n - tail) (prefill ended, so a compressing policy has compressed that prefix) and
// first_logits are its last position's. Feeds the tail `chunk` tokens at a time (1 = decode steps) and scores
// each tail token.
TailPerplexity score_tail(const Model& m, std::unique_ptr<KvCache>& cache, const std::vector<float>& first_logits,
                          const std::vector<int32_t>& tokens, int tail, int chunk, const RowObserver& on_row = nullptr);

// Per-row agreement of a policy's tail distributions with the reference's.
struct TailFidelity {
  std::vector<double> kl;  // KL(reference || policy) per row, nats
  int64_t agree = 0;       // rows whose argmax equals the reference's
  void add(const std::vector<float>& ref_log_probs, const std::vector<float>& log_probs);
  double quantile(double q) const;  // of kl (0.5 = median)
  double mean() const;
  double top1() const { return kl.empty() ? 0 : (double)agree / (double)kl.size(); }
};

}  // namespace shadowkv::eval
