#include "eval/kv_policies.h"

#include <cctype>
#include <sstream>

#include "eval/truncating_kv_cache.h"
#include "kv/kv_policy.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool is_truncate(const KvOptions& o) { return o.policy.rfind("truncate:", 0) == 0; }

}  // namespace

void apply_kv_args(const std::string& args, KvOptions& o) {
  if (is_truncate(o)) {
    if (!trim(args).empty()) throw Error("--kv-args: the test-only policy " + o.policy + " has no settings");
    return;
  }
  apply_setting_args(args, o, "--kv-args");
}

std::vector<std::pair<std::string, std::string>> policy_settings(const KvOptions& o) {
  return is_truncate(o) ? std::vector<std::pair<std::string, std::string>>{} : resolved_settings(o);
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
  for (const PolicySpec& p : out)
    if (!is_truncate(p.options)) kv_policy(p.options.policy);  // unknown names fail here, before any work
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
  if (is_truncate(options)) {
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
