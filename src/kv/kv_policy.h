// The KV policy registry: each policy declares its name, settings (name, type, default, help) and factory once, in
// its own .cpp (a static KvPolicyRegistration). CLI flags, eval --kv-args, the JSON of results and
// `shadowkv policies` are all derived from these declarations, so adding a policy touches no other file.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv_cache.h"

namespace shadowkv {

enum class SettingType { Int, Real, Text, Flag };

struct KvSetting {
  std::string name;  // flag "--name", --kv-args "--name V", JSON key "name"
  SettingType type = SettingType::Int;
  std::string def;  // default as text ("" for a text setting that the policy resolves itself)
  std::string help;
};

using KvFactory = std::function<std::unique_ptr<KvCache>(const KvGeometry&, const KvOptions&)>;

struct KvPolicyDecl {
  std::string name;
  std::string summary;  // one line for `shadowkv policies` and --help
  std::vector<KvSetting> settings;
  KvFactory make;
  int order = 100;  // listing order (full 0, shadowkv 1, then the survey's policies)
};

// Registers a policy at static-initialisation time: `static const KvPolicyRegistration reg{{...}};`.
struct KvPolicyRegistration {
  explicit KvPolicyRegistration(KvPolicyDecl decl);
};

// Every registered policy, in listing order.
std::vector<const KvPolicyDecl*> kv_policies();
// The declaration of `name`; Error listing the known names if there is none.
const KvPolicyDecl& kv_policy(const std::string& name);
// "full, shadowkv, ..." in listing order.
std::string kv_policy_names();
// The setting `name` of a policy, or null.
const KvSetting* find_setting(const KvPolicyDecl& decl, const std::string& name);

// Checks that the policy exists and that every given setting is one of its own with a value of the declared type.
void validate_kv_options(const KvOptions& options);
// Every declared setting of options.policy with its effective value (given or default), in declaration order.
std::vector<std::pair<std::string, std::string>> resolved_settings(const KvOptions& options);

// Parses "--budget 1024 --rank=96 --kv-f16" into settings of options.policy (flags take no value); Error on an
// unknown setting or a missing value. `where` prefixes messages (e.g. "--kv-args").
void apply_setting_args(const std::string& args, KvOptions& options, const std::string& where);

const char* setting_type_name(SettingType type);

}  // namespace shadowkv
