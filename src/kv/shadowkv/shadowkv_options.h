// ShadowKV knobs resolved from KvOptions: validation, the budget ("2048" tokens or "1.56%" of the prompt) and the
// defaults that depend on the prompt length.
#pragma once
#include <cstdint>
#include <string>

#include "kv/kv_cache.h"
#include "kv/shadowkv/factor_rows.h"

namespace shadowkv {

struct ShadowKvConfig {
  int rank = 0;  // 0 = per layer default_rank(width, n_kv_head)
  int chunk = 8;
  int local_chunks = 4;
  int outliers = -1;  // chunks per KV head; -1 = default_outliers(budget)
  bool budget_percent = false;
  double budget_value = -1;             // < 0: default budget
  bool f16 = false;                     // sliding-window layers in f16
  bool f16_values = true;               // value store, hot buffer and outlier rows in f16
  std::string value_store = "ram";      // ram, file or file:DIR (make_value_store)
  FactorType factors = FactorType::Q8;  // U rows (unless factors_auto); landmarks in f16 unless this is F32
  bool factors_auto = true;             // factor_type(): f16 U rows with a single KV head, q8 otherwise
  // Tokens after the prompt (generated, or later turns) kept exact and always attended. Past that, the oldest
  // half of it is compressed as one block with its own basis, landmarks and outliers.
  int dense_tail = kDefaultDenseTail;
  // Chunks the hot buffer keeps per KV head beyond the selection (recently selected ones); -1 = half the budget.
  int hot_extra = -1;
  // Chunks outside a step's selection: estimated from their landmark and mean value, or dropped as the authors do;
  // Auto = estimates_unselected().
  enum class Unselected { Auto, Mean, Drop } unselected = Unselected::Auto;

  static constexpr int kDefaultBudget = 2048;  // the authors' budget in every RULER experiment
  static constexpr int kDefaultDenseTail = 2048;
};

// Validates options against the global layers' key widths (n_kv_head*head_dim); throws Error on bad values.
ShadowKvConfig parse_shadowkv_options(const KvOptions& options, const KvGeometry& geometry);

// Budget string -> (is_percent, value); throws Error. Empty = default (value -1). A token count is at most
// kMaxBudgetTokens.
inline constexpr int64_t kMaxBudgetTokens = int64_t(1) << 30;
void parse_budget(const std::string& text, bool* percent, double* value);

// 160/1024 of the key width (the authors' 160 of 1024 for Llama-3-8B), but at least min(96, 3/8 of the width), or
// with a single KV head min(160, 5/8 of it).
int default_rank(int width, int n_kv_head);

// Storage of a global layer's U rows: as configured, or by default f16 with a single KV head and q8 otherwise.
FactorType factor_type(const ShadowKvConfig& config, int n_kv_head);

// Whether a global layer with n_kv_head KV heads estimates its unselected chunks (unselected_estimate.h): as
// configured, or by default with a single KV head only.
bool estimates_unselected(const ShadowKvConfig& config, int n_kv_head);

// Selected-token budget for a prompt of n_prompt tokens: explicit tokens, percent of the prompt, or the default
// 2048 tokens.
int64_t budget_tokens(const ShadowKvConfig& config, int64_t n_prompt);

// Outlier chunks per KV head: explicit, or 24 per 1024 budget tokens (authors' CPU class), pro rata and at least 1
// (so small budgets still protect the worst-summarised chunk).
int64_t outlier_chunks(const ShadowKvConfig& config, int64_t budget);

// Tokens compressed at once when the dense tail is full: half the dense tail, whole chunks, at least one chunk.
int64_t tail_block_tokens(const ShadowKvConfig& config);

}  // namespace shadowkv
