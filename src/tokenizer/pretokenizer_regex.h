// A compiled PCRE2 pre-tokenizer pattern (UTF + UCP, JIT when available). Splitting keeps every byte: text between
// matches (e.g. invalid UTF-8, which never matches) becomes a piece of its own, as HF's "isolated" Split does.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace shadowkv {

class PreTokenizerRegex {
 public:
  explicit PreTokenizerRegex(const std::string& pattern);
  ~PreTokenizerRegex();
  PreTokenizerRegex(const PreTokenizerRegex&) = delete;
  PreTokenizerRegex& operator=(const PreTokenizerRegex&) = delete;

  // Appends the pieces of text, in order; their concatenation is text.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace shadowkv
