// The tokenizer description read from GGUF metadata, kept separate so tokenizers can also be built from a vocabulary
// made in code (unit tests).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace shadowkv {

struct TokenizerVocab {
  std::string model = "llama";  // tokenizer.ggml.model
  std::string pre = "default";  // tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<TokenType> types;     // empty = all Normal
  std::vector<float> scores;        // empty = all 0
  std::vector<std::string> merges;  // "left right", rank = index
  int32_t bos = -1, eos = -1, unk = -1, eot = -1, eom = -1;
  std::optional<bool> add_bos, add_space_prefix;
  std::string chat_template;  // tokenizer.chat_template (Jinja source), empty if none
};

TokenizerVocab read_vocab(const GgufFile& file);
// Builds the tokenizer for v.model; throws Error naming an unsupported model or pre-tokenizer.
std::unique_ptr<Tokenizer> make_tokenizer(TokenizerVocab v);

}  // namespace shadowkv
