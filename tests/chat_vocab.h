// Small vocabularies for the chat-format tests and fuzz targets: one format's marker tokens, a few words, bytes.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace shadowkv {

// Chat formats by kind: 0 Gemma turns, 1 Llama 3 headers, 2 ChatML, 3 none. Marker tokens of each (the first one
// opens every turn) and the assistant header a rendered prompt ends with.
inline const char* const kChatMarkers[3][3] = {
    {"<start_of_turn>", "<end_of_turn>", nullptr},
    {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
    {"<|im_start|>", "<|im_end|>", nullptr},
};
inline const char* const kChatEnds[3] = {"<start_of_turn>model\n", "<|start_header_id|>assistant<|end_header_id|>\n\n",
                                         "<|im_start|>assistant\n"};

// A vocabulary of the format `kind` (BOS token if with_bos) whose model template is `jinja`.
inline std::unique_ptr<Tokenizer> make_chat_vocab(int kind, bool with_bos, const std::string& jinja) {
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
    for (const char* m : kChatMarkers[kind])
      if (m) add(m, TokenType::Control);
  for (const char* p : {"user", "model", "assistant", "system", "\n", "a", "e"}) add(p, TokenType::Normal);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, TokenType::Byte);
  }
  return make_tokenizer(v);
}

}  // namespace shadowkv
