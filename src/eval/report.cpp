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

// Perplexity cells: the tail's perplexity against the reference's, per-row KL quantiles, top-1 agreement, KV size.
template <class Find>
std::string ppl_section(const std::vector<Cell>& cells, const std::string& reference, const Find& find) {
  if (std::none_of(cells.begin(), cells.end(), is_ppl)) return "";
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
  for (const Cell& c : cells) {
    if (!is_ppl(c)) continue;
    const Cell* ref = find(c.task, c.length, reference);
    const double rel = ref && ref->score > 0 ? 100 * (c.score / ref->score - 1) : NAN;
    md += "| " + c.task + " | " + std::to_string(c.length) + " | " + c.policy + " | " + fmt(c.score, "%.3f") + " | " +
          fmt(rel, "%+.2f%%") + " | " + fmt(c.kl_median, "%.4f") + " | " + fmt(c.kl_p95, "%.4f") + " | " +
          fmt(100 * c.top1) + " | " + fmt(c.kv_hot_bytes, "%.0f") + " | " +
          fmt(c.kv_full_bytes > 0 ? c.kv_hot_bytes / c.kv_full_bytes : NAN, "%.3f") + " |\n";
  }
  return md;
}

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

std::string write_summaries(const std::string& dir, const std::vector<Cell>& cells,
                            const std::vector<std::string>& policies_in, const std::string& reference) {
  std::vector<std::string> policies = policies_in;
  for (const Cell& c : cells)
    if (std::find(policies.begin(), policies.end(), c.policy) == policies.end()) policies.push_back(c.policy);
  // Reference first.
  if (auto it = std::find(policies.begin(), policies.end(), reference); it != policies.end()) {
    policies.erase(it);
    policies.insert(policies.begin(), reference);
  }
  std::map<std::tuple<std::string, int64_t, std::string>, const Cell*> at;
  std::vector<std::pair<std::string, int64_t>> rows;
  for (const Cell& c : cells) {
    at[{c.task, c.length, c.policy}] = &c;
    if (std::find(rows.begin(), rows.end(), std::make_pair(c.task, c.length)) == rows.end())
      rows.push_back({c.task, c.length});
  }
  auto find = [&](const std::string& t, int64_t l, const std::string& p) -> const Cell* {
    auto it = at.find({t, l, p});
    return it == at.end() ? nullptr : it->second;
  };

  // Markdown.
  std::string md =
      "# Evaluation summary\n\nScores are RULER string_match_all x100 (perplexity for *_ppl tasks); "
      "n = samples per cell; `" +
      reference + "` is the reference column.\n\n| task | length |";
  for (const auto& p : policies) md += " " + p + " |";
  md += "\n|---|---:|";
  for (size_t i = 0; i < policies.size(); ++i) md += "---:|";
  md += "\n";
  std::map<std::pair<int64_t, std::string>, std::pair<double, int>> avg;  // (length, policy) -> mean over tasks
  for (const auto& [t, l] : rows) {
    md += "| " + t + " | " + std::to_string(l) + " |";
    for (const auto& p : policies) {
      const Cell* c = find(t, l, p);
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
  for (const auto& [t, l] : rows) lengths.insert(l);
  for (int64_t l : lengths) {
    bool any_scored = false;  // perplexity-only lengths have no task mean
    for (const auto& p : policies) any_scored |= avg.count({l, p}) > 0;
    if (!any_scored) continue;
    md += "| **mean of tasks** | " + std::to_string(l) + " |";
    for (const auto& p : policies) {
      auto it = avg.find({l, p});
      md += " " + (it == avg.end() ? std::string() : fmt(it->second.first / it->second.second)) + " |";
    }
    md += "\n";
  }
  bool any_fid = false;
  for (const Cell& c : cells) any_fid |= c.n_fidelity > 0 && !is_ppl(c);
  if (any_fid) {
    md += "\n## Fidelity against `" + reference +
          "` (same prompts, teacher-forced on its greedy tokens)\n\n"
          "KL = mean KL(" +
          reference +
          " || policy) of the next-token distribution over the first decode steps "
          "(nats); top-1 = agreement of the argmax (%); exact = greedy output identical (%).\n\n"
          "| task | length | policy | KL mean | KL step 1 | top-1 % | exact % | score ratio |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|\n";
    for (const Cell& c : cells) {
      if (c.n_fidelity == 0 || is_ppl(c)) continue;
      const Cell* ref = find(c.task, c.length, reference);
      const double ratio = ref && ref->score > 0 ? c.score / ref->score : NAN;
      md += "| " + c.task + " | " + std::to_string(c.length) + " | " + c.policy + " | " + fmt(c.kl_mean, "%.4f") +
            " | " + fmt(c.kl_first, "%.4f") + " | " + fmt(100 * c.top1) + " | " + fmt(100 * c.exact_match) + " | " +
            fmt(ratio, "%.3f") + " |\n";
    }
  }
  md += ppl_section(cells, reference, find);
  const bool any_scored = std::any_of(cells.begin(), cells.end(), [](const Cell& c) { return !is_ppl(c); });
  if (any_scored)
    md +=
        "\n## Memory and speed (mean per sample)\n\n| task | length | policy | prefill tok/s | KV bytes | "
        "KV / full |\n|---|---:|---|---:|---:|---:|\n";
  for (const Cell& c : cells) {
    if (is_ppl(c)) continue;
    md += "| " + c.task + " | " + std::to_string(c.length) + " | " + c.policy + " | " + fmt(c.prefill_tok_s) + " | " +
          fmt(c.kv_bytes, "%.0f") + " | " + fmt(c.kv_full_bytes > 0 ? c.kv_bytes / c.kv_full_bytes : NAN, "%.3f") +
          " |\n";
  }
  write_text(dir + "/summary.md", md);

  // CSV (long format) and JSON.
  std::string csv = "task,length,policy,metric,n,score,score_x100,ratio_to_" + reference +
                    ",n_fidelity,kl_mean,kl_first,top1,exact_match,prefill_tok_s,kv_bytes,kv_full_bytes\n";
  nlohmann::json js = {{"reference", reference}, {"policies", policies}, {"cells", nlohmann::json::array()}};
  for (const Cell& c : cells) {
    const Cell* ref = find(c.task, c.length, reference);
    const double ratio = ref && ref->score > 0 ? c.score / ref->score : NAN;
    csv += c.task + "," + std::to_string(c.length) + "," + c.policy + "," + c.metric + "," + std::to_string(c.n) + "," +
           fmt(c.score, "%.6f") + "," + (is_ppl(c) ? "" : fmt(100 * c.score, "%.2f")) + "," + fmt(ratio, "%.4f") + "," +
           std::to_string(c.n_fidelity) + "," + fmt(c.kl_mean, "%.6f") + "," + fmt(c.kl_first, "%.6f") + "," +
           fmt(c.top1, "%.4f") + "," + fmt(c.exact_match, "%.4f") + "," + fmt(c.prefill_tok_s, "%.2f") + "," +
           fmt(c.kv_bytes, "%.0f") + "," + fmt(c.kv_full_bytes, "%.0f") + "\n";
    auto num_or_null = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
    js["cells"].push_back({{"task", c.task},
                           {"length", c.length},
                           {"policy", c.policy},
                           {"metric", c.metric},
                           {"n", c.n},
                           {"score", c.score},
                           {"ratio_to_reference", num_or_null(ratio)},
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
  }
  write_text(dir + "/summary.csv", csv);
  write_text(dir + "/summary.json", js.dump(2) + "\n");
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
