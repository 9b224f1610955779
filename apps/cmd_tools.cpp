// `shadowkv models | inspect | tokenize | logits | perplexity`: tools for finding, looking inside and measuring models.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "io/gguf.h"
#include "io/gguf_dump.h"
#include "known_models.h"
#include "model/model.h"
#include "runtime/chat_template.h"
#include "runtime/perplexity.h"
#include "runtime/scheduler.h"
#include "util/error.h"

namespace shadowkv::cli {
namespace {

std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX)
      throw Error("bad token id '" + item + "' in --tokens");
    ids.push_back((int32_t)v);
  }
  if (ids.empty()) throw Error("--tokens is empty");
  return ids;
}

// Lists the known models (scripts/models.tsv): name, whether fetched (and where), size.
void register_models(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("models", "list the known model names (-m NAME), fetched or not, and sizes");
  cmd->add_flag("--json", *json, "print a JSON array");
  cmd->callback([json] {
    nlohmann::json out = nlohmann::json::array();
    for (const KnownModel& m : known_models()) {
      const std::string path = models_dir() + "/" + m.file;
      std::error_code ec;
      const int64_t size =
          std::filesystem::is_regular_file(path, ec) ? (int64_t)std::filesystem::file_size(path, ec) : -1;
      const bool fetched = size == m.bytes;  // scripts/fetch-model also checked the SHA-256 before renaming
      const bool is_default = &m == &known_models().front();
      out.push_back({{"name", m.name},
                     {"default", is_default},
                     {"fetched", fetched},
                     {"path", path},
                     {"bytes", m.bytes},
                     {"description", m.description}});
      if (*json) continue;
      std::string status = fetched ? "fetched " + path : "not fetched (run scripts/fetch-model " + m.name + ")";
      if (size >= 0 && !fetched)
        status = "incomplete, " + std::to_string(size) + " bytes (run scripts/fetch-model " + m.name + ")";
      std::printf("%-20s %-10s %s\n    %s\n", (m.name + (is_default ? "*" : "")).c_str(), human_bytes(m.bytes).c_str(),
                  status.c_str(), m.description.c_str());
    }
    if (*json)
      std::cout << out.dump() << std::endl;
    else
      std::printf("(* = default; models live in %s)\n", models_dir().c_str());
  });
}

void register_inspect(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("inspect", "print a GGUF file's metadata and tensor table");
  cmd->add_option("file", *path, "GGUF file or known model name")->required();
  cmd->callback([path] { std::cout << describe_gguf(*GgufFile::open(resolve_model(*path))); });
}

struct TokArgs {
  std::string model, prompt, file;
  bool no_bos = false, special = false, chat = false;
};

void register_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "print the token ids of a text, space-separated");
  add_model_option(cmd, a->model);
  cmd->add_option("-p,--prompt", a->prompt, "text");
  cmd->add_option("-f,--file", a->file, "read the text from a file");
  cmd->add_flag("--no-bos", a->no_bos, "do not add BOS");
  cmd->add_flag("--special", a->special, "parse control-token text such as <start_of_turn>");
  cmd->add_flag("--chat", a->chat, "wrap the text in the model's chat template first, as `run` does");
  cmd->callback([a] {
    if (a->prompt.empty() == a->file.empty()) throw Error("give exactly one of -p TEXT or -f FILE");
    auto model = Model::load(resolve_model(a->model));
    const Tokenizer& tok = model->tokenizer();
    const std::string text = a->file.empty() ? a->prompt : read_file(a->file);
    const auto ids =
        a->chat ? tok.encode(apply_chat_template(tok, text), false, true) : tok.encode(text, !a->no_bos, a->special);
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
  });
}

struct LogitsArgs {
  std::string model, tokens, out;
  bool all = false, argmax_only = false;
  int chunk = 256, threads = 0;
  int64_t prompt_tokens = 0;
  KvOptions kv;
};

