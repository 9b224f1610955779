// Known models by name (scripts/models.tsv, compiled in): `-m NAME` resolution and the `models` listing.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace shadowkv::cli {

struct KnownModel {
  std::string name, file, description;  // file: name inside models_dir()
  int64_t bytes = 0;                    // pinned size (scripts/fetch-model also checks the SHA-256)
};

// The table of scripts/models.tsv; the first entry is the default model.
const std::vector<KnownModel>& known_models();

// $SHADOWKV_MODELS, else $SHADOWKV_CACHE/models, else ~/.cache/shadowkv/models (as scripts/lib.sh).
std::string models_dir();

// The -m value: empty = the default model, a known name = its fetched file, anything else = a path. Throws
// shadowkv::Error (naming scripts/fetch-model NAME) if a named model is not fetched.
std::string resolve_model(const std::string& flag);

// Registers -m/--model on a subcommand.
void add_model_option(CLI::App* cmd, std::string& model);

}  // namespace shadowkv::cli
