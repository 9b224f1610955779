#include "eval/eval_runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "eval/inference.h"
#include "eval/kv_policies.h"
#include "eval/progress.h"
#include "eval/report.h"
#include "eval/result_store.h"
#include "eval/scoring.h"
#include "eval/tasks.h"
#include "runtime/kv_stats_json.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

using nlohmann::json;

// run.json pins what makes results comparable; resuming with different settings would mix datasets.
void check_run_config(const std::string& dir, const json& now) {
  const std::string path = dir + "/run.json";
  json merged = now;
  if (std::ifstream in(path); in) {
    json old;
    try {
      in >> old;
    } catch (const std::exception&) {
      throw Error(path + " is not valid JSON; delete it or use another --out");
    }
    for (const char* k : {"seed", "model", "chat", "max_new", "depths", "fidelity_steps", "ppl_tail", "ppl_chunk"})
      if (old.contains(k) && old[k] != now[k])
        throw Error("--out " + dir + " holds results made with a different " + k + " (" + old[k].dump() + " vs " +
                    now[k].dump() + "); use another --out to start afresh");
    for (auto& [label, spec] : old["policies"].items()) {
      // Runs made before the policy registry recorded knobs by field instead of "settings": same policy and args.
      const bool legacy = !spec.contains("settings") && now["policies"].contains(label);
      const bool same = legacy ? spec.value("policy", "") == now["policies"][label]["policy"] &&
                                     spec.value("args", "") == now["policies"][label]["args"]
                               : !now["policies"].contains(label) || now["policies"][label] == spec;
      if (legacy && same) spec = now["policies"][label];
      if (!same)
        throw Error("--out " + dir + " holds results for '" + label + "' with other options (" + spec.dump() +
                    "); give this variant another label (e.g. " + label + "@2)");
      if (!merged["policies"].contains(label)) merged["policies"][label] = spec;
    }
  }
  std::ofstream out(path, std::ios::trunc);
  out << merged.dump(2) << "\n";
  if (!out) throw Error("cannot write " + path);
}

json policy_json(const PolicySpec& p) {
  json settings = json::object();
  for (const auto& [name, value] : policy_settings(p.options)) settings[name] = value;
  return {{"policy", p.options.policy}, {"args", p.args}, {"settings", settings}};
}

json cache_stats(const KvCache& cache, const Model& m, int64_t max_ctx, int chunk, bool f16) {
  json j = kv_memory_json(cache.memory());
  j["kv_full_bytes"] = full_kv_bytes(m.kv_geometry(max_ctx, chunk), cache.n_tokens(), f16);
  j["counters"] = counters_json(cache.counters());
  return j;
}

struct RefRun {
  GreedyOutput out;
  double prefill_s = 0;
  json stats;
};

// One perplexity document: its head's prefill is shared, and the reference's per-row log-probs are kept so every
// other policy gets per-row KL.
struct TailDoc {
  SharedPrefill head;                        // the tokens before the scored tail
  std::vector<std::vector<float>> ref_rows;  // the reference's log-softmax per scored row
};

// Tail perplexity of one policy on d (is_ref: keep its rows for the others' KL).
json tail_record(const Model& m, TailDoc& d, const PolicySpec& p, bool is_ref, const std::vector<int32_t>& tokens,
                 int tail, int64_t max_ctx, const EvalConfig& c) {
  Prefilled pf = shared_prefill(m, d.head, p.options, max_ctx, c.prefill_chunk);
  const double prefill_s = pf.seconds;
  TailFidelity fid;
  const bool compare = !is_ref && !d.ref_rows.empty();
  const TailPerplexity tp =
      score_tail(m, pf.cache, pf.logits, tokens, tail, c.ppl_chunk, [&](int64_t i, const std::vector<float>& lp) {
        if (is_ref) d.ref_rows.push_back(lp);
        if (compare) fid.add(d.ref_rows.at(i), lp);
      });
  json rec = {{"score", tp.perplexity},       {"mean_nll", tp.mean_nll},
              {"scored_tokens", tp.scored},   {"seconds", prefill_s + tp.seconds},
              {"prefill_seconds", prefill_s}, {"decode_seconds", tp.seconds}};
  rec["fidelity"] = nullptr;
  if (compare)
    rec["fidelity"] = {{"steps", fid.kl.size()},
                       {"kl_mean", fid.mean()},
                       {"kl_median", fid.quantile(0.5)},
                       {"kl_p95", fid.quantile(0.95)},
                       {"top1", fid.top1()}};
  rec.update(cache_stats(*pf.cache, m, max_ctx, c.prefill_chunk, full_equivalent_f16(p.options)));
  return rec;
}

