#include "tokenizer/spm_tokenizer.h"

#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace shadowkv {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// "<0xAB>" -> 0xAB, or -1.
int parse_byte_piece(std::string_view s) {
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = s[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

SpmTokenizer::SpmTokenizer(TokenizerVocab& v) {
  const bool have_scores = !v.scores.empty();
  scores_ = have_scores ? v.scores : std::vector<float>(v.tokens.size(), 0.0f);
  unk_ = v.unk;
  add_space_prefix_ = v.add_space_prefix.value_or(true);
  add_bos_default_ = v.add_bos.value_or(true);
  init_base(v);
  if (unk_ >= n_vocab()) unk_ = -1;
  strip_leading_space_ = add_space_prefix_;

  for (int& b : byte_ids_) b = -1;
  pieces_.reserve(tokens_.size());
  for (int32_t id = 0; id < n_vocab(); ++id) {
    const std::string& text = tokens_[id];
    const TokenType type = types_[id];
    if (type == TokenType::Byte) {
      const int b = parse_byte_piece(text);
      if (b >= 0 && byte_ids_[b] < 0) byte_ids_[b] = id;
      continue;
    }
    if (text.empty()) continue;
    std::string_view key = text;
    if (text.find(' ') != std::string::npos) {
      escaped_storage_.push_back(unicode::replace_all(text, " ", kSpace));
      key = escaped_storage_.back();
    }
    if (type == TokenType::Normal || type == TokenType::UserDefined || type == TokenType::Unused) {
      pieces_.insert(key, id);
    }
    if (type == TokenType::UserDefined) specials_.add(key, id, /*always=*/true);
    if (type == TokenType::Control || type == TokenType::Unknown) specials_.add(key, id, /*always=*/false);
  }
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && add_bos_default_ && bos_ >= 0) out.push_back(bos_);
  const std::string escaped = unicode::replace_all(text, " ", kSpace);
  bool after_special = true;
  std::string tmp;
  for (const auto& piece : specials_.split(escaped, parse_special)) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      after_special = true;
      continue;
    }
    if (add_space_prefix_ && after_special) {
      tmp.assign(kSpace);
      tmp.append(piece.text);
      encode_fragment(tmp, out);
    } else {
      encode_fragment(piece.text, out);
    }
    after_special = false;
  }
  return out;
}

void SpmTokenizer::emit_bytes(std::string_view s, std::vector<int32_t>& out) const {
  for (unsigned char c : s) {
    int32_t id = byte_ids_[c] >= 0 ? byte_ids_[c] : unk_;
    if (id < 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      throw Error(std::string("tokenizer cannot encode byte ") + hex + ": no byte token and no unknown token");
    }
    out.push_back(id);
  }
}

void SpmTokenizer::encode_fragment(std::string_view frag, std::vector<int32_t>& out) const {
  if (frag.empty()) return;
  // Doubly linked list of symbols over frag; a merge grows the left symbol and unlinks the right one.
  struct Sym {
    int32_t prev, next;
    uint32_t off, len;
    int32_t node;  // merge-tree node, to split unused pieces back into their parts
  };
  struct Node {
    int32_t left, right;
    uint32_t off, len;
  };
  std::vector<Sym> syms;
  std::vector<Node> nodes;
  syms.reserve(frag.size());
  for (size_t i = 0; i < frag.size();) {
    const size_t n = unicode::char_len(frag, i);
    const auto idx = static_cast<int32_t>(syms.size());
    syms.push_back({idx - 1, idx + 1, static_cast<uint32_t>(i), static_cast<uint32_t>(n), idx});
    nodes.push_back({-1, -1, static_cast<uint32_t>(i), static_cast<uint32_t>(n)});
    i += n;
  }
  syms.back().next = -1;

  struct Cand {
    float score;
    int32_t left, right;
    uint32_t len;
  };
  // Highest score first; on equal scores the leftmost pair.
  auto worse = [](const Cand& a, const Cand& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint32_t len = syms[l].len + syms[r].len;
    const int32_t id = pieces_.find(frag.substr(syms[l].off, len));
    if (id < 0) return;
    heap.push({scores_[id], l, r, len});
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) try_pair(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));

  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    Sym& r = syms[c.right];
    // Stale if either side was consumed or has grown since the pair was queued.
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len) continue;
    nodes.push_back({l.node, r.node, l.off, c.len});
    l.node = static_cast<int32_t>(nodes.size() - 1);
    l.len = c.len;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.len = 0;
    try_pair(l.prev, c.left);
    try_pair(c.left, l.next);
  }

  // Emit, splitting unused pieces back into their parts and falling back to bytes for unknown symbols.
  std::vector<int32_t> stack;
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    stack.push_back(syms[i].node);
    while (!stack.empty()) {
      const Node nd = nodes[stack.back()];
      stack.pop_back();
      const std::string_view text = frag.substr(nd.off, nd.len);
      const int32_t id = pieces_.find(text);
      if (id < 0) {
        emit_bytes(text, out);
      } else if (types_[id] == TokenType::Unused && nd.left >= 0) {
        stack.push_back(nd.right);
        stack.push_back(nd.left);
      } else {
        out.push_back(id);
      }
    }
  }
}

std::string SpmTokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= n_vocab()) throw Error("token id " + std::to_string(id) + " is out of range");
  const std::string& text = tokens_[id];
  switch (types_[id]) {
    case TokenType::Control:
      return "";
    case TokenType::Unknown:
      return "\xE2\x96\x85";  // a visible box, as llama.cpp prints
    case TokenType::Byte: {
      const int b = parse_byte_piece(text);
      return b >= 0 ? std::string(1, static_cast<char>(b)) : text;
    }
    default:
      return text.find(kSpace) == std::string::npos ? text : unicode::replace_all(text, kSpace, " ");
  }
}

}  // namespace shadowkv
