#include "commands.h"

namespace shadowkv::cli {

void register_commands(CLI::App& app) {
  register_run(app);
  register_tools(app);
  register_eval(app);
  register_bench(app);
  register_demo(app);
  register_analyze(app);
  register_policies(app);
  register_serve(app);
}

}  // namespace shadowkv::cli
