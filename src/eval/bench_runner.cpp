#include "eval/bench_runner.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/inference.h"
#include "eval/kv_policies.h"
#include "eval/svg.h"
#include "eval/tasks.h"
#include "runtime/kv_stats_json.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "util/clock.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

using nlohmann::json;

int64_t status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::string(key).size());
  return 0;
}

std::string mib(double b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f", b / 1048576.0);
  return s;
}
std::string f1(double v) {
  char s[32];
  std::snprintf(s, sizeof s, std::isnan(v) ? "-" : "%.2f", v);
  return s;
}

}  // namespace

int64_t peak_rss_bytes() {
  if (int64_t kb = status_kb("VmHWM:"); kb > 0) return kb * 1024;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (int64_t)u.ru_maxrss * 1024;
}

int64_t current_rss_bytes() { return status_kb("VmRSS:") * 1024; }

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return (bool)f;
}

namespace {

void validate(const Model& model, const BenchConfig& c) {
  if (c.lengths.empty() || c.batches.empty() || c.policies.empty())
    throw Error("bench needs lengths, batches and policies");
  if (c.decode_tokens < 1) throw Error("--decode-tokens must be >= 1");
  for (int b : c.batches)
    if (b < 1) throw Error("batch sizes must be >= 1");
  for (int64_t L : c.lengths)
    if (L + c.decode_tokens + 1 > model.config().n_ctx_train)
      throw Error("length " + std::to_string(L) + " + decode tokens exceeds the model's context");
  for (const PolicySpec& p : c.policies) make_eval_kv_cache(model.kv_geometry(64, 16), p.options);
}

// What a batch measurement starts from: one policy's prefilled prompt and the peak RSS of that prefill.
struct PrefillRun {
  const PolicySpec& policy;
  Prefilled& pf;
  int64_t length, max_ctx, peak_rss;
  bool rss_reset;
};

// B sequences, each a clone of the prefilled cache (the last batch takes the cache itself as its last sequence:
// B sequences hold B caches), decode decode_tokens steps together through the engine loop; the first token comes
// from the prefill's logits, so decode_tokens + 1 tokens are generated, and EOS does not stop a measurement.
json measure_batch(const Model& model, const BenchConfig& c, PrefillRun& in, int B, bool last) {
  std::fprintf(stderr, "bench: length %lld, %s, batch %d ...\n", (long long)in.length, in.policy.label.c_str(), B);
  reset_peak_rss();
  const double tc = now_s();
  std::vector<SequenceRequest> reqs(B);
  for (int b = 0; b < B; ++b) reqs[b].cache = last && b == B - 1 ? std::move(in.pf.cache) : in.pf.cache->clone();
  const double clone_s = now_s() - tc;
  for (SequenceRequest& r : reqs) {
    r.first_logits = in.pf.logits;
    r.n_predict = c.decode_tokens + 1;
    r.sampling.temperature = 0;
    r.stop_at_eos = false;
    r.ctx = in.max_ctx;
  }
  SchedulerOptions so;
  so.max_batch = B;
  Scheduler sched(model, so);
  const double t0 = now_s();
  std::vector<SequenceResult> done = sched.run(std::move(reqs));
  const double dt = now_s() - t0;
  const KvCache& cache = *done[0].cache;
  const KvMemory mem = cache.memory();
  const json counters = counters_json(cache.counters());
  const double hit_rate = counters.value("value_hit_rate", NAN);
  const int64_t full_bytes = full_kv_bytes(model.kv_geometry(in.max_ctx, c.prefill_chunk), cache.n_tokens(),
                                           full_equivalent_f16(in.policy.options));
  const double L = (double)in.length;
  return {{"length", in.length},
          {"policy", in.policy.label},
          {"policy_args", in.policy.args},
          {"batch", B},
          {"prefill_tokens", in.length},
          {"prefill_seconds", in.pf.seconds},
          {"prefill_tok_s", L / in.pf.seconds},
          {"shared_prefill", c.share_prefill},
          {"clone_seconds", clone_s},
          {"decode_tokens", c.decode_tokens},
          {"decode_seconds", dt},
          {"decode_tok_s_per_seq", c.decode_tokens / dt},
          {"decode_tok_s_total", (double)B * c.decode_tokens / dt},
          {"kv_bytes_per_seq", mem.total()},
          {"kv_hot_bytes_per_seq", mem.hot},
          {"kv_cold_bytes_per_seq", mem.cold},
          {"kv_parts_per_seq", kv_memory_json(mem)["kv_parts"]},
          {"kv_bytes_total", mem.total() * B},
          {"full_kv_bytes_per_seq", full_bytes},
          {"counters", counters},
          {"value_store_hit_rate", std::isnan(hit_rate) ? json(nullptr) : json(hit_rate)},
          {"peak_rss_prefill_bytes", in.peak_rss},
          {"peak_rss_decode_bytes", peak_rss_bytes()},
          {"peak_rss_reset", in.rss_reset}};
}

// Each run's ratios to the reference policy's run at the same (length, batch).
void add_ratios(json& runs, const std::string& reference) {
  for (json& r : runs)
    for (const json& f : runs)
      if (f["policy"] == reference && f["length"] == r["length"] && f["batch"] == r["batch"]) {
        const auto ratio = [&](const char* key, double floor) {
          return r[key].get<double>() / std::max(floor, f[key].get<double>());
        };
        r["ratio_to_" + reference] = {{"prefill_tok_s", ratio("prefill_tok_s", 0.0)},
                                      {"decode_tok_s", ratio("decode_tok_s_total", 0.0)},
                                      {"kv_bytes", ratio("kv_bytes_per_seq", 1.0)},
                                      {"peak_rss", ratio("peak_rss_decode_bytes", 1.0)}};
      }
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  if (!f) throw Error("cannot write " + path);
}

// Decode throughput against context length, a line per (policy, batch).
std::string throughput_svg(const BenchConfig& c, const json& runs) {
  std::vector<Series> series;
  for (const PolicySpec& p : c.policies)
    for (int B : c.batches) {
      Series s{p.label + " b=" + std::to_string(B), {}, {}};
      for (const json& r : runs)
        if (r["policy"] == p.label && r["batch"] == B) {
          s.x.push_back(r["length"].get<double>());
          s.y.push_back(r["decode_tok_s_total"].get<double>());
        }
      series.push_back(s);
    }
  return svg_line_plot("Decode throughput vs context length", "context length (tokens)",
                       "decode tokens/s (all sequences)", series, c.lengths.size() > 1);
}

std::string markdown(const std::string& note, const std::string& reference, const json& runs) {
  std::ostringstream md;
  md << "Note: " << note << ".\n\n"
     << "| length | policy | batch | prefill tok/s | decode tok/s/seq | decode tok/s total | KV MiB/seq (hot/cold) | "
        "full KV MiB/seq | hit rate | peak RSS MiB | decode vs "
     << reference << " | KV vs " << reference << " |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  const std::string rk = "ratio_to_" + reference;
  for (const json& r : runs) {
    md << "| " << r["length"].get<int64_t>() << " | " << r["policy"].get<std::string>() << " | "
       << r["batch"].get<int>() << " | " << f1(r["prefill_tok_s"].get<double>()) << " | "
       << f1(r["decode_tok_s_per_seq"].get<double>()) << " | " << f1(r["decode_tok_s_total"].get<double>()) << " | "
       << mib(r["kv_bytes_per_seq"].get<double>()) << " (" << mib(r["kv_hot_bytes_per_seq"].get<double>()) << "/"
       << mib(r["kv_cold_bytes_per_seq"].get<double>()) << ") | " << mib(r["full_kv_bytes_per_seq"].get<double>())
       << " | "
       << (r["value_store_hit_rate"].is_null() ? std::string("-") : f1(r["value_store_hit_rate"].get<double>()))
       << " | " << mib(r["peak_rss_decode_bytes"].get<double>()) << " | "
       << (r.contains(rk) ? f1(r[rk]["decode_tok_s"].get<double>()) : "-") << " | "
       << (r.contains(rk) ? f1(r[rk]["kv_bytes"].get<double>()) : "-") << " |\n";
  }
  return md.str();
}

}  // namespace

