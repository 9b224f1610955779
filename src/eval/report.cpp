#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "eval/kv_policies.h"
#include "eval/svg.h"
#include "eval/tasks.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

void write_text(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << s;
  if (!out) throw Error("cannot write " + path);
}

size_t rank_of(const std::vector<std::string>& order, const std::string& s) {
  return std::find(order.begin(), order.end(), s) - order.begin();
}

double get(const nlohmann::json& j, const char* k, double dflt = 0) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : dflt;
}

std::string fmt(double v, const char* f = "%.1f") {
  if (std::isnan(v)) return "";
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

bool is_ppl(const Cell& c) { return c.metric == "perplexity"; }

}  // namespace

std::vector<Cell> summarize(const std::vector<nlohmann::json>& records, const std::vector<std::string>& task_order,
                            const std::vector<std::string>& policy_order) {
  struct Acc {
    Cell c;
    double kl = 0, klf = 0, top1 = 0, em = 0, em_n = 0, pf = 0, kv = 0, kvh = 0, kvf = 0, klm = 0, klp = 0;
  };
  std::map<std::tuple<std::string, int64_t, std::string>, Acc> acc;
  for (const auto& r : records) {
    Acc& a = acc[{r.at("task").get<std::string>(), r.at("length").get<int64_t>(), r.at("policy").get<std::string>()}];
    a.c.task = r["task"];
    a.c.length = r["length"];
    a.c.policy = r["policy"];
    a.c.metric = r.value("metric", "string_match_all");
    a.c.n++;
    a.c.score += get(r, "score");
    a.pf += get(r, "prefill_tok_s");
    a.kv += get(r, "kv_bytes");
    a.kvh += get(r, "kv_hot_bytes");
    a.kvf += get(r, "kv_full_bytes");
    if (r.contains("fidelity") && r["fidelity"].is_object()) {
      const auto& f = r["fidelity"];
      a.c.n_fidelity++;
      a.kl += get(f, "kl_mean");
      a.klf += get(f, "kl_first");
      a.top1 += get(f, "top1");
      a.klm += get(f, "kl_median");
      a.klp += get(f, "kl_p95");
      if (f.contains("exact_match")) {
        a.em += get(f, "exact_match");
        a.em_n++;
      }
    }
  }
  std::vector<Cell> cells;
  for (auto& [k, a] : acc) {
    Cell c = a.c;
    c.score /= c.n;
    c.prefill_tok_s = a.pf / c.n;
    c.kv_bytes = a.kv / c.n;
    c.kv_hot_bytes = a.kvh / c.n;
    c.kv_full_bytes = a.kvf / c.n;
    if (c.n_fidelity > 0) {
      c.kl_mean = a.kl / c.n_fidelity;
      c.kl_first = a.klf / c.n_fidelity;
      c.top1 = a.top1 / c.n_fidelity;
      if (is_ppl(c)) {
        c.kl_median = a.klm / c.n_fidelity;
        c.kl_p95 = a.klp / c.n_fidelity;
      }
      if (a.em_n > 0) c.exact_match = a.em / a.em_n;
    }
    cells.push_back(c);
  }
  std::sort(cells.begin(), cells.end(), [&](const Cell& a, const Cell& b) {
    const auto ka =
        std::make_tuple(rank_of(task_order, a.task), a.task, a.length, rank_of(policy_order, a.policy), a.policy);
    const auto kb =
        std::make_tuple(rank_of(task_order, b.task), b.task, b.length, rank_of(policy_order, b.policy), b.policy);
    return ka < kb;
  });
  return cells;
}

namespace {

// The cells of a summary, the policies in column order (reference first, then the given ones, then any others the
// cells name) and the (task, length) rows in the cells' order, with a lookup by (task, length, policy).
struct SummaryTable {
  const std::vector<Cell>& cells;
  std::string reference;
  std::vector<std::string> policies;
  std::vector<std::pair<std::string, int64_t>> rows;
  std::map<std::tuple<std::string, int64_t, std::string>, const Cell*> at;

