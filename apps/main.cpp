// The shadowkv command line: run, perplexity, inspect, tokenize, logits.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
  // OpenMP threads that wait for work spin a bounded while and then sleep. Pure spinning (OMP_WAIT_POLICY=active)
  // loses whole time slices when the cores are shared (decode 2-10x slower next to two busy processes here); pure
  // sleeping (passive) pays a futex wake-up at each of the ~100 parallel regions of a decode step (-15% on an idle
  // machine). A short spin keeps most of both; see README "Threads". libgomp reads this once at start-up, so set
  // it and re-execute once, unless the user chose a policy or a spin count.
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    setenv("GOMP_SPINCOUNT", "1000", 1);
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
