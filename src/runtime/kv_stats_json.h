// KV memory and policy counters as JSON, written the same way by `run --json`, `eval` and the server.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv_cache.h"

namespace shadowkv {

// {"kv_bytes", "kv_hot_bytes", "kv_cold_bytes", "kv_parts": {name: bytes}}.
nlohmann::json kv_memory_json(const KvMemory& m);

// {name: value} of a policy's counters.
nlohmann::json counters_json(const std::vector<std::pair<std::string, double>>& counters);

}  // namespace shadowkv
