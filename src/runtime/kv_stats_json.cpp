#include "runtime/kv_stats_json.h"

namespace shadowkv {

nlohmann::json kv_memory_json(const KvMemory& m) {
  nlohmann::json parts = nlohmann::json::object();
  for (const auto& [name, bytes] : m.parts) parts[name] = bytes;
  return {{"kv_bytes", m.total()}, {"kv_hot_bytes", m.hot}, {"kv_cold_bytes", m.cold}, {"kv_parts", parts}};
}

nlohmann::json counters_json(const std::vector<std::pair<std::string, double>>& counters) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : counters) j[name] = value;
  return j;
}

}  // namespace shadowkv
