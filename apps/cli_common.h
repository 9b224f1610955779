// Pieces shared by the CLI's subcommands: model resolution (known_models.h), KV flags, reading prompts.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "known_models.h"
#include "kv/kv_cache.h"

namespace shadowkv::cli {

// Registers --kv, --kv-f16 and the per-policy knobs on a subcommand.
void add_kv_flags(CLI::App* cmd, KvOptions& kv);

std::string read_file(const std::string& path);
void set_threads(int threads);
std::string human_bytes(int64_t bytes);

}  // namespace shadowkv::cli
