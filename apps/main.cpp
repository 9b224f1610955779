// The shadowkv command line: run, perplexity, inspect, tokenize, logits.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
  // OpenMP threads that spin while waiting lose whole time slices when the cores are shared, which made decode
  // 6x slower under load in our measurements; passive waiting costs nothing measurable on an idle machine.
  // libgomp reads the policy once at start-up, so set it and re-execute once (unless the user chose one).
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure, and then we simply run as we are
  }
  CLI::App app{"shadowkv: long-context LLM inference with the KV cache in shadows"};
  app.require_subcommand(1);
  shadowkv::cli::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const shadowkv::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
