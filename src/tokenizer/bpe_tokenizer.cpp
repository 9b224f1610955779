#include "tokenizer/bpe_tokenizer.h"

#include <cstdio>
#include <queue>

#include "tokenizer/pretokenizer_regex.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace shadowkv {

namespace {

// The HF patterns, verbatim (PCRE2 understands the (?i:...) group and the (?!\S) lookahead).
constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

bool is_llama3(const std::string& pre) { return pre == "llama-bpe" || pre == "llama3"; }

std::string to_alphabet(std::string_view bytes) {
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) unicode::append_utf8(s, unicode::byte_to_codepoint(c));
  return s;
}

}  // namespace

const char* BpeTokenizer::regex_for_pre(const std::string& pre) {
  if (is_llama3(pre)) return kLlama3Regex;
  if (pre == "qwen2") return kQwen2Regex;
  if (pre == "default" || pre == "gpt2" || pre == "gpt-2" || pre.empty()) return kGpt2Regex;
  throw Error("unsupported BPE pre-tokenizer '" + pre + "' (supported: llama-bpe, llama3, qwen2, default, gpt2)");
}

BpeTokenizer::BpeTokenizer(TokenizerVocab& v) {
  regex_ = std::make_unique<PreTokenizerRegex>(regex_for_pre(v.pre));
  ignore_merges_ = is_llama3(v.pre);
  add_bos_default_ = v.add_bos.value_or(v.pre != "qwen2");
  unk_ = v.unk;
  std::vector<std::string> merges = std::move(v.merges);
  init_base(v);
  if (merges.empty()) throw Error("BPE tokenizer has no tokenizer.ggml.merges");

  for (int b = 0; b < 256; ++b) {
    std::string ch;
    unicode::append_utf8(ch, unicode::byte_to_codepoint(static_cast<uint8_t>(b)));
    byte_ids_[b] = find_token(ch);
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    const size_t sp = m.find(' ', 1);  // the left part is never empty, so a leading space would be malformed
    if (sp == std::string::npos || sp + 1 >= m.size())
      throw Error("malformed BPE merge #" + std::to_string(rank) + ": '" + m + "'");
    const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
    const int32_t l = find_token(left), r = find_token(right);
    std::string joined(left);
    joined += right;
    const int32_t merged = find_token(joined);
    // A merge whose parts or result are not tokens can never be used to produce a token; HF refuses such files.
    if (l < 0 || r < 0 || merged < 0) continue;
    merges_.emplace((static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r),
                    std::make_pair(static_cast<int32_t>(rank), merged));
  }

  decoded_.resize(tokens_.size());
  for (int32_t id = 0; id < n_vocab(); ++id) {
    const std::string& text = tokens_[id];
    switch (types_[id]) {
      case TokenType::Control:
        break;
      case TokenType::UserDefined:
        decoded_[id] = text;
        specials_.add(text, id, /*always=*/true);
        break;
      case TokenType::Unknown:
        decoded_[id] = text;
        specials_.add(text, id, /*always=*/false);
        break;
      default: {
        // Map alphabet code points back to bytes; anything outside the alphabet is kept as its UTF-8.
        std::string& out = decoded_[id];
        for (size_t i = 0; i < text.size();) {
          const size_t n = unicode::valid_utf8_len(text, i);
          if (n == 0) {
            out += text[i++];
            continue;
          }
          const int b = unicode::codepoint_to_byte(unicode::decode_utf8(text, i, n));
          if (b >= 0)
            out += static_cast<char>(b);
          else
            out.append(text, i, n);
          i += n;
        }
      }
    }
    if (types_[id] == TokenType::Control) specials_.add(text, id, /*always=*/false);
  }
}

BpeTokenizer::~BpeTokenizer() = default;

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && add_bos_default_ && bos_ >= 0) out.push_back(bos_);
  std::vector<std::string_view> words;
  for (const auto& piece : specials_.split(text, parse_special)) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      continue;
    }
    words.clear();
    regex_->split(piece.text, words);
    for (std::string_view w : words) encode_word(w, out);
  }
  return out;
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t whole = find_token(to_alphabet(word));
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }
  struct Sym {
    int32_t id, prev, next;
  };
  std::vector<Sym> syms(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    const auto c = static_cast<unsigned char>(word[i]);
    int32_t id = byte_ids_[c] >= 0 ? byte_ids_[c] : unk_;
    if (id < 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      throw Error(std::string("tokenizer cannot encode byte ") + hex + ": no byte token and no unknown token");
    }
    syms[i] = {id, static_cast<int32_t>(i) - 1, static_cast<int32_t>(i) + 1};
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Cand {
    int32_t rank, left, right, lid, rid, merged;
  };
  // Lowest rank first; on equal ranks the leftmost pair.
  auto worse = [](const Cand& a, const Cand& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    auto it = merges_.find((static_cast<uint64_t>(syms[l].id) << 32) | static_cast<uint32_t>(syms[r].id));
    if (it == merges_.end()) return;
    heap.push({it->second.first, l, r, syms[l].id, syms[r].id, it->second.second});
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) try_pair(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    Sym& r = syms[c.right];
    if (l.id != c.lid || r.id != c.rid || l.next != c.right) continue;  // stale
    l.id = c.merged;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.id = -1;
    r.prev = r.next = -1;
    try_pair(l.prev, c.left);
    try_pair(c.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

std::string BpeTokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= n_vocab()) throw Error("token id " + std::to_string(id) + " is out of range");
  return decoded_[id];
}

}  // namespace shadowkv
