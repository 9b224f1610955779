#include "cli_common.h"

#include <omp.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace shadowkv::cli {

void add_kv_flags(CLI::App* cmd, KvOptions& kv) {
  cmd->add_option("--kv", kv.policy, "KV-cache policy: full, shadowkv")->capture_default_str();
  cmd->add_flag("--kv-f16", kv.f16, "store dense keys/values as f16 (default f32)");
  cmd->add_option("--rank", kv.rank, "shadowkv: rank of the low-rank key factorisation (0 = default)");
  cmd->add_option("--chunk", kv.chunk, "shadowkv: tokens per chunk")->capture_default_str();
  cmd->add_option("--budget", kv.budget, "shadowkv: sparse budget in tokens (default 2048) or % of the prompt (1.56%)");
  cmd->add_option("--outliers", kv.outliers, "shadowkv: outlier chunks kept dense (-1 = default)");
  cmd->add_option("--local-chunks", kv.local_chunks, "shadowkv: chunks of the local window")->capture_default_str();
  cmd->add_option("--dense-tail", kv.dense_tail,
                  "shadowkv: tokens after the prompt kept exact before the oldest are compressed (-1 = default 2048)");
  cmd->add_option("--factor-dtype", kv.factor_dtype, "shadowkv: storage of U rows and landmarks (f16 or f32)")
      ->capture_default_str();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void set_threads(int threads) {
  if (threads < 0) throw Error("-t must be >= 1 (0 = all cores)");
  if (threads > 0) omp_set_num_threads(threads);
}

std::string human_bytes(int64_t b) {
  char buf[64];
  if (b >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%lld B", (long long)b);
  return buf;
}

}  // namespace shadowkv::cli
