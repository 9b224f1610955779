// Aggregates results.jsonl records into task x length x policy cells and writes summary.md / .csv / .json,
// the NIAH depth heatmaps and the calibration file (cells where full attention passes a threshold).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace shadowkv::eval {

struct Cell {
  std::string task, policy, metric;
  int64_t length = 0;
  int n = 0;
  double score = 0;    // mean sample score in [0,1] (perplexity tasks: perplexity)
  int n_fidelity = 0;  // samples with a comparison against full
  double kl_mean = NAN, kl_first = NAN, top1 = NAN, exact_match = NAN;
  double kl_median = NAN, kl_p95 = NAN;  // per-row KL quantiles (perplexity tasks)
  double prefill_tok_s = 0, kv_bytes = 0, kv_hot_bytes = 0, kv_full_bytes = 0;
};

// Cells in the given orders (cells with no records are left out); policies not listed come last.
std::vector<Cell> summarize(const std::vector<nlohmann::json>& records, const std::vector<std::string>& task_order,
                            const std::vector<std::string>& policy_order);

// Writes summary.md, summary.csv and summary.json into dir; `reference` is the policy shown first and used
// for ratios (usually "full"). Returns the markdown text.
std::string write_summaries(const std::string& dir, const std::vector<Cell>& cells,
                            const std::vector<std::string>& policies, const std::string& reference);

// heatmap_<policy>_<task>.svg for each NIAH task with depths: rows = depth %, columns = length, colour = score.
// Returns the files written.
std::vector<std::string> write_heatmaps(const std::string& dir, const std::vector<nlohmann::json>& records,
                                        const std::vector<std::string>& policies);

// calibration.json: the (task, length) cells where `reference` scores >= threshold are kept, the rest dropped.
nlohmann::json calibration(const std::vector<Cell>& cells, const std::string& reference, double threshold);

}  // namespace shadowkv::eval