  SummaryTable(const std::vector<Cell>& cs, const std::vector<std::string>& given, const std::string& ref)
      : cells(cs), reference(ref), policies(given) {
    for (const Cell& c : cells)
      if (std::find(policies.begin(), policies.end(), c.policy) == policies.end()) policies.push_back(c.policy);
    if (auto it = std::find(policies.begin(), policies.end(), reference); it != policies.end()) {
      policies.erase(it);
      policies.insert(policies.begin(), reference);
    }
    for (const Cell& c : cells) {
      at[{c.task, c.length, c.policy}] = &c;
      if (std::find(rows.begin(), rows.end(), std::make_pair(c.task, c.length)) == rows.end())
        rows.push_back({c.task, c.length});
    }
  }
  const Cell* find(const std::string& t, int64_t l, const std::string& p) const {
    auto it = at.find({t, l, p});
    return it == at.end() ? nullptr : it->second;
  }
  // c's score over the reference's in the same (task, length), NaN without one.
  double ratio(const Cell& c) const {
    const Cell* ref = find(c.task, c.length, reference);
    return ref && ref->score > 0 ? c.score / ref->score : NAN;
  }
};

// The score table: a row per (task, length), a column per policy, then each length's mean over scored tasks.
std::string score_table(const SummaryTable& t) {
  std::string md =
      "# Evaluation summary\n\nScores are RULER string_match_all x100 (perplexity for *_ppl tasks); "
      "n = samples per cell; `" +
      t.reference + "` is the reference column.\n\n| task | length |";
  for (const auto& p : t.policies) md += " " + p + " |";
  md += "\n|---|---:|";
  for (size_t i = 0; i < t.policies.size(); ++i) md += "---:|";
  md += "\n";
  std::map<std::pair<int64_t, std::string>, std::pair<double, int>> avg;  // (length, policy) -> mean over tasks
  for (const auto& [task, l] : t.rows) {
    md += "| " + task + " | " + std::to_string(l) + " |";
    for (const auto& p : t.policies) {
      const Cell* c = t.find(task, l, p);
      if (!c) {
        md += " |";
        continue;
      }
      md += " " + (is_ppl(*c) ? fmt(c->score, "%.3f") : fmt(100 * c->score)) + " (n=" + std::to_string(c->n) + ") |";
      if (!is_ppl(*c)) {
        auto& a = avg[{l, p}];
        a.first += 100 * c->score;
        a.second++;
      }
    }
    md += "\n";
  }
  std::set<int64_t> lengths;
  for (const auto& [task, l] : t.rows) lengths.insert(l);
  for (int64_t l : lengths) {
    bool any_scored = false;  // perplexity-only lengths have no task mean
    for (const auto& p : t.policies) any_scored |= avg.count({l, p}) > 0;
    if (!any_scored) continue;
    md += "| **mean of tasks** | " + std::to_string(l) + " |";
    for (const auto& p : t.policies) {
      auto it = avg.find({l, p});
      md += " " + (it == avg.end() ? std::string() : fmt(it->second.first / it->second.second)) + " |";
    }
    md += "\n";
  }
  return md;
}

// Teacher-forced fidelity of the generated-answer cells (none: "").
std::string fidelity_section(const SummaryTable& t) {
  if (std::none_of(t.cells.begin(), t.cells.end(), [](const Cell& c) { return c.n_fidelity > 0 && !is_ppl(c); }))
    return "";
  std::string md = "\n## Fidelity against `" + t.reference +
                   "` (same prompts, teacher-forced on its greedy tokens)\n\n"
                   "KL = mean KL(" +
                   t.reference +
                   " || policy) of the next-token distribution over the first decode steps "
                   "(nats); top-1 = agreement of the argmax (%); exact = greedy output identical (%).\n\n"
                   "| task | length | policy | KL mean | KL step 1 | top-1 % | exact % | score ratio |\n"
                   "|---|---:|---|---:|---:|---:|---:|---:|\n";
  for (const Cell& c : t.cells) {
    if (c.n_fidelity == 0 || is_ppl(c)) continue;
    md += "| " + c.task + " | " + std::to_string(c.length) + " | " + c.policy + " | " + fmt(c.kl_mean, "%.4f") + " | " +
          fmt(c.kl_first, "%.4f") + " | " + fmt(100 * c.top1) + " | " + fmt(100 * c.exact_match) + " | " +
          fmt(t.ratio(c), "%.3f") + " |\n";
  }
  return md;
}

// Prefill speed and KV size of the generated-answer cells (none: "").
std::string memory_section(const SummaryTable& t) {
  if (std::all_of(t.cells.begin(), t.cells.end(), is_ppl)) return "";
  std::string md =
      "\n## Memory and speed (mean per sample)\n\n| task | length | policy | prefill tok/s | KV bytes | "
      "KV / full |\n|---|---:|---|---:|---:|---:|\n";
  for (const Cell& c : t.cells) {
    if (is_ppl(c)) continue;
    md += "| " + c.task + " | " + std::to_string(c.length) + " | " + c.policy + " | " + fmt(c.prefill_tok_s) + " | " +
          fmt(c.kv_bytes, "%.0f") + " | " + fmt(c.kv_full_bytes > 0 ? c.kv_bytes / c.kv_full_bytes : NAN, "%.3f") +
          " |\n";
  }
  return md;
}

// Perplexity cells: the tail's perplexity against the reference's, per-row KL quantiles, top-1 agreement, KV size.
std::string ppl_section(const SummaryTable& t) {
  const std::string& reference = t.reference;
  if (std::none_of(t.cells.begin(), t.cells.end(), is_ppl)) return "";
  std::string md = "\n## Tail perplexity against `" + reference +
                   "` (the document's last tokens decoded one at a time)\n\n"
                   "KL = KL(" +
                   reference +
                   " || policy) of each scored row (nats); top-1 = argmax agreement (%); "
                   "KV at the end of the document (hot tier = everything but the cold value store).\n\n"
                   "| task | length | policy | perplexity | vs " +
                   reference +
                   " | KL median | KL p95 | top-1 % | KV hot bytes | hot / full |\n"
                   "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Cell& c : t.cells) {
    if (!is_ppl(c)) continue;
    const double rel = 100 * (t.ratio(c) - 1);
    md += "| " + c.task + " | " + std::to_string(c.length) + " | " + c.policy + " | " + fmt(c.score, "%.3f") + " | " +
          fmt(rel, "%+.2f%%") + " | " + fmt(c.kl_median, "%.4f") + " | " + fmt(c.kl_p95, "%.4f") + " | " +
          fmt(100 * c.top1) + " | " + fmt(c.kv_hot_bytes, "%.0f") + " | " +
          fmt(c.kv_full_bytes > 0 ? c.kv_hot_bytes / c.kv_full_bytes : NAN, "%.3f") + " |\n";
  }
  return md;
}

