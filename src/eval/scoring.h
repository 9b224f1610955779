// Upstream RULER scoring: the output is cleaned (control characters become newlines, then stripped) and each
// reference is looked for as a case-insensitive substring. string_match_all: the fraction of references found;
// string_match_part: 1 if any is found. Scores are in [0, 1]; reports show them x100.
#pragma once
#include <string>
#include <vector>

namespace shadowkv::eval {

std::string clean_output(const std::string& out);
double string_match_all(const std::string& output, const std::vector<std::string>& refs);
double string_match_part(const std::string& output, const std::vector<std::string>& refs);

}  // namespace shadowkv::eval
