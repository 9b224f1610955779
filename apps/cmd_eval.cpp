// `shadowkv eval`: RULER-style long-context accuracy and fidelity of KV policies (see src/eval/eval_runner.h).
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "eval/eval_runner.h"
#include "eval/list_args.h"
#include "eval/tasks.h"
#include "model/model.h"
#include "util/error.h"

namespace shadowkv::cli {
namespace {

struct EvalArgs {
  std::string model, tasks = "niah_single_1,niah_single_2,niah_multikey_1,niah_multivalue,niah_multiquery";
  std::string lengths = "4096", kv = "full", depths = "0,25,50,75,100";
  std::vector<std::string> kv_args;
  eval::EvalConfig cfg;
  int threads = 0;
};

void run(EvalArgs& a) {
  set_threads(a.threads);
  eval::EvalConfig c = a.cfg;
  if (a.tasks == "all") {
    c.tasks.clear();
    for (const auto& t : eval::all_tasks()) c.tasks.push_back(t.name);
  } else {
    c.tasks = eval::split_list(a.tasks, "--tasks");
  }
  c.lengths = eval::parse_int_list(a.lengths, "--lengths");
  c.policies = eval::parse_policies(a.kv, a.kv_args);
  c.depths.clear();
  if (a.depths != "random")
    for (int64_t d : eval::parse_int_list(a.depths, "--depths")) {
      if (d < 0 || d > 100) throw Error("--depths are percents in 0..100");
      c.depths.push_back((double)d);
    }
  const std::string path = resolve_model(a.model);
  auto model = Model::load(path);
  std::cout << eval::run_eval(*model, path, c) << std::flush;
  std::fprintf(stderr, "eval: results in %s (results.jsonl, summary.md/.csv/.json, heatmap_*.svg)\n",
               c.out_dir.c_str());
}

}  // namespace

void register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "long-context accuracy and fidelity of KV policies (RULER-style tasks)");
  add_model_option(cmd, a->model);
  cmd->add_option("--tasks", a->tasks, "comma list of tasks, or 'all'")->capture_default_str();
  cmd->add_option("--lengths", a->lengths, "context lengths in tokens, comma list")->capture_default_str();
  cmd->add_option("--kv", a->kv, "KV policies, comma list (label@tag runs a policy under another label)")
      ->capture_default_str();
  cmd->add_option("--kv-args", a->kv_args, "per-policy knobs, e.g. \"shadowkv:--budget 1024 --rank 96\" (repeatable)");
  cmd->add_option("--samples", a->cfg.samples, "samples per task and length")->capture_default_str();
  cmd->add_option("--seed", a->cfg.seed, "dataset seed")->capture_default_str();
  cmd->add_option("--out", a->cfg.out_dir, "output directory (resumes if it holds results.jsonl)")
      ->capture_default_str();
  cmd->add_option("--depths", a->depths, "NIAH needle depths (%) cycled over samples, or 'random'")
      ->capture_default_str();
  cmd->add_option("--max-new", a->cfg.max_new, "override the tasks' output budgets (0 = RULER's)")
      ->capture_default_str();
  cmd->add_option("--fidelity-steps", a->cfg.fidelity_steps, "decode steps compared with full")->capture_default_str();
  cmd->add_option("--ppl-tokens", a->cfg.ppl_tail, "austen_ppl: tokens scored at the end")->capture_default_str();
  cmd->add_option("--ppl-chunk", a->cfg.ppl_chunk, "austen_ppl: tokens per forward while scoring (1 = decode)")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", a->cfg.prefill_chunk, "prompt tokens per forward pass")->capture_default_str();
  cmd->add_option("--reference", a->cfg.reference, "policy label the others are compared with")->capture_default_str();
  cmd->add_option("--min-full-score", a->cfg.min_full_score,
                  "write calibration.json keeping cells where the reference scores >= this (0..1)");
  cmd->add_option("-t,--threads", a->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--raw", a->cfg.raw, "never apply the chat template");
  cmd->add_flag("-v,--verbose", a->cfg.verbose, "print each sample's score and output");
  cmd->callback([a] { run(*a); });
}

}  // namespace shadowkv::cli
