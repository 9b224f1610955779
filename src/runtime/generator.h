// Generation of a set of prompts, as a client of the engine loop (runtime/scheduler.h): every prompt gets its own
// KV cache and all sequences advance together, so the weights are read once per step for the whole batch.
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
#include "runtime/scheduler.h"

namespace shadowkv {

struct GenerateOptions {
  int n_predict = 128;      // most tokens to generate per sequence
  int64_t n_ctx = 0;        // context limit (prompt + generated); 0 = the model's training context
  int prefill_chunk = 256;  // prompt tokens per forward pass
  SamplerParams sampling;
  KvOptions kv;
  bool stop_at_eos = true;
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids (without the prompt)
  std::string text;
  std::string stop_reason;  // "eos", "length", "stop" or "context"
  GenerationStats stats;
};

// Called with (sequence index, newly decoded text) as tokens arrive.
using TextCallback = std::function<void(int, std::string_view)>;

class Generator {
 public:
  explicit Generator(const Model& model) : model_(model) {}

  // Throws Error when a prompt is empty or does not fit in the context.
  std::vector<Generation> generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                                   const TextCallback& on_text = nullptr) const;

 private:
  const Model& model_;
};

}  // namespace shadowkv
