#include "eval/kv_policies.h"

#include <cctype>
#include <sstream>

#include "eval/truncating_kv_cache.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

int to_int(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error("--kv-args: " + flag + " expects an integer, got '" + v + "'");
  }
}

}  // namespace

void apply_kv_args(const std::string& args, KvOptions& o) {
  std::istringstream in(args);
  std::vector<std::string> toks;
  for (std::string t; in >> t;) toks.push_back(t);
  for (size_t i = 0; i < toks.size(); ++i) {
    std::string flag = toks[i], value;
    const size_t eq = flag.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (flag == "--kv-f16") {
      if (inline_value) throw Error("--kv-args: --kv-f16 takes no value");
      o.f16 = true;
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= toks.size()) throw Error("--kv-args: " + flag + " needs a value");
      value = toks[++i];
    }
    if (flag == "--budget")
      o.budget = value;
    else if (flag == "--rank")
      o.rank = to_int(flag, value);
    else if (flag == "--chunk")
      o.chunk = to_int(flag, value);
    else if (flag == "--outliers")
      o.outliers = to_int(flag, value);
    else if (flag == "--local-chunks")
      o.local_chunks = to_int(flag, value);
    else if (flag == "--dense-tail")
      o.dense_tail = to_int(flag, value);
    else if (flag == "--factor-dtype")
      o.factor_dtype = value;
    else
      throw Error(
          "--kv-args: unknown knob '" + flag +
          "' (known: --budget, --rank, --chunk, --outliers, --local-chunks, --dense-tail, --factor-dtype, --kv-f16)");
  }
}

std::vector<PolicySpec> parse_policies(const std::string& list, const std::vector<std::string>& kv_args) {
  std::vector<PolicySpec> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    item = trim(item);
    if (item.empty()) continue;
    for (const PolicySpec& p : out)
      if (p.label == item) throw Error("--kv lists '" + item + "' twice");
    PolicySpec p;
    p.label = item;
    p.options.policy = item.substr(0, item.find('@'));
    out.push_back(p);
  }
  if (out.empty()) throw Error("--kv needs at least one policy");
  for (const std::string& a : kv_args) {
    // The label ends at the first ':' that is followed by a flag, so "truncate:16:--kv-f16" works too.
    size_t colon = a.find(":-");
    if (colon == std::string::npos) colon = a.rfind(':');
    if (colon == std::string::npos) throw Error("--kv-args expects POLICY:ARGS, got '" + a + "'");
    const std::string label = trim(a.substr(0, colon)), args = trim(a.substr(colon + 1));
    PolicySpec* target = nullptr;
    for (PolicySpec& p : out)
      if (p.label == label) target = &p;
    if (!target) throw Error("--kv-args names '" + label + "', which is not in --kv");
    if (!target->args.empty()) throw Error("--kv-args given twice for '" + label + "'");
    apply_kv_args(args, target->options);
    target->args = args;
  }
  return out;
}

std::unique_ptr<KvCache> make_eval_kv_cache(const KvGeometry& geometry, const KvOptions& options) {
  const std::string& p = options.policy;
  if (p.rfind("truncate:", 0) == 0) {
    const std::string n = p.substr(9);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 9)
      throw Error("truncate:N needs a positive token count, got '" + p + "'");
    return std::make_unique<TruncatingKvCache>(geometry, std::stoll(n));
  }
  return make_kv_cache(geometry, options);
}

std::string file_safe(const std::string& label) {
  std::string s;
  for (char c : label) s.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_');
  return s;
}

}  // namespace shadowkv::eval
