#include "kv/shadowkv/shadowkv_options.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "kv/shadowkv/value_store.h"
#include "util/error.h"

namespace shadowkv {

void parse_budget(const std::string& text, bool* percent, double* value) {
  *percent = false;
  *value = -1;
  if (text.empty()) return;
  std::string num = text;
  if (num.back() == '%') {
    *percent = true;
    num.pop_back();
  }
  char* end = nullptr;
  const double v = num.empty() ? NAN : std::strtod(num.c_str(), &end);
  const bool parsed = !num.empty() && end == num.c_str() + num.size() && std::isfinite(v);
  if (!parsed || v < 0)
    throw Error("shadowkv: bad budget '" + text + "' (expected tokens like 2048 or a percentage like 1.56%)");
  if (*percent && v > 100) throw Error("shadowkv: budget '" + text + "' is more than 100%");
  if (!*percent && v != std::floor(v)) throw Error("shadowkv: budget '" + text + "' must be a whole number of tokens");
  if (!*percent && v > kMaxBudgetTokens)  // as the other settings' limit; more would overflow the token arithmetic
    throw Error("shadowkv: budget '" + text + "' is more than " + std::to_string(kMaxBudgetTokens) + " tokens");
  *value = v;
}

// The authors' 160 of 1024 for wide keys, but at least min(96, 3/8 of the width): on Qwen2.5-Coder 0.5B (2 KV heads
// of 64) 3/8 is 48, within 2% of full's tail perplexity. A single KV head (multi-query attention) carries every
// query head's keys and gets 5/8 of its width, at most 160: on Gemma 3 270M (one 256-wide head) rank 160 against 96
// cuts the median KL to full by 23-40% at 8K-32K, and its calibrated NIAH cells score the same in sum (one
// sample apart of 55; docs/shadowkv-tuning.md section 11).
int default_rank(int width, int n_kv_head) {
  const int paper = (int)std::lround(width * 160.0 / 1024.0);
  const int floor = n_kv_head == 1 ? std::min(160, (int)std::lround(width * 5.0 / 8.0))
                                   : std::min(96, (int)std::lround(width * 3.0 / 8.0));
  return std::clamp(std::max(paper, floor), 1, width);
}

ShadowKvConfig parse_shadowkv_options(const KvOptions& o, const KvGeometry& g) {
  const int64_t chunk = o.integer("chunk"), local = o.integer("local-chunks"), outliers = o.integer("outliers"),
                rank = o.integer("rank"), dense_tail = o.integer("dense-tail"), hot_extra = o.integer("hot-extra");
  const auto in_range = [](int64_t v, int64_t lo) { return v >= lo && v <= (1 << 30); };
  if (!in_range(chunk, 1)) throw Error("shadowkv: chunk must be >= 1 (got " + std::to_string(chunk) + ")");
  if (!in_range(local, 0)) throw Error("shadowkv: local_chunks must be >= 0 (got " + std::to_string(local) + ")");
  if (!in_range(outliers, -1))
    throw Error("shadowkv: outliers must be >= 0 chunks (got " + std::to_string(outliers) + ")");
  if (!in_range(rank, 0)) throw Error("shadowkv: rank must be >= 1 (got " + std::to_string(rank) + ")");
  if (!in_range(dense_tail, -1))
    throw Error("shadowkv: dense_tail must be >= 0 tokens (got " + std::to_string(dense_tail) + ")");
  if (!in_range(hot_extra, -1))
    throw Error("shadowkv: hot_extra must be >= 0 chunks (got " + std::to_string(hot_extra) + ")");
  for (const LayerGeometry& l : g.layers) {
    if (l.n_head < 1 || l.n_kv_head < 1 || l.head_dim < 1 || l.n_head % l.n_kv_head != 0)
      throw Error("shadowkv: bad layer geometry (n_head must be a multiple of n_kv_head)");
    const int width = l.n_kv_head * l.head_dim;
    if (l.window == 0 && rank > width)
      throw Error("shadowkv: rank " + std::to_string(rank) + " exceeds the key width " + std::to_string(width));
  }
  ShadowKvConfig c;
  c.rank = (int)rank;
  c.chunk = (int)chunk;
  c.local_chunks = (int)local;
  c.outliers = (int)outliers;
  c.f16 = o.flag("kv-f16");
  if (dense_tail >= 0) c.dense_tail = (int)dense_tail;
  c.hot_extra = (int)hot_extra;
  const std::string factors = o.text("factor-dtype");
  c.factors_auto = factors == "auto";
  if (!c.factors_auto) c.factors = parse_factor_type(factors);
  const std::string values = o.text("value-dtype");
  if (values != "f16" && values != "f32")
    throw Error("shadowkv: value dtype must be f16 or f32 (got '" + values + "')");
  c.f16_values = values == "f16";
  c.value_store = o.text("value-store");
  if (!is_value_store_spec(c.value_store))
    throw Error("shadowkv: value store must be ram, file or file:DIR (got '" + c.value_store + "')");
  const std::string unselected = o.text("unselected");
  if (unselected != "auto" && unselected != "mean" && unselected != "drop")
    throw Error("shadowkv: unselected must be auto, mean or drop (got '" + unselected + "')");
  c.unselected = unselected == "mean"   ? ShadowKvConfig::Unselected::Mean
                 : unselected == "drop" ? ShadowKvConfig::Unselected::Drop
                                        : ShadowKvConfig::Unselected::Auto;
  parse_budget(o.text("budget"), &c.budget_percent, &c.budget_value);
  return c;
}

// Measured (docs/shadowkv-tuning.md sections 12-13): on Gemma 3 270M (one KV head, rank 160) int8 rows lose a 32K
// needle sample that f16 rows keep, and f16 rows fit issue 9's hot-tier bound (1/3 of full's at 32K) with the value
// means in int8 and the outliers in f16; on Qwen2.5-Coder 0.5B (two KV heads, rank 48, bound 1/6) f16 rows would not.
FactorType factor_type(const ShadowKvConfig& c, int n_kv_head) {
  if (!c.factors_auto) return c.factors;
  return n_kv_head == 1 ? FactorType::F16 : FactorType::Q8;
}

// Measured at the defaults (docs/shadowkv-tuning.md section 12): on Gemma 3 270M (one KV head) the estimate lowers
// the median KL to full by 6% / 2% / 7% at 8K / 16K / 32K (and recovers a 32K needle sample); on Qwen2.5-Coder
// 0.5B (two KV heads) it raises it by 8% at 16K, and the tail perplexity from +2.0% to +3.3% of full's.
bool estimates_unselected(const ShadowKvConfig& c, int n_kv_head) {
  if (c.unselected != ShadowKvConfig::Unselected::Auto) return c.unselected == ShadowKvConfig::Unselected::Mean;
  return n_kv_head == 1;
}

int64_t budget_tokens(const ShadowKvConfig& c, int64_t n_prompt) {
  // The authors' 2048 tokens (1.56% of 128K); a shorter prompt is selected whole (it stays dense).
  if (c.budget_value < 0) return ShadowKvConfig::kDefaultBudget;
  if (c.budget_percent) return (int64_t)std::llround(c.budget_value / 100.0 * n_prompt);
  return (int64_t)c.budget_value;
}

int64_t outlier_chunks(const ShadowKvConfig& c, int64_t budget) {
  if (c.outliers >= 0) return c.outliers;
  return std::max<int64_t>(1, budget * 24 / 1024);
}

int64_t tail_block_tokens(const ShadowKvConfig& c) {
  return std::max<int64_t>(c.chunk, (int64_t)(c.dense_tail / 2) / c.chunk * c.chunk);
}

}  // namespace shadowkv