// Writes float32 little-endian logits of the last position (or all positions with --all) for a token list.
void register_logits(CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  CLI::App* cmd = app.add_subcommand("logits", "write raw f32 logits for a token sequence (for reference tests)");
  add_model_option(cmd, a->model);
  cmd->add_option("--tokens", a->tokens, "comma-separated token ids")->required();
  cmd->add_option("--out", a->out, "output file")->required();
  cmd->add_flag("--all", a->all, "logits of every position, not only the last");
  cmd->add_option("--batch-tokens", a->chunk, "tokens per forward pass")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads");
  cmd->add_option("--prompt-tokens", a->prompt_tokens,
                  "treat the first N tokens as the prompt (end of prefill after them), then feed the rest one by one "
                  "as decode steps, writing logits for the last prompt position and each step (0 = all prompt)");
  cmd->add_flag("--argmax-only", a->argmax_only,
                "write one int32 (the argmax token) per written row instead of the row's logits");
  add_kv_flags(cmd, a->kv);
  cmd->callback([a] {
    set_threads(a->threads);
    if (a->chunk <= 0) throw Error("--batch-tokens must be positive");
    const auto ids = parse_token_list(a->tokens);
    if (a->prompt_tokens < 0 || a->prompt_tokens > (int64_t)ids.size())
      throw Error("--prompt-tokens must be between 0 and the number of tokens");
    const size_t prompt = a->prompt_tokens > 0 ? (size_t)a->prompt_tokens : ids.size();
    auto model = Model::load(resolve_model(a->model));
    std::ofstream out(a->out, std::ios::binary);
    if (!out) throw Error("cannot write " + a->out);
    const int64_t n_vocab = model->config().n_vocab;
    // The prompt is fed in chunks, the rest as decode steps (forced tokens). Rows written: every row with --all,
    // else the prompt's last row and one per decode step.
    SequenceRequest req;
    req.feed.assign(ids.begin(), ids.begin() + (int64_t)prompt);
    req.forced.assign(ids.begin() + (int64_t)prompt, ids.end());
    req.forced.push_back(0);  // a placeholder choice after the last token, so that the last token is fed too
    req.stop_at_eos = false;
    req.kv = a->kv;
    req.ctx = (int64_t)ids.size() + 2;
    req.prefill_chunk = a->chunk;
    if (a->all) req.observe_from = 0;
    req.on_logits = [&](int64_t, const float* row) {
      if (a->argmax_only) {  // long teacher-forced decodes: full rows would be n_vocab floats each
        const int32_t best = (int32_t)(std::max_element(row, row + n_vocab) - row);
        out.write(reinterpret_cast<const char*>(&best), sizeof best);
      } else {
        out.write(reinterpret_cast<const char*>(row), sizeof(float) * n_vocab);
      }
    };
    run_one(*model, std::move(req));
    if (!out) throw Error("write failed: " + a->out);
  });
}

struct PplArgs {
  std::string model, file;
  int ctx = 2048, threads = 0;
  bool json = false;
  KvOptions kv;
};

void register_perplexity(CLI::App& app) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity",
      "perplexity of a text file as llama.cpp computes it (BOS per window if the model adds one, second half scored)");
  add_model_option(cmd, a->model);
  cmd->add_option("-f,--file", a->file, "text file")->required();
  cmd->add_option("-c,--ctx", a->ctx, "window size in tokens")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads");
  cmd->add_flag("--json", a->json, "print JSON");
  add_kv_flags(cmd, a->kv);
  cmd->callback([a] {
    set_threads(a->threads);
    auto model = Model::load(resolve_model(a->model));
    const auto ids = model->tokenizer().encode(read_file(a->file), true);
    const PerplexityResult r = perplexity(*model, ids, a->ctx, a->kv);
    if (a->json) {
      std::cout << nlohmann::json{{"perplexity", r.perplexity},       {"mean_nll", r.mean_nll},
                                  {"scored_tokens", r.scored_tokens}, {"windows", r.windows},
                                  {"text_tokens", ids.size()},        {"seconds", r.seconds}}
                       .dump()
                << std::endl;
    } else {
      std::printf("perplexity %.4f over %lld scored tokens (%d windows of %d, text %zu tokens) in %.1f s\n",
                  r.perplexity, (long long)r.scored_tokens, r.windows, a->ctx, ids.size(), r.seconds);
    }
  });
}

}  // namespace

void register_tools(CLI::App& app) {
  register_models(app);
  register_inspect(app);
  register_tokenize(app);
  register_logits(app);
  register_perplexity(app);
}

}  // namespace shadowkv::cli