void validate(const Model& model, const EvalConfig& c) {
  if (c.tasks.empty() || c.lengths.empty() || c.policies.empty()) throw Error("eval needs tasks, lengths and policies");
  if (c.samples < 1) throw Error("--samples must be >= 1");
  for (const std::string& t : c.tasks) task_info(t);  // fail early on a bad name
  for (int64_t l : c.lengths)
    if (l < 64 || l > model.config().n_ctx_train)
      throw Error("length " + std::to_string(l) + " is outside 64.." + std::to_string(model.config().n_ctx_train));
  for (const PolicySpec& p : c.policies) make_eval_kv_cache(model.kv_geometry(64, 16), p.options);  // validate
}

json run_config(const std::string& model_path, const EvalConfig& c, bool chat) {
  json run = {{"seed", c.seed},
              {"model", std::filesystem::path(model_path).filename().string()},
              {"chat", chat},
              {"max_new", c.max_new},
              {"depths", c.depths},
              {"fidelity_steps", c.fidelity_steps},
              {"ppl_tail", c.ppl_tail},
              {"ppl_chunk", c.ppl_chunk},
              {"policies", json::object()}};
  for (const PolicySpec& p : c.policies) run["policies"][p.label] = policy_json(p);
  return run;
}

// Prompt tokens of the cells results.jsonl does not hold yet (the progress bar's units); says how many it skips.
int64_t pending_units(const ResultStore& store, const EvalConfig& c) {
  int64_t total = 0, skipped = 0;
  for (int64_t L : c.lengths)
    for (const std::string& t : c.tasks)
      for (int s = 0; s < c.samples; ++s)
        for (const PolicySpec& p : c.policies) {
          if (store.done(t, L, p.label, s))
            ++skipped;
          else
            total += L;
        }
  if (skipped > 0)
    std::fprintf(stderr, "eval: resuming, %lld finished cell(s) in results.jsonl are skipped\n", (long long)skipped);
  return total;
}

// One generated-answer sample (a needle or QA task): the prompt's prefill is shared by every policy, and the
// reference's greedy path (run once, on first need) gives each other policy its teacher-forced fidelity.
struct GreedySample {
  const Model& model;
  const EvalConfig& c;
  const PolicySpec* ref;
  const Sample& smp;
  int64_t max_ctx;
  SharedPrefill& prompt;
  std::optional<RefRun> ref_run;

  const RefRun& reference() {
    if (!ref_run) {
      Prefilled pf = shared_prefill(model, prompt, ref->options, max_ctx, c.prefill_chunk);
      RefRun r;
      r.prefill_s = pf.seconds;
      r.out = greedy_decode(model, pf.cache, pf.logits, smp.max_new, c.fidelity_steps);
      r.stats = cache_stats(*pf.cache, model, max_ctx, c.prefill_chunk, full_equivalent_f16(ref->options));
      ref_run = std::move(r);
    }
    return *ref_run;
  }

  // The fields of p's record: its answer, score, speed, cache and fidelity to the reference.
  json record(const PolicySpec& p) {
    RefRun mine;
    json fid = nullptr;
    if (&p == ref) {
      mine = reference();
    } else {
      if (ref) reference();  // e.g. resumed: the reference's cell is done but this one is not
      Prefilled pf = shared_prefill(model, prompt, p.options, max_ctx, c.prefill_chunk);
      mine.prefill_s = pf.seconds;
      std::unique_ptr<KvCache> forced = ref ? pf.cache->clone() : nullptr;
      mine.out = greedy_decode(model, pf.cache, pf.logits, smp.max_new, 0);
      mine.stats = cache_stats(*pf.cache, model, max_ctx, c.prefill_chunk, full_equivalent_f16(p.options));
      if (ref) {
        const Fidelity f = teacher_forced(model, forced, pf.logits, ref_run->out);
        fid = {{"steps", f.steps},
               {"kl_mean", f.kl_mean},
               {"kl_first", f.kl_first},
               {"top1", f.top1},
               {"exact_match", mine.out.tokens == ref_run->out.tokens ? 1.0 : 0.0}};
      }
    }
    const GreedyOutput& out = mine.out;
    json rec = {{"output", out.text},
                {"stop_reason", out.stop_reason},
                {"generated_tokens", out.tokens.size()},
                {"score", smp.metric == Metric::MatchPart ? string_match_part(out.text, smp.answers)
                                                          : string_match_all(out.text, smp.answers)},
                {"prefill_seconds", mine.prefill_s},
                {"prefill_tok_s", mine.prefill_s > 0 ? smp.tokens.size() / mine.prefill_s : 0},
                {"decode_seconds", out.seconds},
                {"decode_tok_s", out.seconds > 0 ? out.steps / out.seconds : 0},
                {"fidelity", fid}};
    rec.update(mine.stats);
    return rec;
  }
};

// The loop over cells: each sample is built once and run under every policy whose cell is not stored yet.
struct EvalLoop {
  const Model& model;
  const EvalConfig& c;
  const PolicySpec* ref;
  ResultStore& store;
  TaskEnv env;
  Progress progress;
  int64_t done_units = 0;

