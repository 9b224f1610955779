#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "io/gguf.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace shadowkv {

namespace {

int32_t read_id(const GgufFile& f, const std::string& key) {
  auto v = f.get_int(key);
  return v ? static_cast<int32_t>(*v) : -1;
}

}  // namespace

TokenizerVocab read_vocab(const GgufFile& f) {
  TokenizerVocab v;
  v.model = f.require_string("tokenizer.ggml.model");
  v.pre = f.get_string("tokenizer.ggml.pre").value_or("default");
  const GgufValue* toks = f.find("tokenizer.ggml.tokens");
  if (!toks || !toks->is_array() || toks->elem_type != GgufValueType::STRING)
    throw Error(f.path() + ": tokenizer.ggml.tokens is missing or not a string array");
  v.tokens = toks->strs;
  const size_t n = v.tokens.size();
  if (const GgufValue* s = f.find("tokenizer.ggml.scores")) {
    if (!s->is_array() || s->array_size() != n)
      throw Error(f.path() + ": tokenizer.ggml.scores must be an array of " + std::to_string(n) + " numbers");
    v.scores.reserve(n);
    if (!s->nums.empty())
      for (double x : s->nums) v.scores.push_back(static_cast<float>(x));
    else
      for (int64_t x : s->ints) v.scores.push_back(static_cast<float>(x));
  }
  if (const GgufValue* t = f.find("tokenizer.ggml.token_type")) {
    if (!t->is_array() || t->ints.size() != n)
      throw Error(f.path() + ": tokenizer.ggml.token_type must be an integer array of " + std::to_string(n));
    v.types.reserve(n);
    for (int64_t x : t->ints) {
      if (x < 1 || x > 6) throw Error(f.path() + ": tokenizer.ggml.token_type has invalid value " + std::to_string(x));
      v.types.push_back(static_cast<TokenType>(x));
    }
  }
  if (const GgufValue* m = f.find("tokenizer.ggml.merges")) {
    if (!m->is_array() || m->elem_type != GgufValueType::STRING)
      throw Error(f.path() + ": tokenizer.ggml.merges is not a string array");
    v.merges = m->strs;
  }
  v.bos = read_id(f, "tokenizer.ggml.bos_token_id");
  v.eos = read_id(f, "tokenizer.ggml.eos_token_id");
  v.unk = read_id(f, "tokenizer.ggml.unknown_token_id");
  v.eot = read_id(f, "tokenizer.ggml.eot_token_id");
  v.eom = read_id(f, "tokenizer.ggml.eom_token_id");
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token");
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  v.chat_template = f.get_string("tokenizer.chat_template").value_or("");
  return v;
}

std::unique_ptr<Tokenizer> make_tokenizer(TokenizerVocab v) {
  if (v.tokens.empty()) throw Error("tokenizer vocabulary is empty");
  if (v.model == "llama") return std::make_unique<SpmTokenizer>(v);
  if (v.model == "gpt2") return std::make_unique<BpeTokenizer>(v);
  throw Error("unsupported tokenizer model '" + v.model + "' (supported: llama, gpt2)");
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) { return make_tokenizer(read_vocab(file)); }

void Tokenizer::init_base(TokenizerVocab& v) {
  const size_t n = v.tokens.size();
  if (n > static_cast<size_t>(INT32_MAX)) throw Error("tokenizer vocabulary is too large");
  if (!v.types.empty() && v.types.size() != n) throw Error("tokenizer token_type count differs from token count");
  if (!v.scores.empty() && v.scores.size() != n) throw Error("tokenizer scores count differs from token count");
  tokens_ = std::move(v.tokens);
  types_ = v.types.empty() ? std::vector<TokenType>(n, TokenType::Normal) : std::move(v.types);
  auto check = [&](int32_t& id, const char* what) {
    if (id >= static_cast<int32_t>(n))
      throw Error(std::string("tokenizer ") + what + " id " + std::to_string(id) + " is out of range (vocab " +
                  std::to_string(n) + ")");
    if (id < 0) id = -1;
  };
  check(v.bos, "bos");
  check(v.eos, "eos");
  check(v.unk, "unknown");
  check(v.eot, "eot");
  check(v.eom, "eom");
  bos_ = v.bos;
  eos_ = v.eos;
  chat_template_ = std::move(v.chat_template);
  token_ids_.reserve(n);
  // First id wins for duplicate texts.
  for (size_t i = 0; i < n; ++i) token_ids_.emplace(tokens_[i], static_cast<int32_t>(i));

  stop_.clear();
  auto add_stop = [&](int32_t id) {
    if (id >= 0 && std::find(stop_.begin(), stop_.end(), id) == stop_.end()) stop_.push_back(id);
  };
  add_stop(eos_);
  add_stop(v.eot);
  add_stop(v.eom);
  for (const char* t : {"<end_of_turn>", "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end_of_text|>"})
    add_stop(find_token(t));
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = token_ids_.find(text);
  return it == token_ids_.end() ? -1 : it->second;
}

bool Tokenizer::is_stop(int32_t id) const { return std::find(stop_.begin(), stop_.end(), id) != stop_.end(); }

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool first_text = true;
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id);
    if (piece.empty()) continue;
    if (first_text && strip_leading_space_ && piece[0] == ' ') piece.erase(0, 1);
    first_text = false;
    out += piece;
  }
  return out;
}

// Releases the longest prefix of pending_ made of complete characters; a byte that can never start or continue a
// valid sequence is released as U+FFFD so one bad byte cannot stall the stream. At the end of the stream (final)
// a truncated sequence is released as one U+FFFD too.
std::string StreamDecoder::drain(bool final) {
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    size_t n = unicode::valid_utf8_len(pending_, i);
    if (n) {
      out.append(pending_, i, n);
      i += n;
    } else if (unicode::is_incomplete_utf8(pending_, i)) {
      if (final) {
        out += "\xEF\xBF\xBD";
        i = pending_.size();
      }
      break;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_to_piece(id);
  return drain(false);
}

std::string StreamDecoder::flush() { return drain(true); }

}  // namespace shadowkv
