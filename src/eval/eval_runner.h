// `shadowkv eval`: runs tasks x lengths x samples x KV policies on one model, scores each sample, compares
// each policy with full attention on the same prompts, and writes results.jsonl (resumable) and the reports.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/kv_policies.h"
#include "model/model.h"

namespace shadowkv::eval {

struct EvalConfig {
  std::vector<std::string> tasks;
  std::vector<int64_t> lengths;
  std::vector<PolicySpec> policies;
  std::string reference = "full";  // label of the policy the others are compared with (if it is listed)
  int samples = 4;
  uint64_t seed = 42;
  std::string out_dir = "eval-out";
  std::vector<double> depths;  // NIAH needle depths cycled over samples; empty = RULER's random depths
  int max_new = 0;             // > 0: override the tasks' output budgets
  int fidelity_steps = 16;
  int ppl_tail = 512, ppl_chunk = 1;
  int prefill_chunk = 256;
  double min_full_score = -1;  // >= 0: write calibration.json with the cells the reference passes
  bool raw = false;            // never apply the chat template
  bool verbose = false;        // one stderr line per finished sample
};

// Returns the summary markdown (also written to out_dir/summary.md).
std::string run_eval(const Model& model, const std::string& model_path, const EvalConfig& c);

}  // namespace shadowkv::eval
