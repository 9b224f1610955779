#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer_regex.h"

#include <pcre2.h>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace shadowkv {

PreTokenizerRegex::PreTokenizerRegex(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // MATCH_INVALID_UTF: arbitrary bytes are allowed in the subject; invalid sequences simply never match.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("pre-tokenizer regex does not compile at offset " + std::to_string(err_off) + ": " +
                reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is used if JIT is unavailable
  code_ = code;
}

PreTokenizerRegex::~PreTokenizerRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void PreTokenizerRegex::split(std::string_view text, std::vector<std::string_view>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  if (!md) throw Error("out of memory creating PCRE2 match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, piece_start = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), pos, 0, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      throw Error("pre-tokenizer regex match failed (PCRE2 error " + std::to_string(rc) + ")");
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t s = ov[0], e = ov[1];
    if (s > piece_start) out.push_back(text.substr(piece_start, s - piece_start));
    if (e > s) {
      out.push_back(text.substr(s, e - s));
      pos = piece_start = e;
    } else {
      // An empty match cannot happen with the shipped patterns; step one character so the loop always ends.
      piece_start = s;
      pos = s + unicode::char_len(text, s);
    }
  }
  if (piece_start < text.size()) out.push_back(text.substr(piece_start));
  pcre2_match_data_free(md);
}

}  // namespace shadowkv
