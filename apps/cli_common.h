// Pieces shared by the CLI's subcommands: model path resolution, KV flags, reading prompts.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "kv/kv_cache.h"

namespace shadowkv::cli {

// The -m value, or the default model fetched by scripts/fetch-model into $SHADOWKV_MODELS.
std::string resolve_model(const std::string& flag);

// Registers --kv, --kv-f16 and the per-policy knobs on a subcommand.
void add_kv_flags(CLI::App* cmd, KvOptions& kv);

std::string read_file(const std::string& path);
void set_threads(int threads);
std::string human_bytes(int64_t bytes);

}  // namespace shadowkv::cli
