#pragma once
#include <CLI/CLI.hpp>

namespace shadowkv::cli {

// Adds every subcommand; each runs from its callback and throws shadowkv::Error on failure.
void register_commands(CLI::App& app);
void register_run(CLI::App& app);
void register_tools(CLI::App& app);  // models, inspect, tokenize, logits, perplexity
void register_eval(CLI::App& app);
void register_bench(CLI::App& app);
void register_demo(CLI::App& app);
void register_analyze(CLI::App& app);  // analyze-keys: key spectra for choosing the shadowkv rank
void register_policies(CLI::App& app);
void register_serve(CLI::App& app);  // the OpenAI-compatible HTTP server

}  // namespace shadowkv::cli
