// Comma-separated CLI lists ("4096,8192", "niah_single_1,vt") with one-line errors naming the flag.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shadowkv::eval {

std::vector<std::string> split_list(const std::string& s, const std::string& flag);
std::vector<int64_t> parse_int_list(const std::string& s, const std::string& flag);  // accepts 4k / 32K too

}  // namespace shadowkv::eval
