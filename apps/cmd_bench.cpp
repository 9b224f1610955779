// `shadowkv bench`: prefill / batched decode throughput and KV memory of policies side by side.
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "eval/bench_runner.h"
#include "eval/list_args.h"
#include "model/model.h"
#include "util/error.h"

namespace shadowkv::cli {
namespace {

struct BenchArgs {
  std::string model, lengths = "1024,2048,4096", batch = "1", kv = "full";
  std::vector<std::string> kv_args;
  eval::BenchConfig cfg;
  int threads = 0;
};

void run(BenchArgs& a) {
  set_threads(a.threads);
  eval::BenchConfig c = a.cfg;
  c.lengths = eval::parse_int_list(a.lengths, "--lengths");
  c.batches.clear();
  for (int64_t b : eval::parse_int_list(a.batch, "--batch")) c.batches.push_back((int)b);
  c.policies = eval::parse_policies(a.kv, a.kv_args);
  auto model = Model::load(resolve_model(a.model));
  std::cout << eval::run_bench(*model, c) << std::flush;
  std::fprintf(stderr, "bench: wrote %s/bench.json and %s/bench.svg\n", c.out_dir.c_str(), c.out_dir.c_str());
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "prefill/decode throughput and KV memory of KV policies");
  add_model_option(cmd, a->model);
  cmd->add_option("--lengths", a->lengths, "context lengths in tokens, comma list")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch sizes, comma list")->capture_default_str();
  cmd->add_option("--kv", a->kv, "KV policies, comma list")->capture_default_str();
  cmd->add_option("--kv-args", a->kv_args, "per-policy knobs, e.g. \"shadowkv:--budget 1024\" (repeatable)");
  cmd->add_option("--decode-tokens", a->cfg.decode_tokens, "decode steps per measurement")->capture_default_str();
  cmd->add_option("--prefill-chunk", a->cfg.prefill_chunk, "prompt tokens per forward pass")->capture_default_str();
  cmd->add_option("--reference", a->cfg.reference, "policy the ratios are taken against")->capture_default_str();
  cmd->add_option("--out", a->cfg.out_dir, "output directory")->capture_default_str();
  cmd->add_option("--seed", a->cfg.seed, "picks the text")->capture_default_str();
  cmd->add_flag("--share-prefill", a->cfg.share_prefill,
                "prefill each length once and fork it into every policy that can (prefill tok/s is then shared)");
  cmd->add_option("-t,--threads", a->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->callback([a] { run(*a); });
}

}  // namespace shadowkv::cli