  void sample(const std::string& task, int64_t L, int si) {
    std::vector<const PolicySpec*> todo;
    for (const PolicySpec& p : c.policies)
      if (!store.done(task, L, p.label, si)) todo.push_back(&p);
    if (todo.empty()) return;
    const TaskInfo& info = task_info(task);
    const double depth = info.has_depth && !c.depths.empty() ? c.depths[si % c.depths.size()] : -1;
    const Sample smp = make_sample(task, L, c.seed, si, depth, env);
    const int64_t max_ctx = std::min<int64_t>(model.config().n_ctx_train, (int64_t)smp.tokens.size() + smp.max_new + 1);
    const json base = {{"task", task},
                       {"length", L},
                       {"sample", si},
                       {"seed", c.seed},
                       {"depth", smp.depth},
                       {"prompt_tokens", smp.tokens.size()},
                       {"max_new", smp.max_new},
                       {"answers", smp.answers},
                       {"metric", metric_name(smp.metric)}};
    SharedPrefill prompt{smp.tokens, {}, {}};
    for (const PolicySpec* p : todo) prompt.policies.push_back(&p->options);
    if (ref) prompt.policies.push_back(&ref->options);
    const bool ppl = smp.metric == Metric::Perplexity;
    const int tail = std::min<int>(c.ppl_tail, (int)L / 2);
    TailDoc doc;
    if (ppl) {  // the reference first: its rows give the others their KL
      doc.head = {std::vector<int32_t>(smp.tokens.begin(), smp.tokens.end() - tail), prompt.policies, {}};
      if (ref && std::find(todo.begin(), todo.end(), ref) == todo.end())
        tail_record(model, doc, *ref, true, smp.tokens, tail, max_ctx, c);  // resumed: rows for the others
      std::stable_partition(todo.begin(), todo.end(), [&](const PolicySpec* p) { return p == ref; });
    }
    GreedySample greedy{model, c, ref, smp, max_ctx, prompt, {}};
    for (const PolicySpec* p : todo) {
      json rec = base;
      rec["policy"] = p->label;
      rec["policy_args"] = p->args;
      rec.update(ppl ? tail_record(model, doc, *p, p == ref, smp.tokens, tail, max_ctx, c) : greedy.record(*p));
      store.append(rec);
      done_units += L;
      if (c.verbose) log_cell(rec, task, L, si, p->label);
      progress.update(done_units, task + " " + std::to_string(L) + " #" + std::to_string(si) + " " + p->label);
    }
  }

  static void log_cell(const json& rec, const std::string& task, int64_t L, int si, const std::string& label) {
    std::string shown = rec.contains("output") ? rec["output"].get<std::string>() : "";
    for (char& ch : shown)
      if (ch == '\n') ch = ' ';
    if (shown.size() > 60) shown = shown.substr(0, 60) + "...";
    std::fprintf(stderr, "\n%s L=%lld #%d %s: score %.3f  %s\n", task.c_str(), (long long)L, si, label.c_str(),
                 rec["score"].get<double>(), shown.c_str());
  }
};

// summary.md / .csv / .json, heatmaps and (with --min-full-score) calibration.json from every stored record.
std::string write_reports(const ResultStore& store, const EvalConfig& c) {
  std::vector<std::string> labels;
  for (const PolicySpec& p : c.policies) labels.push_back(p.label);
  std::vector<std::string> task_order;
  for (const TaskInfo& t : all_tasks()) task_order.push_back(t.name);
  const std::vector<Cell> cells = summarize(store.records(), task_order, labels);
  const std::string md = write_summaries(c.out_dir, cells, labels, c.reference);
  write_heatmaps(c.out_dir, store.records(), labels);
  if (c.min_full_score >= 0) {
    std::ofstream out(c.out_dir + "/calibration.json", std::ios::trunc);
    out << calibration(cells, c.reference, c.min_full_score).dump(2) << "\n";
    if (!out) throw Error("cannot write calibration.json");
  }
  return md;
}

}  // namespace

std::string run_eval(const Model& model, const std::string& model_path, const EvalConfig& c) {
  validate(model, c);
  std::filesystem::create_directories(c.out_dir);
  const bool chat = model.config().instruction_tuned && !c.raw;
  check_run_config(c.out_dir, run_config(model_path, c, chat));

  ResultStore store(c.out_dir + "/results.jsonl");
  if (store.bad_lines() > 0)
    std::fprintf(stderr, "eval: dropped %d unreadable line(s) of results.jsonl (an interrupted write)\n",
                 store.bad_lines());
  const PolicySpec* ref = nullptr;
  for (const PolicySpec& p : c.policies)
    if (p.label == c.reference) ref = &p;
  EvalLoop loop{model, c, ref, store, {&model.tokenizer(), chat, c.max_new}, Progress(pending_units(store, c), "eval")};
  for (int64_t L : c.lengths)
    for (const std::string& task : c.tasks)
      for (int si = 0; si < c.samples; ++si) loop.sample(task, L, si);
  loop.progress.finish();
  return write_reports(store, c);
}

}  // namespace shadowkv::eval
