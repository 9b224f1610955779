// `shadowkv run`: generate from a prompt (or a batch of prompts) and report speed and KV memory.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "kv/block_pool.h"
#include "model/model.h"
#include "runtime/chat_template.h"
#include "runtime/generator.h"
#include "runtime/kv_stats_json.h"
#include "util/error.h"

namespace shadowkv::cli {
namespace {

struct RunArgs {
  std::string model, prompt, prompt_file, batch_file;
  int n_predict = 128, threads = 0;
  int64_t ctx = 0;
  float temp = 0.8f, top_p = 0.95f;
  int top_k = 40;
  uint64_t seed = 0;
  bool json = false, raw = false;
  KvOptions kv;
};

std::vector<std::string> read_batch_file(const std::string& path) {
  std::vector<std::string> prompts;
  std::string text = read_file(path), line;
  size_t lineno = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != '\n') {
      line += text[i];
      continue;
    }
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) {
      if (line[0] == '{') {  // JSONL: {"prompt": "..."}
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const std::exception& e) {
          throw Error(path + ":" + std::to_string(lineno) + ": bad JSON: " + e.what());
        }
        if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
          throw Error(path + ":" + std::to_string(lineno) + ": expected an object with a string \"prompt\"");
        prompts.push_back(j["prompt"].get<std::string>());
      } else {
        prompts.push_back(line);
      }
    }
    line.clear();
  }
  if (prompts.empty()) throw Error(path + ": no prompts");
  return prompts;
}

nlohmann::json stats_json(const GenerationStats& s) {
  nlohmann::json j = kv_memory_json(s.kv);
  j.update({{"prompt_tokens", s.prompt_tokens},
            {"generated_tokens", s.generated_tokens},
            {"prefill_tok_s", s.prefill_tok_s()},
            {"decode_tok_s", s.decode_tok_s()},
            {"prefill_seconds", s.prefill_seconds},
            {"decode_seconds", s.decode_seconds},
            {"kv_full_bytes", s.kv_full_bytes}});
  j.update(counters_json(s.counters));
  return j;
}

void print_stats(const char* policy, const GenerationStats& s) {
  std::fprintf(stderr,
               "\n[%s] prompt %lld tok | prefill %.1f tok/s | decode %.2f tok/s (%lld tok) | kv %s (hot %s, cold %s; "
               "full would hold %s)\n",
               policy, (long long)s.prompt_tokens, s.prefill_tok_s(), s.decode_tok_s(), (long long)s.generated_tokens,
               human_bytes(s.kv.total()).c_str(), human_bytes(s.kv.hot).c_str(), human_bytes(s.kv.cold).c_str(),
               human_bytes(s.kv_full_bytes).c_str());
  std::string parts;
  for (const auto& [name, bytes] : s.kv.parts) parts += " " + name + "=" + human_bytes(bytes);
  for (const auto& [name, value] : s.counters) parts += " " + name + "=" + std::to_string(value);
  std::fprintf(stderr, "[%s] kv parts:%s\n", policy, parts.c_str());
}

void run(const RunArgs& a) {
  set_threads(a.threads);
  if (a.n_predict < 0) throw Error("-n must be >= 0");
  const int sources = !a.prompt.empty() + !a.prompt_file.empty() + !a.batch_file.empty();
  if (sources != 1) throw Error("give exactly one of -p TEXT, -f FILE or --batch-file FILE");
  auto model = Model::load(resolve_model(a.model));
  const Tokenizer& tok = model->tokenizer();

  std::vector<std::string> texts;
  if (!a.batch_file.empty())
    texts = read_batch_file(a.batch_file);
  else
    texts.push_back(a.prompt_file.empty() ? a.prompt : read_file(a.prompt_file));
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& t : texts) {
    if (model->config().instruction_tuned && !a.raw) {
      prompts.push_back(tok.encode(apply_chat_template(tok, t), /*add_bos=*/false, /*parse_special=*/true));
    } else {
      prompts.push_back(tok.encode(t, /*add_bos=*/true));
    }
  }

  GenerateOptions o;
  o.n_predict = a.n_predict;
  o.n_ctx = a.ctx;
  o.sampling = {a.temp, a.top_k, a.top_p, a.seed};
  o.kv = a.kv;
  const bool stream = !a.json && prompts.size() == 1;
  Generator gen(*model);
  auto results = gen.generate(prompts, o,
                              stream ? TextCallback([](int, std::string_view s) {
                                std::fwrite(s.data(), 1, s.size(), stdout);
                                std::fflush(stdout);
                              })
                                     : TextCallback());
  if (a.json) {
    nlohmann::json out;
    auto one = [&](const Generation& g) {
      return nlohmann::json{
          {"text", g.text}, {"stop_reason", g.stop_reason}, {"kv_policy", a.kv.policy}, {"stats", stats_json(g.stats)}};
    };
    if (results.size() == 1) {
      out = one(results[0]);
    } else {
      out = nlohmann::json{{"results", nlohmann::json::array()}};
      for (const Generation& g : results) out["results"].push_back(one(g));
    }
    const BlockPoolStats pool = BlockPool::all_stats();
    if (pool.blocks_total > 0)  // --paged: what the shared block pool allocated over the run (it never shrinks)
      out["block_pool"] = {{"blocks", pool.blocks_total},
                           {"blocks_in_use", pool.blocks_used},
                           {"bytes", pool.bytes_total},
                           {"block_bytes", pool.block_bytes}};
    std::cout << out.dump() << std::endl;
    return;
  }
  if (!stream) {
    for (size_t i = 0; i < results.size(); ++i) std::printf("[%zu] %s\n", i, results[i].text.c_str());
  } else {
    std::printf("\n");
  }
  for (const Generation& g : results) print_stats(a.kv.policy.c_str(), g.stats);
}

}  // namespace

void register_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "generate text from a prompt");
  add_model_option(cmd, a->model);
  cmd->add_option("-p,--prompt", a->prompt, "prompt text");
  cmd->add_option("-f,--file", a->prompt_file, "read the prompt from a file");
  cmd->add_option("--batch-file", a->batch_file, "one prompt per line (or JSONL {\"prompt\": ...}), decoded together");
  cmd->add_option("-n,--n-predict", a->n_predict, "tokens to generate")->capture_default_str();
  cmd->add_option("-c,--ctx", a->ctx, "context size (0 = the model's)")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--temp", a->temp, "temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "top-p")->capture_default_str();
  cmd->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  cmd->add_flag("--json", a->json, "print one JSON object with text and stats");
  cmd->add_flag("--raw", a->raw, "do not apply the chat template of an instruction-tuned model");
  add_kv_flags(cmd, a->kv);
  cmd->callback([a] { run(*a); });
}

}  // namespace shadowkv::cli