std::string summary_csv(const SummaryTable& t) {
  std::string csv = "task,length,policy,metric,n,score,score_x100,ratio_to_" + t.reference +
                    ",n_fidelity,kl_mean,kl_first,top1,exact_match,prefill_tok_s,kv_bytes,kv_full_bytes\n";
  for (const Cell& c : t.cells)
    csv += c.task + "," + std::to_string(c.length) + "," + c.policy + "," + c.metric + "," + std::to_string(c.n) + "," +
           fmt(c.score, "%.6f") + "," + (is_ppl(c) ? "" : fmt(100 * c.score, "%.2f")) + "," + fmt(t.ratio(c), "%.4f") +
           "," + std::to_string(c.n_fidelity) + "," + fmt(c.kl_mean, "%.6f") + "," + fmt(c.kl_first, "%.6f") + "," +
           fmt(c.top1, "%.4f") + "," + fmt(c.exact_match, "%.4f") + "," + fmt(c.prefill_tok_s, "%.2f") + "," +
           fmt(c.kv_bytes, "%.0f") + "," + fmt(c.kv_full_bytes, "%.0f") + "\n";
  return csv;
}

nlohmann::json summary_json(const SummaryTable& t) {
  const auto num_or_null = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json js = {{"reference", t.reference}, {"policies", t.policies}, {"cells", nlohmann::json::array()}};
  for (const Cell& c : t.cells)
    js["cells"].push_back({{"task", c.task},
                           {"length", c.length},
                           {"policy", c.policy},
                           {"metric", c.metric},
                           {"n", c.n},
                           {"score", c.score},
                           {"ratio_to_reference", num_or_null(t.ratio(c))},
                           {"n_fidelity", c.n_fidelity},
                           {"kl_mean", num_or_null(c.kl_mean)},
                           {"kl_first", num_or_null(c.kl_first)},
                           {"kl_median", num_or_null(c.kl_median)},
                           {"kl_p95", num_or_null(c.kl_p95)},
                           {"top1", num_or_null(c.top1)},
                           {"exact_match", num_or_null(c.exact_match)},
                           {"prefill_tok_s", c.prefill_tok_s},
                           {"kv_bytes", c.kv_bytes},
                           {"kv_hot_bytes", c.kv_hot_bytes},
                           {"kv_full_bytes", c.kv_full_bytes}});
  return js;
}

}  // namespace

