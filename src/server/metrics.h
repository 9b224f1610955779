// The server's counters and gauges, rendered as Prometheus text for GET /metrics: requests by endpoint and status,
// prompt and completion tokens, engine steps and tokens per second, queue length, live sequences, KV bytes per tier
// of the live sequences and the value-store hit rate of policies that report value_hits / value_misses.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/scheduler.h"

namespace shadowkv::server {

// What the engine loop reports at the moment of a scrape.
struct EngineGauges {
  int queued = 0, live = 0, max_batch = 0;
  LiveKvStats kv;
};

inline constexpr double kRateWindowSeconds = 10;  // tokens per second are averaged over this much wall time

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& endpoint, int status);
  // A finished sequence: its prompt and generated tokens and its policy counters.
  void count_sequence(int64_t prompt_tokens, int64_t completion_tokens,
                      const std::vector<std::pair<std::string, double>>& counters);
  // One engine step (Scheduler's on_step).
  void record_step(int n_seqs, int64_t feed_tokens, int decode_tokens, double seconds);
  std::string render(const EngineGauges& g) const;

 private:
  struct Step {
    double at;
    int64_t feed;
    int decode;
  };
  mutable std::mutex mu_;
  double started_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0, sequences_ = 0;
  int64_t steps_ = 0, feed_tokens_ = 0, decode_tokens_ = 0;
  double step_seconds_ = 0;
  int last_batch_ = 0;
  double value_hits_ = 0, value_misses_ = 0;
  bool value_counters_ = false;  // some finished sequence reported value_hits / value_misses
  std::deque<Step> recent_;      // steps of the last kRateWindowSeconds
};

}  // namespace shadowkv::server
