#include "cli_common.h"

#include <omp.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "kv/kv_policy.h"
#include "util/error.h"

namespace shadowkv::cli {

namespace {

// Help text of a setting shared by several policies: "shadowkv: ...; quest: ..." (one entry if all say the same).
std::string shared_help(const std::vector<std::pair<const KvPolicyDecl*, const KvSetting*>>& users) {
  std::string names, help;
  bool same = true;
  for (const auto& [d, s] : users) {
    names += (names.empty() ? "" : ", ") + d->name;
    same = same && s->help == users.front().second->help;
  }
  if (same) return names + ": " + users.front().second->help;
  for (const auto& [d, s] : users) help += (help.empty() ? "" : "; ") + d->name + ": " + s->help;
  return help;
}

}  // namespace

void add_kv_flags(CLI::App* cmd, KvOptions& kv) {
  cmd->add_option("--kv", kv.policy, "KV-cache policy: " + kv_policy_names() + " (settings: shadowkv policies)")
      ->capture_default_str();
  // One flag per setting name; which policies read it is in its help, and make_kv_cache rejects a setting that the
  // chosen policy does not declare.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::pair<const KvPolicyDecl*, const KvSetting*>>> users;
  for (const KvPolicyDecl* d : kv_policies())
    for (const KvSetting& s : d->settings) {
      if (!users.count(s.name)) order.push_back(s.name);
      users[s.name].emplace_back(d, &s);
    }
  for (const std::string& name : order) {
    const std::string help = shared_help(users[name]);
    if (users[name].front().second->type == SettingType::Flag)
      // "--flag" sets it, "--flag=false" clears a flag whose default is on; the value is checked by the policy.
      cmd->add_flag("--" + name + "{true}", help)->each([&kv, name](const std::string& v) { kv.settings[name] = v; });
    else
      cmd->add_option_function<std::string>(
          "--" + name, [&kv, name](const std::string& v) { kv.settings[name] = v; }, help);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void set_threads(int threads) {
  if (threads < 0) throw Error("-t must be >= 1 (0 = all cores)");
  // More threads than a few per core only adds contention (each OpenMP region would start them all).
  const int limit = 4 * omp_get_num_procs();
  if (threads > limit)
    throw Error("-t " + std::to_string(threads) + " is more than 4 threads per core of this machine (at most " +
                std::to_string(limit) + "; 0 = all cores)");
  if (threads > 0) omp_set_num_threads(threads);
}

std::string human_bytes(int64_t b) {
  char buf[64];
  if (b >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%lld B", (long long)b);
  return buf;
}

}  // namespace shadowkv::cli