std::string write_summaries(const std::string& dir, const std::vector<Cell>& cells,
                            const std::vector<std::string>& policies, const std::string& reference) {
  const SummaryTable t(cells, policies, reference);
  const std::string md = score_table(t) + fidelity_section(t) + ppl_section(t) + memory_section(t);
  write_text(dir + "/summary.md", md);
  write_text(dir + "/summary.csv", summary_csv(t));
  write_text(dir + "/summary.json", summary_json(t).dump(2) + "\n");
  return md;
}

std::vector<std::string> write_heatmaps(const std::string& dir, const std::vector<nlohmann::json>& records,
                                        const std::vector<std::string>& policies) {
  // (policy, task) -> (depth rounded to 0.1%, length) -> (sum, n)
  std::map<std::pair<std::string, std::string>, std::map<std::pair<double, int64_t>, std::pair<double, int>>> grid;
  for (const auto& r : records) {
    const double d = get(r, "depth", -1);
    if (d < 0 || r.value("metric", "") == "perplexity") continue;
    auto& cell = grid[{r["policy"].get<std::string>(), r["task"].get<std::string>()}]
                     [{std::round(d * 10) / 10, r["length"].get<int64_t>()}];
    cell.first += get(r, "score");
    cell.second++;
  }
  std::vector<std::string> files;
  for (const auto& [pt, cells] : grid) {
    std::set<double> depths;
    std::set<int64_t> lengths;
    for (const auto& [k, v] : cells) {
      depths.insert(k.first);
      lengths.insert(k.second);
    }
    std::vector<std::string> rows, cols;
    for (double d : depths) rows.push_back(fmt(d, "%.0f") + "%");
    for (int64_t l : lengths) cols.push_back(std::to_string(l));
    std::vector<std::vector<double>> vals;
    for (double d : depths) {
      vals.emplace_back();
      for (int64_t l : lengths) {
        auto it = cells.find({d, l});
        vals.back().push_back(it == cells.end() ? NAN : 100 * it->second.first / it->second.second);
      }
    }
    const std::string f = dir + "/heatmap_" + file_safe(pt.first) + "_" + file_safe(pt.second) + ".svg";
    write_text(f, svg_heatmap(pt.second + " - " + pt.first + " (score x100)", "context length (tokens)", "needle depth",
                              cols, rows, vals, 0, 100));
    files.push_back(f);
  }
  (void)policies;
  return files;
}

nlohmann::json calibration(const std::vector<Cell>& cells, const std::string& reference, double threshold) {
  nlohmann::json kept = nlohmann::json::array(), dropped = nlohmann::json::array();
  for (const Cell& c : cells) {
    if (c.policy != reference || is_ppl(c)) continue;
    nlohmann::json e = {{"task", c.task}, {"length", c.length}, {"score", c.score}, {"n", c.n}};
    (c.score >= threshold ? kept : dropped).push_back(e);
  }
  return {{"reference", reference}, {"threshold", threshold}, {"kept", kept}, {"dropped", dropped}};
}

}  // namespace shadowkv::eval
