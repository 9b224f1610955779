// `shadowkv serve`: the OpenAI-compatible HTTP server (src/server/) on one model; SIGINT/SIGTERM stop it cleanly.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "model/model.h"
#include "server/server.h"
#include "util/error.h"

namespace shadowkv::cli {
namespace {

struct ServeArgs {
  std::string model;
  server::ServerOptions o;
};

// The name /v1/models reports: the known model's name (given, the default, or a path to its file), else the file
// name without .gguf.
std::string served_name(const std::string& flag) {
  if (flag.empty()) return known_models().front().name;
  const std::string file = std::filesystem::path(flag).filename().string();
  for (const KnownModel& m : known_models())
    if (m.name == flag || m.file == file) return m.name;
  std::string stem = file;
  if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".gguf") == 0) stem.resize(stem.size() - 5);
  return stem;
}

int g_stop_pipe[2] = {-1, -1};

// SIGINT/SIGTERM: only an async-signal-safe write; a waiter thread does the stopping. (Blocking the signals and
// sigwait() would not do: OpenBLAS starts its threads before main, with the signals unblocked.)
extern "C" void on_stop_signal(int sig) {
  const char c = (char)sig;
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &c, 1);
}

void serve(ServeArgs& a) {
  auto model = Model::load(resolve_model(a.model));
  a.o.model_name = served_name(a.model);
  server::Server srv(*model, a.o);
  const int port = srv.bind();
  if (pipe(g_stop_pipe) != 0) throw Error("serve: cannot create a pipe");
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that left: the write fails instead of killing the process
  std::thread waiter([&] {
    char c = 0;
    while (read(g_stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    if (c) std::fprintf(stderr, "shadowkv serve: %s, stopping\n", c == SIGINT ? "SIGINT" : "SIGTERM");
    srv.stop();
  });
  std::fprintf(stderr, "shadowkv serve: %s (kv %s, context %lld, max batch %d) listening on http://%s:%d\n",
               a.o.model_name.c_str(), a.o.kv.policy.c_str(),
               (long long)(a.o.ctx > 0 ? a.o.ctx : model->config().n_ctx_train), a.o.max_batch, a.o.host.c_str(), port);
  std::fflush(stderr);
  srv.run();
  const char zero = 0;  // run() may also return without a signal: wake the waiter
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &zero, 1);
  waiter.join();
  std::fprintf(stderr, "shadowkv serve: stopped\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  add_model_option(cmd, a->model);
  cmd->add_option("--host", a->o.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", a->o.port, "port (0 = any free port; the address is printed)")->capture_default_str();
  cmd->add_option("-c,--ctx", a->o.ctx, "context per sequence (0 = the model's)")->capture_default_str();
  cmd->add_option("--max-batch", a->o.max_batch, "most sequences decoded together")->capture_default_str();
  cmd->add_option("--max-queue", a->o.max_queue, "most requests waiting for a batch slot (more get 503)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", a->o.threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--log-steps", a->o.log_steps, "print one line per engine step (batch size, tokens, time) to stderr");
  add_kv_flags(cmd, a->o.kv);
  cmd->callback([a] { serve(*a); });
}

}  // namespace shadowkv::cli
