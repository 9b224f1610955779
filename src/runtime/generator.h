// Generation: prefill each prompt into its own KV cache (in chunks), then decode all live sequences together,
// one token each per step, so the weights are read once per step for the whole batch.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/sampler.h"

namespace shadowkv {

struct GenerateOptions {
  int n_predict = 128;      // most tokens to generate per sequence
  int64_t n_ctx = 0;        // context limit (prompt + generated); 0 = the model's training context
  int prefill_chunk = 256;  // prompt tokens per forward pass
  SamplerParams sampling;
  KvOptions kv;
  bool stop_at_eos = true;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;  // includes the policy's end_prefill work (e.g. the SVD)
  double decode_seconds = 0;   // wall time of the decode steps this sequence took part in
  int64_t decode_steps = 0;    // forward passes after the prompt (the first token comes from the prefill)
  KvMemory kv;
  int64_t kv_full_bytes = 0;  // what the `full` policy would hold for the same sequence
  std::vector<std::pair<std::string, double>> counters;
  double prefill_tok_s() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  double decode_tok_s() const { return decode_seconds > 0 ? decode_steps / decode_seconds : 0; }
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids (without the prompt)
  std::string text;
  std::string stop_reason;  // "eos", "length" or "context"
  GenerationStats stats;
};

// Feeds a whole prompt into `cache` in forward passes of at most `chunk` tokens, then ends its prefill (unless
// `end` is false); last_logits receives the prompt's last position. Shared by generation, evaluation and the bench.
void prefill_cache(const Model& model, KvCache& cache, const std::vector<int32_t>& prompt, int chunk,
                   std::vector<float>& last_logits, bool end = true);

// Called with (sequence index, newly decoded text) as tokens arrive.
using TextCallback = std::function<void(int, std::string_view)>;

class Generator {
 public:
  explicit Generator(const Model& model) : model_(model) {}

  std::vector<Generation> generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                                   const TextCallback& on_text = nullptr) const;

  // Feeds a prompt into a fresh cache and returns the last position's logits; throws Error when the prompt
  // does not fit in the context.
  std::unique_ptr<KvCache> prefill(const std::vector<int32_t>& prompt, const GenerateOptions& o,
                                   std::vector<float>& last_logits) const;

  int64_t context_limit(const GenerateOptions& o) const;

 private:
  const Model& model_;
};

}  // namespace shadowkv
