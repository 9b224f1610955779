// `shadowkv bench`: prefill and batched-decode throughput and memory of KV policies, measured side by side
// in one run. Each (length, policy) is prefilled once; the prefilled cache is cloned (KvCache::clone) for
// every sequence of a batch, so batch sizes share one prefill.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/kv_policies.h"
#include "model/model.h"

namespace shadowkv::eval {

struct BenchConfig {
  std::vector<int64_t> lengths;
  std::vector<int> batches = {1};
  std::vector<PolicySpec> policies;
  std::string reference = "full";
  std::string out_dir = "bench-out";
  int decode_tokens = 32;
  int prefill_chunk = 256;
  uint64_t seed = 42;
  bool share_prefill = false;  // prefill each length once and fork it into every policy (eval's shared_prefill)
};

// Returns the markdown table (also in bench.json / bench.svg in out_dir).
std::string run_bench(const Model& model, const BenchConfig& c);

// Resident-set figures of this process from /proc/self/status, in bytes (0 if unavailable).
int64_t peak_rss_bytes();     // VmHWM (falls back to getrusage's ru_maxrss)
int64_t current_rss_bytes();  // VmRSS
bool reset_peak_rss();        // writes 5 to /proc/self/clear_refs; false if the kernel refuses

}  // namespace shadowkv::eval
