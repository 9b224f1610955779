// Policy registry, KvOptions accessors and make_kv_cache.
#include "kv/kv_policy.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "util/error.h"

namespace shadowkv {
namespace {

std::vector<KvPolicyDecl>& registry() {
  static std::vector<KvPolicyDecl> r;  // function-local: safe whatever the order of static initialisation
  return r;
}

bool parse_int(const std::string& v, int64_t* out) {
  if (v.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (errno != 0 || end != v.c_str() + v.size()) return false;
  *out = x;
  return true;
}

bool parse_real(const std::string& v, double* out) {
  if (v.empty()) return false;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (end != v.c_str() + v.size() || !std::isfinite(x)) return false;
  *out = x;
  return true;
}

bool parse_flag(const std::string& v, bool* out) {
  if (v == "true" || v == "1") return *out = true, true;
  if (v == "false" || v == "0") return *out = false, true;
  return false;
}

std::string setting_list(const KvPolicyDecl& d) {
  std::string s;
  for (const KvSetting& k : d.settings) s += (s.empty() ? "--" : ", --") + k.name;
  return s.empty() ? "none" : s;
}

// The declaration of setting `name` of policy d; Error naming the policy's settings if it has none.
const KvSetting& declared(const KvPolicyDecl& d, const std::string& name) {
  const KvSetting* s = find_setting(d, name);
  if (!s)
    throw Error("KV policy '" + d.name + "' has no setting --" + name + " (its settings: " + setting_list(d) + ")");
  return *s;
}

// The value of a declared setting as text, checked against its type.
std::string checked_value(const KvOptions& o, const std::string& name, SettingType want) {
  const KvSetting* s = &declared(kv_policy(o.policy), name);
  if (s->type != want)
    throw Error("internal: setting --" + name + " of '" + o.policy + "' read as " + setting_type_name(want));
  const auto it = o.settings.find(name);
  return it == o.settings.end() ? s->def : it->second;
}

void check_type(const std::string& policy, const KvSetting& s, const std::string& v) {
  int64_t i;
  double r;
  bool f;
  const bool ok = s.type == SettingType::Int    ? parse_int(v, &i)
                  : s.type == SettingType::Real ? parse_real(v, &r)
                  : s.type == SettingType::Flag ? parse_flag(v, &f)
                                                : true;
  if (!ok)
    throw Error(policy + ": --" + s.name + " expects " + (s.type == SettingType::Flag ? "true or false" : "a") +
                (s.type == SettingType::Int    ? "n integer"
                 : s.type == SettingType::Real ? " number"
                                               : "") +
                ", got '" + v + "'");
}

}  // namespace

KvPolicyRegistration::KvPolicyRegistration(KvPolicyDecl decl) {
  for (const KvPolicyDecl& d : registry())
    if (d.name == decl.name) throw Error("internal: KV policy '" + decl.name + "' registered twice");
  registry().push_back(std::move(decl));
}

std::vector<const KvPolicyDecl*> kv_policies() {
  std::vector<const KvPolicyDecl*> out;
  for (const KvPolicyDecl& d : registry()) out.push_back(&d);
  std::stable_sort(out.begin(), out.end(), [](const KvPolicyDecl* a, const KvPolicyDecl* b) {
    return a->order != b->order ? a->order < b->order : a->name < b->name;
  });
  return out;
}

std::string kv_policy_names() {
  std::string s;
  for (const KvPolicyDecl* d : kv_policies()) s += (s.empty() ? "" : ", ") + d->name;
  return s;
}

const KvPolicyDecl& kv_policy(const std::string& name) {
  for (const KvPolicyDecl& d : registry())
    if (d.name == name) return d;
  throw Error("unknown KV policy '" + name + "' (available: " + kv_policy_names() + ")");
}

const KvSetting* find_setting(const KvPolicyDecl& decl, const std::string& name) {
  for (const KvSetting& s : decl.settings)
    if (s.name == name) return &s;
  return nullptr;
}

const char* setting_type_name(SettingType t) {
  switch (t) {
    case SettingType::Int:
      return "int";
    case SettingType::Real:
      return "real";
    case SettingType::Text:
      return "text";
    case SettingType::Flag:
      return "flag";
  }
  return "?";
}

void validate_kv_options(const KvOptions& o) {
  const KvPolicyDecl& d = kv_policy(o.policy);
  for (const auto& [name, value] : o.settings) check_type(o.policy, declared(d, name), value);
}

std::vector<std::pair<std::string, std::string>> resolved_settings(const KvOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const KvSetting& s : kv_policy(o.policy).settings) {
    const auto it = o.settings.find(s.name);
    out.emplace_back(s.name, it == o.settings.end() ? s.def : it->second);
  }
  return out;
}

void apply_setting_args(const std::string& args, KvOptions& o, const std::string& where) {
  const KvPolicyDecl& d = kv_policy(o.policy);
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
    const KvSetting* s = flag.rfind("--", 0) == 0 ? find_setting(d, flag.substr(2)) : nullptr;
    if (!s)
      throw Error(where + ": '" + flag + "' is not a setting of KV policy '" + o.policy +
                  "' (its settings: " + setting_list(d) + ")");
    if (s->type == SettingType::Flag && !inline_value) {
      value = "true";
    } else if (!inline_value) {
      if (i + 1 >= toks.size()) throw Error(where + ": " + flag + " needs a value");
      value = toks[++i];
    }
    check_type(o.policy, *s, value);
    o.settings[s->name] = value;
  }
}

std::string KvOptions::text(const std::string& name) const { return checked_value(*this, name, SettingType::Text); }

int64_t KvOptions::integer(const std::string& name) const {
  const std::string v = checked_value(*this, name, SettingType::Int);
  int64_t x = 0;
  if (!parse_int(v, &x)) throw Error(policy + ": --" + name + " expects an integer, got '" + v + "'");
  return x;
}

double KvOptions::real(const std::string& name) const {
  const std::string v = checked_value(*this, name, SettingType::Real);
  double x = 0;
  if (!parse_real(v, &x)) throw Error(policy + ": --" + name + " expects a number, got '" + v + "'");
  return x;
}

bool KvOptions::flag(const std::string& name) const {
  const std::string v = checked_value(*this, name, SettingType::Flag);
  bool x = false;
  if (!parse_flag(v, &x)) throw Error(policy + ": --" + name + " expects true or false, got '" + v + "'");
  return x;
}

bool KvOptions::declares(const std::string& name) const { return find_setting(kv_policy(policy), name) != nullptr; }

std::unique_ptr<KvCache> make_kv_cache(const KvGeometry& geometry, const KvOptions& options) {
  validate_kv_options(options);
  return kv_policy(options.policy).make(geometry, options);
}

bool full_equivalent_f16(const KvOptions& options) {
  for (const KvPolicyDecl* d : kv_policies())
    if (d->name == options.policy && find_setting(*d, "kv-f16")) return options.flag("kv-f16");
  KvOptions full;
  full.policy = "full";
  return full.flag("kv-f16");
}

int64_t full_kv_bytes(const KvGeometry& geometry, int64_t n_tokens, bool f16) {
  int64_t total = 0;
  for (const LayerGeometry& g : geometry.layers) {
    const int64_t slots = g.window > 0 ? std::min<int64_t>(n_tokens, g.window) : n_tokens;
    total += slots * g.n_kv_head * g.head_dim * (f16 ? 2 : 4) * 2;
  }
  return total;
}

}  // namespace shadowkv
