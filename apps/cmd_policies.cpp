// `shadowkv policies`: every KV policy with its settings, types and defaults, straight from the registry.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "kv/kv_policy.h"

namespace shadowkv::cli {

void register_policies(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd =
      app.add_subcommand("policies", "list the KV-cache policies (--kv NAME) with their settings and defaults");
  cmd->add_flag("--json", *json, "print a JSON array");
  cmd->callback([json] {
    nlohmann::json out = nlohmann::json::array();
    for (const KvPolicyDecl* d : kv_policies()) {
      nlohmann::json settings = nlohmann::json::array();
      if (!*json) std::printf("%s\n    %s\n", d->name.c_str(), d->summary.c_str());
      for (const KvSetting& s : d->settings) {
        settings.push_back(
            {{"name", s.name}, {"type", setting_type_name(s.type)}, {"default", s.def}, {"help", s.help}});
        if (!*json)
          std::printf("    --%-16s %-5s default %-8s %s\n", s.name.c_str(), setting_type_name(s.type),
                      s.def.empty() ? "(auto)" : s.def.c_str(), s.help.c_str());
      }
      out.push_back({{"name", d->name}, {"summary", d->summary}, {"settings", settings}});
    }
    if (*json) std::cout << out.dump(2) << std::endl;
  });
}

}  // namespace shadowkv::cli
