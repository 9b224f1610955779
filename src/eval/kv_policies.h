// The harness's view of KV policies: parsing `--kv full,shadowkv` and `--kv-args "shadowkv:--budget 1024"`
// into KvOptions (settings as the policy registry declares them), and a factory hook that forwards every name to
// make_kv_cache except the harness's own test-only policy truncate:N. New policies work here with no change.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv_cache.h"

namespace shadowkv::eval {

struct PolicySpec {
  std::string label;  // as given in --kv; "name@tag" runs policy "name" under its own label (for sweeps)
  KvOptions options;
  std::string args;  // the --kv-args text applied to it ("" if none), recorded with the results
};

// Applies settings of o.policy as declared in its registry entry: "--budget 1024 --rank=96 --kv-f16".
void apply_kv_args(const std::string& args, KvOptions& o);

// Every declared setting with its effective value (resolved_settings), none for truncate:N.
std::vector<std::pair<std::string, std::string>> policy_settings(const KvOptions& o);

// Splits the comma list and applies each "label:args" entry of kv_args (a label may appear once).
std::vector<PolicySpec> parse_policies(const std::string& list, const std::vector<std::string>& kv_args);

// make_kv_cache, plus "truncate:N" (keep the last N positions of every layer).
std::unique_ptr<KvCache> make_eval_kv_cache(const KvGeometry& geometry, const KvOptions& options);

// Label made safe for file names ("truncate:16" -> "truncate_16").
std::string file_safe(const std::string& label);

}  // namespace shadowkv::eval
