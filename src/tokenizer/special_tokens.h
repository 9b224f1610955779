// Splits text on the literal strings of special tokens before the model tokenizer runs. Matching scans left to
// right and takes the longest token starting at each position (the "leftmost-longest" rule of SentencePiece's
// user-defined symbols and of HF added tokens).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shadowkv {

class SpecialTokenMatcher {
 public:
  // always: matched on every encode (user-defined tokens); otherwise only when parse_special is on (control).
  void add(std::string_view text, int32_t id, bool always);

  struct Piece {
    std::string_view text;  // a raw fragment (id < 0) or the matched text of a special token
    int32_t id = -1;
  };
  std::vector<Piece> split(std::string_view text, bool parse_special) const;

 private:
  // Byte trie: edges keyed by (node << 8 | byte).
  struct Node {
    int32_t id = -1;
    bool always = false;
  };
  int32_t child(int32_t node, uint8_t b) const;
  std::vector<Node> nodes_{Node{}};
  std::unordered_map<uint64_t, int32_t> edges_;
  bool first_byte_[256] = {};
};

}  // namespace shadowkv
