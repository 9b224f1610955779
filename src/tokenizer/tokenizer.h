// Tokenizers built from a GGUF file's vocabulary: SentencePiece-style (tokenizer.ggml.model = "llama", used by
// Gemma and Llama 1/2) and byte-level BPE ("gpt2", used by Llama 3 and Qwen2 with their pre-tokenizer regexes).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shadowkv {

class GgufFile;
struct TokenizerVocab;  // tokenizer/vocab.h

enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Tokenizer {
 public:
  // Throws shadowkv::Error for an unsupported tokenizer model / pre-tokenizer or a malformed vocabulary.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
  virtual ~Tokenizer() = default;
  // Not copyable: the lookup tables hold views into tokens_.
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Encodes text. add_bos: prepend BOS if the model wants it (tokenizer.ggml.add_bos_token).
  // parse_special: recognise control-token text such as "<start_of_turn>" (chat templates); user-defined
  // tokens are always recognised.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const = 0;

  // Text of one token as it should be appended to the output (control tokens give ""). Byte tokens give their
  // raw byte, so a multi-byte character may arrive split over several calls: use StreamDecoder for streaming.
  virtual std::string token_to_piece(int32_t id) const = 0;
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token_text(int32_t id) const { return tokens_.at(id); }
  TokenType token_type(int32_t id) const { return types_.at(id); }
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  // Token id for an exact token text, or -1.
  int32_t find_token(std::string_view text) const;
  // Ids that end generation: eos plus end-of-turn tokens (<end_of_turn>, <|eot_id|>, <|im_end|>, <|eom_id|>).
  const std::vector<int32_t>& stop_tokens() const { return stop_; }
  bool is_stop(int32_t id) const;
  // Whether encode(text, add_bos = true) really prepends BOS (tokenizer.ggml.add_bos_token / pre-type default).
  bool add_bos_default() const { return add_bos_default_; }
  // The model's tokenizer.chat_template (Jinja source) or "" (runtime/chat_template reads what it needs from it).
  const std::string& chat_template() const { return chat_template_; }

 protected:
  Tokenizer() = default;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  int32_t bos_ = -1, eos_ = -1;
  bool add_bos_default_ = true;
  std::string chat_template_;
  std::vector<int32_t> stop_;
  std::unordered_map<std::string_view, int32_t> token_ids_;  // views into tokens_, which never changes after init
  bool strip_leading_space_ = false;                         // decode drops the space an SPM space-prefix added
  // Takes over the vocabulary, checks ids, builds token_ids_ and stop_.
  void init_base(TokenizerVocab& v);
};

// Accumulates token pieces and releases only complete UTF-8 sequences.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);  // the newly complete text (possibly empty)
  std::string flush();           // whatever is left (invalid bytes become U+FFFD)

 private:
  std::string drain(bool final);
  const Tokenizer& tok_;
  std::string pending_;
};

}  // namespace shadowkv
