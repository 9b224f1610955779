// A small rule-based sentence splitter for English prose (stands in for NLTK punkt, whose model Debian lacks):
// a sentence ends after . ! or ? (plus closing quotes/brackets) when whitespace and then a capital letter, an
// opening quote or a digit follow, unless the word before the period is a known abbreviation or an initial.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace shadowkv::eval {

// The sentences of text, each trimmed of surrounding whitespace; empty pieces are dropped.
std::vector<std::string> split_sentences(std::string_view text);

}  // namespace shadowkv::eval
