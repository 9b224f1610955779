// SentencePiece-style BPE over a scored vocabulary (tokenizer.ggml.model = "llama": Gemma, Llama 1/2).
#pragma once
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/piece_index.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace shadowkv {

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(TokenizerVocab& v);
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const override;
  std::string token_to_piece(int32_t id) const override;

 private:
  // Merges one fragment (spaces already escaped to U+2581) and appends its ids.
  void encode_fragment(std::string_view frag, std::vector<int32_t>& out) const;
  void emit_bytes(std::string_view s, std::vector<int32_t>& out) const;

  std::vector<float> scores_;
  // Pieces a merge may produce, keyed by their escaped text: what SentencePiece keeps in its piece table
  // (normal, user-defined and unused pieces; control, unknown and byte pieces are reserved and never merged).
  PieceIndex pieces_;
  std::deque<std::string> escaped_storage_;  // escaped copies of pieces whose GGUF text has plain spaces
  int32_t byte_ids_[256];
  int32_t unk_ = -1;
  bool add_space_prefix_ = true;
  SpecialTokenMatcher specials_;
};

}  // namespace shadowkv
