// The engine loop: the one place that drives Model::forward. It owns sequences (tokens to feed, KV cache, sampler,
// stop rules, observers) and each step() is one forward pass over every live sequence: one token for each decoding
// sequence plus prompt chunks of prefilling ones (at most SchedulerOptions::prefill_tokens_per_step in total, so a
// long prompt does not stall the decoders). New sequences are admitted and finished ones retired between steps
// (continuous batching). submit() and cancel() may be called from other threads; step() from one thread only.
// Each row of logits is computed the same whatever else is in the batch, so batching never changes a result.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace shadowkv {

struct GenerationStats {
  int64_t prompt_tokens = 0;  // tokens fed before generation
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;      // forward passes that fed this sequence's prompt, plus its end_prefill work
  double decode_seconds = 0;       // wall time of the decode steps this sequence took part in
  int64_t decode_steps = 0;        // forward passes after the prompt (the first token comes from the prefill)
  double queue_seconds = 0;        // from submit() to admission
  double first_token_seconds = 0;  // from submit() to the first generated token
  KvMemory kv;
  int64_t kv_full_bytes = 0;  // what the `full` policy would hold for the same sequence
  std::vector<std::pair<std::string, double>> counters;
  double prefill_tok_s() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  double decode_tok_s() const { return decode_seconds > 0 ? decode_steps / decode_seconds : 0; }
};

struct SequenceResult {
  uint64_t id = 0;
  std::vector<int32_t> tokens;  // generated ids (a final stop token is not included)
  std::string text;             // decoded text of tokens, cut before a stop string
  std::string stop_reason;      // "eos", "length", "stop", "context", "cancelled", "prefill" (nothing to generate)
  GenerationStats stats;
  std::unique_ptr<KvCache> cache;  // the sequence's cache, handed back (eval and bench reuse it)
  std::string error;               // non-empty if the sequence failed (e.g. a policy error); others go on
};

struct SequenceRequest {
  // Tokens fed as the prompt (in chunks), after whatever `cache` holds already.
  std::vector<int32_t> feed;
  // The cache to continue; null = a fresh cache of `kv` for `ctx` positions.
  std::unique_ptr<KvCache> cache;
  KvOptions kv;
  int64_t ctx = 0;  // context limit (positions); 0 = the model's training context
  // With an empty feed: the logits the first generated token is chosen from (the cache's last position).
  std::vector<float> first_logits;
  bool end_prefill = true;    // call cache->end_prefill() once the feed is in (only if there was a feed)
  int prefill_chunk = 0;      // most feed tokens per forward pass; 0 = the scheduler's
  int64_t observe_from = -1;  // feed index from which every row of logits is observed; -1 = only the last row

  int n_predict = 0;              // tokens to generate after the feed (0 = feed only)
  std::vector<int32_t> forced;    // if set, these are the generated tokens (teacher forcing) instead of samples
  SamplerParams sampling;         // temperature <= 0: greedy
  bool stop_at_eos = true;        // a stop token ends generation (it is not fed)
  std::vector<std::string> stop;  // stop strings: text ends before the first occurrence

  // Observers, called on the loop thread. on_logits(row, logits): row = feed index of an observed feed row, or
  // feed.size() - 1 + k for the logits after the k-th generated token was fed (k = 0: the feed's last row).
  std::function<void(int64_t row, const float* logits)> on_logits;
  // Text as it becomes final (held back while it could still be the start of a stop string).
  std::function<void(std::string_view text)> on_text;
  std::function<void(SequenceResult&&)> on_done;  // the end of the sequence (also on error or cancel)
};

struct SchedulerOptions {
  int max_batch = 64;                 // most sequences admitted (prefilling + decoding) at once
  int prefill_chunk = 256;            // default feed tokens per forward pass and sequence
  int prefill_tokens_per_step = 512;  // most feed tokens in one step over all prefilling sequences
  // Called after every step with (sequences in the step, feed tokens, decode tokens, seconds): the step log.
  std::function<void(int n_seqs, int64_t feed_tokens, int decode_tokens, double seconds)> on_step;
  // After every step, sum the KV memory and counters of the live sequences (for live_kv(); costs one memory() and
  // counters() call per live sequence and step).
  bool track_live_kv = false;
};

// The live sequences' KV caches, summed after the last step (SchedulerOptions::track_live_kv).
struct LiveKvStats {
  int sequences = 0;
  int64_t hot_bytes = 0, cold_bytes = 0;
  std::map<std::string, double> counters;  // counters() summed by name (counts add up; rates do not)
};

class Scheduler {
 public:
  explicit Scheduler(const Model& model, SchedulerOptions o = {});
  ~Scheduler();

  // Queues a sequence; returns its id. Throws Error for a request that cannot run (empty, over the context, bad KV
  // options) before it is queued.
  uint64_t submit(SequenceRequest r);
  // Ends a sequence at the next step (stop_reason "cancelled"); unknown or finished ids are ignored.
  void cancel(uint64_t id);

  // One forward pass over the live sequences (admitting queued ones first). Returns false if there was nothing
  // to do.
  bool step();
  // Steps until no sequence is live or queued.
  void run_until_idle();
  // Submits all, runs them to the end and returns their results in order (the convenience for commands; it sets
  // each request's on_done). Throws Error with the first failed sequence's message.
  std::vector<SequenceResult> run(std::vector<SequenceRequest> requests);

  // Blocks until there is work or stop_waiting() is called (for a loop thread); returns whether there is work.
  bool wait_for_work();
  void stop_waiting();

  int live() const;             // admitted, not finished
  int queued() const;           // submitted, not admitted
  LiveKvStats live_kv() const;  // zero unless SchedulerOptions::track_live_kv
  const Model& model() const { return model_; }

 private:
  struct Seq;
  void admit();
  void plan_step(std::vector<ForwardItem>& items, std::vector<Seq*>& owners, int64_t& feed_tokens);
  void after_forward(Seq& s, const ForwardItem& item, const float* rows, double seconds);
  void emit_token(Seq& s, int32_t token);
  void next_token(Seq& s, const float* logits);
  void finish(Seq& s, const std::string& reason);
  void retire();
  void update_live_kv();

  const Model& model_;
  SchedulerOptions o_;
  std::vector<std::unique_ptr<Seq>> live_;  // loop thread only
  std::atomic<int> n_live_{0};
  mutable std::mutex mu_;  // guards queue_, cancelled_, stop_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> queue_;
  std::set<uint64_t> cancelled_;
  bool stop_ = false;
  uint64_t next_id_ = 1;
  std::vector<float> logits_;
  mutable std::mutex kv_mu_;  // guards live_kv_
  LiveKvStats live_kv_;
};

// One sequence through a scheduler of its own (for commands that feed or score a single sequence).
SequenceResult run_one(const Model& model, SequenceRequest request, SchedulerOptions options = {});

// Bytes `full` would hold for a sequence of n_tokens positions of this model, with or without f16.
int64_t full_equivalent_bytes(const Model& model, int64_t ctx, int64_t n_tokens, bool f16);

}  // namespace shadowkv
