// The harness's own prefill / greedy decode / teacher-forced comparison loops over Model::forward. They mirror
// runtime/generator.cpp but take the cache from make_eval_kv_cache, so test-only policies (truncate:N) and any
// policy of make_kv_cache run through the same code.
#pragma once
#include <cstdint>
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

// Feeds tokens in chunks into a fresh cache of policy `kv` sized for max_ctx positions; throws Error if the
// prompt is longer than the model's context.
Prefilled prefill(const Model& m, const std::vector<int32_t>& tokens, const KvOptions& kv, int64_t max_ctx, int chunk);

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
GreedyOutput greedy_decode(const Model& m, KvCache& cache, const std::vector<float>& first_logits, int n_predict,
                           int keep_rows);

struct Fidelity {
  int steps = 0;
  double kl_mean = 0;   // mean over steps of KL(full || policy), nats
  double kl_first = 0;  // first decode step
  double top1 = 0;      // fraction of steps whose argmax equals full's
};

// Feeds full's greedy path into `cache` (already prefilled, whose last logits are first_logits) and compares the
// policy's next-token distribution with full's at each of ref.log_probs.size() steps.
Fidelity teacher_forced(const Model& m, KvCache& cache, const std::vector<float>& first_logits,
                        const GreedyOutput& ref);

// log-softmax of one row of logits, in place into out.
void log_softmax(const float* logits, int n, std::vector<float>& out);

struct TailPerplexity {
  double perplexity = 0, mean_nll = 0;
  int64_t scored = 0;
  double seconds = 0;
};

// Prefills all but the last `tail` tokens with policy kv (so a compressing policy compresses that prefix), then
// feeds the tail `chunk` tokens at a time (1 = decode steps) and scores each tail token.
TailPerplexity tail_perplexity(const Model& m, const std::vector<int32_t>& tokens, int tail, const KvOptions& kv,
                               int prefill_chunk, int chunk);

}  // namespace shadowkv::eval
