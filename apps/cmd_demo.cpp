// `shadowkv demo`: the long-context showcase. A few thousand tokens of Jane Austen with one extra detail planted
// deep inside, a question about that detail, answered with `full` and with `--kv` (default `shadowkv`), side by side:
// the answer, the KV memory per tier and the decode speed.
#include <cstdio>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "eval/text_sources.h"
#include "model/model.h"
#include "runtime/generator.h"
#include "util/error.h"

namespace shadowkv::cli {
namespace {

constexpr const char* kDetail =
    "Mrs. Jennings kept the key to the old oak chest hidden inside a blue china teapot on the library mantelpiece.";
constexpr const char* kQuestion = "Where did Mrs. Jennings keep the key to the old oak chest?";
constexpr const char* kAnswerPrefix = "Mrs. Jennings kept the key to the old oak chest hidden inside a";
constexpr const char* kExpected = "teapot";

struct DemoArgs {
  std::string model;
  int64_t tokens = 6000;
  double depth = 0.6;
  int threads = 0;
  KvOptions skv{"shadowkv"};  // the policy compared with full (--kv)
};

std::string build_prompt(const Tokenizer& tok, int64_t target_tokens, double depth) {
  const eval::Corpus& c = eval::austen_corpus();
  // Take whole sentences until the haystack reaches the target (tokens estimated per word, then checked).
  std::vector<std::string> hay;
  int64_t words = 0;
  for (size_t i = 0; i < c.sentences.size() && words < target_tokens * 3 / 4; ++i) {
    hay.push_back(c.sentences[i]);
    words += c.sentence_words[i];
  }
  hay.insert(hay.begin() + (int64_t)(depth * hay.size()), kDetail);
  auto assemble = [&](size_t n) {
    std::string doc;
    for (size_t i = 0; i < n; ++i) doc += (i ? " " : "") + hay[i];
    return "Read the following passage from Jane Austen's novels, then answer the question about it.\n\n" + doc +
           "\n\nQuestion: " + kQuestion + "\nAnswer: " + kAnswerPrefix;
  };
  size_t n = hay.size();
  while (n > 1 && (int64_t)tok.encode(assemble(n), true).size() > target_tokens) n = n * 97 / 100;
  return assemble(n);
}

void demo(const DemoArgs& a) {
  set_threads(a.threads);
  if (a.tokens < 512) throw Error("--tokens must be at least 512");
  if (!(a.depth > 0 && a.depth < 1)) throw Error("--depth must be between 0 and 1");
  auto model = Model::load(resolve_model(a.model));
  const std::string prompt_text = build_prompt(model->tokenizer(), a.tokens, a.depth);
  const auto prompt = model->tokenizer().encode(prompt_text, true);
  std::printf(
      "Document: %lld tokens of Jane Austen (Debian r-cran-janeaustenr), with one planted detail at %.0f%%:\n"
      "  \"%s\"\nQuestion: %s\n\n",
      (long long)prompt.size(), a.depth * 100, kDetail, kQuestion);
  Generator gen(*model);
  struct Row {
    std::string policy;
    Generation g;
  };
  std::vector<Row> rows;
  for (const KvOptions& kv : {KvOptions("full"), a.skv}) {
    GenerateOptions o;
    o.n_predict = 8;
    o.sampling.temperature = 0;
    o.kv = kv;
    std::fprintf(stderr, "running %s ...\n", kv.policy.c_str());
    rows.push_back({kv.policy, gen.generate({prompt}, o)[0]});
  }
  std::printf("%-9s | %-28s | %7s | %9s | %9s | %10s | %10s | %10s\n", "policy", "answer", "correct", "prefill/s",
              "decode/s", "KV total", "KV hot", "KV cold");
  for (const Row& r : rows) {
    std::string ans = kAnswerPrefix + r.g.text;
    ans = "..." + ans.substr(ans.size() > 28 ? ans.size() - 25 : 0);
    for (char& ch : ans)
      if (ch == '\n') ch = ' ';
    const GenerationStats& s = r.g.stats;
    std::printf("%-9s | %-28s | %7s | %9.1f | %9.2f | %10s | %10s | %10s\n", r.policy.c_str(), ans.c_str(),
                r.g.text.find(kExpected) != std::string::npos ? "yes" : "no", s.prefill_tok_s(), s.decode_tok_s(),
                human_bytes(s.kv.total()).c_str(), human_bytes(s.kv.hot).c_str(), human_bytes(s.kv.cold).c_str());
  }
  const GenerationStats& s = rows[1].g.stats;
  std::printf("\n%s KV parts:", a.skv.policy.c_str());
  for (const auto& [name, bytes] : s.kv.parts) std::printf(" %s=%s", name.c_str(), human_bytes(bytes).c_str());
  std::printf("\n%s hot tier is %.1f%% of full's KV (%s vs %s); cold tier %s\n", a.skv.policy.c_str(),
              100.0 * s.kv.hot / std::max<int64_t>(1, rows[0].g.stats.kv.total()), human_bytes(s.kv.hot).c_str(),
              human_bytes(rows[0].g.stats.kv.total()).c_str(), human_bytes(s.kv.cold).c_str());
}

}  // namespace

void register_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand("demo", "long-context demo: a question about a detail deep in a long document");
  add_model_option(cmd, a->model);
  cmd->add_option("--tokens", a->tokens, "document length in tokens")->capture_default_str();
  cmd->add_option("--depth", a->depth, "where the detail sits (0..1)")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads");
  add_kv_flags(cmd, a->skv);
  cmd->callback([a] { demo(*a); });
}

}  // namespace shadowkv::cli
