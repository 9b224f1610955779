// Prometheus counters and gauges of the server (server/metrics.h).
#include "server/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kv/block_pool.h"
#include "util/clock.h"

namespace shadowkv::server {

Metrics::Metrics() : started_(now_s()) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_[{endpoint, status}] += 1;
}

void Metrics::count_sequence(int64_t prompt_tokens, int64_t completion_tokens,
                             const std::vector<std::pair<std::string, double>>& counters) {
  std::lock_guard<std::mutex> lock(mu_);
  sequences_ += 1;
  prompt_tokens_ += prompt_tokens;
  completion_tokens_ += completion_tokens;
  for (const auto& [name, value] : counters) {
    if (name == "value_hits") value_hits_ += value, value_counters_ = true;
    if (name == "value_misses") value_misses_ += value, value_counters_ = true;
  }
}

void Metrics::record_step(int n_seqs, int64_t feed_tokens, int decode_tokens, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  const double now = now_s();
  steps_ += 1;
  feed_tokens_ += feed_tokens;
  decode_tokens_ += decode_tokens;
  step_seconds_ += seconds;
  last_batch_ = n_seqs;
  recent_.push_back({now, feed_tokens, decode_tokens});
  while (!recent_.empty() && recent_.front().at < now - kRateWindowSeconds) recent_.pop_front();
}

namespace {

struct Writer {
  std::string out;
  void head(const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void value(const std::string& series, double v) {
    char buf[64];  // counts exactly, fractions to 9 digits
    std::snprintf(buf, sizeof buf, v == std::floor(v) && std::fabs(v) < 9e15 ? " %.0f\n" : " %.9g\n", v);
    out += series + buf;
  }
  void one(const char* name, const char* type, const char* help, double v) {
    head(name, type, help);
    value(name, v);
  }
};

}  // namespace

std::string Metrics::render(const EngineGauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  Writer w;
  w.head("shadowkv_requests_total", "counter", "HTTP requests by endpoint and status.");
  for (const auto& [key, n] : requests_)
    w.value("shadowkv_requests_total{endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"}", n);
  w.one("shadowkv_sequences_total", "counter", "Sequences finished (completed, stopped, cancelled or failed).",
        sequences_);
  w.one("shadowkv_prompt_tokens_total", "counter", "Prompt tokens of finished sequences.", prompt_tokens_);
  w.one("shadowkv_completion_tokens_total", "counter", "Generated tokens of finished sequences.", completion_tokens_);
  w.one("shadowkv_steps_total", "counter", "Engine steps (forward passes over the batch).", steps_);
  w.one("shadowkv_step_seconds_total", "counter", "Time spent in forward passes.", step_seconds_);
  w.one("shadowkv_prefill_tokens_total", "counter", "Prompt tokens fed by the engine.", feed_tokens_);
  w.one("shadowkv_decode_tokens_total", "counter", "Generated tokens fed back by the engine.", decode_tokens_);
  const double now = now_s(), span = std::min(kRateWindowSeconds, std::max(now - started_, 1e-3));
  int64_t feed = 0, decode = 0;
  for (const Step& s : recent_)
    if (s.at >= now - kRateWindowSeconds) feed += s.feed, decode += s.decode;
  w.one("shadowkv_decode_tokens_per_second", "gauge", "Decode tokens per second over the last 10 s.", decode / span);
  w.one("shadowkv_prefill_tokens_per_second", "gauge", "Prompt tokens per second over the last 10 s.", feed / span);
  w.one("shadowkv_last_step_batch_size", "gauge", "Sequences in the last engine step.", last_batch_);
  w.one("shadowkv_queue_length", "gauge", "Requests waiting for a batch slot.", g.queued);
  w.one("shadowkv_live_sequences", "gauge", "Sequences in the running batch.", g.live);
  w.one("shadowkv_max_batch", "gauge", "Most sequences in the running batch (--max-batch).", g.max_batch);
  w.head("shadowkv_kv_bytes", "gauge", "KV-cache bytes of the live sequences by tier.");
  w.value("shadowkv_kv_bytes{tier=\"hot\"}", (double)g.kv.hot_bytes);
  w.value("shadowkv_kv_bytes{tier=\"cold\"}", (double)g.kv.cold_bytes);
  const auto live = [&](const char* name) {
    const auto it = g.kv.counters.find(name);
    return it == g.kv.counters.end() ? 0.0 : it->second;
  };
  const bool live_values = g.kv.counters.count("value_hits") || g.kv.counters.count("value_misses");
  if (value_counters_ || live_values) {
    const double hits = value_hits_ + live("value_hits"), misses = value_misses_ + live("value_misses");
    w.one("shadowkv_value_hits", "gauge", "Value-store chunk hits (finished and live sequences).", hits);
    w.one("shadowkv_value_misses", "gauge", "Value-store chunk misses (finished and live sequences).", misses);
    w.one("shadowkv_value_hit_rate", "gauge", "Value-store hit rate: hits / (hits + misses).",
          hits + misses > 0 ? hits / (hits + misses) : 0.0);
  }
  if (g.kv.counters.count("global_reserved_bytes"))
    w.one("shadowkv_kv_global_reserved_bytes", "gauge",
          "Bytes allocated for the live sequences' global-layer dense stores (tokens, spare capacity, block ends).",
          live("global_reserved_bytes"));
  const BlockPoolStats pool = BlockPool::all_stats();
  if (pool.blocks_total > 0) {  // --paged policies: the shared block pool
    w.head("shadowkv_kv_blocks", "gauge", "Blocks of the shared KV block pool (--paged) by state.");
    w.value("shadowkv_kv_blocks{state=\"used\"}", (double)pool.blocks_used);
    w.value("shadowkv_kv_blocks{state=\"free\"}", (double)pool.blocks_free());
    w.one("shadowkv_kv_pool_bytes", "gauge", "Bytes of the shared KV block pool (used and free blocks).",
          (double)pool.bytes_total);
  }
  w.one("shadowkv_uptime_seconds", "gauge", "Seconds since the server started.", now - started_);
  return w.out;
}

}  // namespace shadowkv::server