std::string run_bench(const Model& model, const BenchConfig& c) {
  validate(model, c);
  std::filesystem::create_directories(c.out_dir);
  TaskEnv env{&model.tokenizer(), false, 0};
  json runs = json::array();
  for (int64_t L : c.lengths) {
    const Sample doc = make_sample("austen_ppl", L, c.seed, 0, -1, env);  // natural text, exactly L tokens
    const int64_t max_ctx = L + c.decode_tokens + 1;
    SharedPrefill shared{doc.tokens, {}, {}};
    for (const PolicySpec& p : c.policies) shared.policies.push_back(&p.options);
    for (const PolicySpec& p : c.policies) {
      const bool reset_ok = reset_peak_rss();
      Prefilled pf = c.share_prefill ? shared_prefill(model, shared, p.options, max_ctx, c.prefill_chunk)
                                     : prefill(model, doc.tokens, p.options, max_ctx, c.prefill_chunk);
      PrefillRun in{p, pf, L, max_ctx, peak_rss_bytes(), reset_ok};
      for (size_t bi = 0; bi < c.batches.size(); ++bi)
        runs.push_back(measure_batch(model, c, in, c.batches[bi], bi + 1 == c.batches.size()));
    }
  }
  add_ratios(runs, c.reference);
  const std::string note =
      "each (length, policy) is prefilled once; the prefilled cache is cloned with "
      "KvCache::clone() for every sequence of the batch, then all sequences decode together "
      "(one Model::forward per step); peak RSS is VmHWM, reset before each measurement";
  write_file(c.out_dir + "/bench.json",
             json{{"note", note}, {"reference", c.reference}, {"runs", runs}}.dump(2) + "\n");
  write_file(c.out_dir + "/bench.svg", throughput_svg(c, runs));
  return markdown(note, c.reference, runs);
}

}  // namespace shadowkv::eval
