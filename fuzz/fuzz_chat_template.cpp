// libFuzzer target: chat-template rendering (src/runtime/chat_template.h) on arbitrary input. The renderer takes one
// user turn and the model's Jinja template (for ChatML's default system turn), and picks the format from the marker
// tokens in the vocabulary. Input: byte 0 picks the vocabulary (Gemma turns, Llama 3 headers, ChatML, none) and
// whether it has a BOS; the rest is split at the first NUL into the Jinja template and the user text.
// Properties: the user text appears verbatim; a recognised format wraps it in its markers and ends with the
// assistant/model header; ChatML's default system message is a literal substring of the template with no quote,
// brace, '+' or backslash; the rendered prompt encodes (parse_special) to in-range ids, with the format's
// markers as single tokens.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

using namespace shadowkv;

namespace {

[[noreturn]] void fail(const char* what, const std::string& s) {
  std::fprintf(stderr, "fuzz_chat_template: %s: \"%s\"\n", what, s.substr(0, 200).c_str());
  std::abort();
}

const char* const kMarkers[3][3] = {
    {"<start_of_turn>", "<end_of_turn>", nullptr},
    {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
    {"<|im_start|>", "<|im_end|>", nullptr},
};
const char* const kEnds[3] = {"<start_of_turn>model\n", "<|start_header_id|>assistant<|end_header_id|>\n\n",
                              "<|im_start|>assistant\n"};

std::unique_ptr<Tokenizer> make_vocab(int kind, bool with_bos, const std::string& jinja) {
  TokenizerVocab v;
  v.model = "llama";
  v.add_space_prefix = false;
  v.add_bos = false;
  v.chat_template = jinja;
  auto add = [&](const std::string& text, TokenType type) {
    v.tokens.push_back(text);
    v.scores.push_back(0);
    v.types.push_back(type);
    return static_cast<int32_t>(v.tokens.size() - 1);
  };
  if (with_bos) v.bos = add(kind == 1 ? "<|begin_of_text|>" : "<bos>", TokenType::Control);
  if (kind < 3)
    for (const char* m : kMarkers[kind])
      if (m) add(m, TokenType::Control);
  for (const char* p : {"user", "model", "assistant", "system", "\n", "a", "e"}) add(p, TokenType::Normal);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, TokenType::Byte);
  }
  return make_tokenizer(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int kind = data[0] % 4;
  const bool with_bos = data[0] & 0x10;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = rest.find('\0');
  const std::string jinja = nul == std::string::npos ? rest : rest.substr(0, nul);
  const std::string user = nul == std::string::npos ? "" : rest.substr(nul + 1);

  // The default-system extraction on its own.
  const std::string system = chatml_default_system(jinja);
  if (!system.empty()) {
    if (jinja.find(system) == std::string::npos) fail("default system not in the template", system);
    if (system.find_first_of("'\"{}+\\") != std::string::npos) fail("default system is not a literal", system);
  }

  const auto tok = make_vocab(kind, with_bos, jinja);
  bool applied = false;
  const std::string prompt = apply_chat_template(*tok, user, &applied);
  if (applied != (kind < 3)) fail("format detection", prompt);
  if (prompt.find(user) == std::string::npos) fail("user text missing", prompt);
  if (kind == 3) {
    if (prompt != user) fail("no template must return the text unchanged", prompt);
  } else {
    const std::string end = kEnds[kind];
    if (prompt.size() < end.size() || prompt.compare(prompt.size() - end.size(), end.size(), end) != 0)
      fail("prompt does not end with the assistant header", prompt);
    if (with_bos && kind < 2 && prompt.rfind(tok->token_text(tok->bos()), 0) != 0) fail("BOS missing", prompt);
    if (kind == 2 && !system.empty() && prompt.rfind("<|im_start|>system\n" + system + "<|im_end|>\n", 0) != 0)
      fail("ChatML system turn missing", prompt);
  }
  const std::vector<int32_t> ids = tok->encode(prompt, /*add_bos=*/false, /*parse_special=*/true);
  for (int32_t id : ids)
    if (id < 0 || id >= tok->n_vocab()) fail("id out of range", prompt);
  if (kind < 3) {
    // The closing header is made of marker tokens, whatever the user wrote.
    const int32_t open = tok->find_token(kMarkers[kind][0]);
    size_t n_open = 0;
    for (int32_t id : ids) n_open += id == open;
    if (n_open < 1) fail("opening marker not encoded as its token", prompt);
  }
  return 0;
}
