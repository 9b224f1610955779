// Byte-level BPE (tokenizer.ggml.model = "gpt2": Llama 3, Qwen2): regex pre-tokenizer (PCRE2, UTF + UCP), GPT-2 byte
// alphabet, merges ranked by their index.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace shadowkv {

class PreTokenizerRegex;

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(TokenizerVocab& v);
  ~BpeTokenizer() override;
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const override;
  std::string token_to_piece(int32_t id) const override;

  // The regex used for a pre-tokenizer name; throws Error for an unknown one.
  static const char* regex_for_pre(const std::string& pre);

 private:
  // Encodes one pre-token (raw bytes) and appends its ids.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::unique_ptr<PreTokenizerRegex> regex_;
  bool ignore_merges_ = false;
  int32_t unk_ = -1;
  int32_t byte_ids_[256];  // token of the one-character alphabet string of each byte, or -1
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::vector<std::string> decoded_;  // token_to_piece of every id, precomputed
  SpecialTokenMatcher specials_;
};

}  // namespace shadowkv
