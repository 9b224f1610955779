#include "eval/scoring.h"

#include <algorithm>
#include <cctype>

namespace shadowkv::eval {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// An empty reference would match everything; it never counts as found.
bool found(const std::string& hay_lower, const std::string& ref) {
  return !ref.empty() && hay_lower.find(lower(ref)) != std::string::npos;
}

}  // namespace

std::string clean_output(const std::string& out) {
  std::string s = out;
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = '\n';
  const size_t b = s.find_first_not_of(" \n"), e = s.find_last_not_of(" \n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

double string_match_all(const std::string& output, const std::vector<std::string>& refs) {
  if (refs.empty()) return 0;
  const std::string h = lower(clean_output(output));
  const auto n = std::count_if(refs.begin(), refs.end(), [&](const std::string& r) { return found(h, r); });
  return static_cast<double>(n) / static_cast<double>(refs.size());
}

double string_match_part(const std::string& output, const std::vector<std::string>& refs) {
  const std::string h = lower(clean_output(output));
  return std::any_of(refs.begin(), refs.end(), [&](const std::string& r) { return found(h, r); }) ? 1.0 : 0.0;
}

}  // namespace shadowkv::eval
