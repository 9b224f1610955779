#include "eval/sentence_splitter.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace shadowkv::eval {
namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_closer(char c) { return c == '"' || c == '\'' || c == ')' || c == ']'; }
bool is_opener(char c) { return c == '"' || c == '\'' || c == '(' || c == '['; }

// Lower-case word ending just before text[end] (the period), e.g. "mr" for "Mr.".
std::string word_before(std::string_view text, size_t end) {
  size_t b = end;
  while (b > 0 && (std::isalpha(static_cast<unsigned char>(text[b - 1])) || text[b - 1] == '.')) --b;
  std::string w(text.substr(b, end - b));
  for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return w;
}

bool is_abbreviation(const std::string& w) {
  static const char* kAbbrev[] = {"mr",  "mrs", "ms",   "dr",  "st",     "jr",  "sr",   "col", "gen",  "capt",
                                  "lt",  "rev", "prof", "hon", "messrs", "mme", "mlle", "esq", "no",   "vol",
                                  "ch",  "vs",  "etc",  "e.g", "i.e",    "viz", "cf",   "fig", "sept", "oct",
                                  "nov", "dec", "jan",  "feb", "aug",    "co",  "inc",  "ltd", "mt",   "ft"};
  if (w.size() == 1) return true;  // an initial: "J. Smith"
  return std::find(std::begin(kAbbrev), std::end(kAbbrev), w) != std::end(kAbbrev);
}

void push_trimmed(std::vector<std::string>& out, std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  if (e > b) out.emplace_back(s.substr(b, e - b));
}

}  // namespace

std::vector<std::string> split_sentences(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '.' && c != '!' && c != '?') continue;
    size_t j = i + 1;
    while (j < text.size() && (text[j] == '.' || text[j] == '!' || text[j] == '?')) ++j;  // "?!", "..."
    while (j < text.size() && is_closer(text[j])) ++j;
    if (j < text.size() && !is_space(text[j])) continue;  // "3.14", "e.g.x", "end.\"Next"
    size_t k = j;
    while (k < text.size() && is_space(text[k])) ++k;
    if (k < text.size()) {
      size_t m = k;
      while (m < text.size() && is_opener(text[m])) ++m;
      const unsigned char next = m < text.size() ? static_cast<unsigned char>(text[m]) : 0;
      if (!std::isupper(next) && !std::isdigit(next)) continue;
    }
    if (c == '.' && j == i + 1 && is_abbreviation(word_before(text, i))) continue;
    push_trimmed(out, text.substr(start, j - start));
    start = j;
    i = j - 1;
  }
  push_trimmed(out, text.substr(start));
  return out;
}

}  // namespace shadowkv::eval
