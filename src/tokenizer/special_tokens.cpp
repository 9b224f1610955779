#include "tokenizer/special_tokens.h"

namespace shadowkv {

int32_t SpecialTokenMatcher::child(int32_t node, uint8_t b) const {
  auto it = edges_.find((static_cast<uint64_t>(node) << 8) | b);
  return it == edges_.end() ? -1 : it->second;
}

void SpecialTokenMatcher::add(std::string_view text, int32_t id, bool always) {
  if (text.empty()) return;
  int32_t node = 0;
  for (unsigned char c : text) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | c;
    auto it = edges_.find(key);
    if (it == edges_.end()) {
      nodes_.push_back(Node{});
      it = edges_.emplace(key, static_cast<int32_t>(nodes_.size() - 1)).first;
    }
    node = it->second;
  }
  first_byte_[static_cast<unsigned char>(text[0])] = true;
  Node& n = nodes_[node];
  // Duplicate texts: keep the first id, but let an always-on entry win so user-defined tokens stay recognised.
  if (n.id < 0 || (always && !n.always)) {
    n.id = id;
    n.always = always;
  }
}

std::vector<SpecialTokenMatcher::Piece> SpecialTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<Piece> out;
  size_t frag_start = 0, i = 0;
  while (i < text.size()) {
    int32_t best_id = -1;
    size_t best_len = 0;
    if (first_byte_[static_cast<unsigned char>(text[i])]) {
      int32_t node = 0;
      for (size_t j = i; j < text.size(); ++j) {
        node = child(node, static_cast<unsigned char>(text[j]));
        if (node < 0) break;
        const Node& n = nodes_[node];
        if (n.id >= 0 && (n.always || parse_special)) {
          best_id = n.id;
          best_len = j - i + 1;
        }
      }
    }
    if (best_id < 0) {
      ++i;
      continue;
    }
    if (i > frag_start) out.push_back({text.substr(frag_start, i - frag_start), -1});
    out.push_back({text.substr(i, best_len), best_id});
    i += best_len;
    frag_start = i;
  }
  if (frag_start < text.size()) out.push_back({text.substr(frag_start), -1});
  return out;
}

}  // namespace shadowkv
