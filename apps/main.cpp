// The shadowkv command line: run, perplexity, inspect, tokenize, logits.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "ops/matmul.h"
#include "util/error.h"

int main(int argc, char** argv) {
  // Settings that libgomp and OpenBLAS read once, when they are loaded: set them and re-execute once.
  // OpenMP threads that wait for work spin a bounded while and then sleep. Pure spinning (OMP_WAIT_POLICY=active)
  // loses whole time slices when the cores are shared (decode 2-10x slower next to two busy processes here); pure
  // sleeping (passive) pays a futex wake-up at each of the ~100 parallel regions of a decode step (-15% on an idle
  // machine). A short spin keeps most of both; see README "Threads". Unless the user chose a policy or a count.
  bool reexec = false;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    setenv("GOMP_SPINCOUNT", "1000", 1);
    reexec = true;
  }
  // OpenBLAS kernels that fit the CPU when OpenBLAS does not know it (matmul.h), unless the user chose some.
  if (const char* core = shadowkv::blas_core_override(); core && !std::getenv("OPENBLAS_CORETYPE")) {
    setenv("OPENBLAS_CORETYPE", core, 1);
    reexec = true;
  }
  if (reexec) execv("/proc/self/exe", argv);  // returns only on failure, and then we simply run as we are
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
