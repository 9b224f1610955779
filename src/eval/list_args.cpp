#include "eval/list_args.h"

#include <sstream>

#include "util/error.h"

namespace shadowkv::eval {

std::vector<std::string> split_list(const std::string& s, const std::string& flag) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  if (out.empty()) throw Error(flag + " is empty");
  return out;
}

std::vector<int64_t> parse_int_list(const std::string& s, const std::string& flag) {
  std::vector<int64_t> out;
  for (std::string item : split_list(s, flag)) {
    int64_t mult = 1;
    if (!item.empty() && (item.back() == 'k' || item.back() == 'K')) {
      mult = 1024;
      item.pop_back();
    }
    if (item.empty() || item.size() > 12 || item.find_first_not_of("0123456789") != std::string::npos)
      throw Error(flag + ": '" + item + "' is not a non-negative integer");
    out.push_back(std::stoll(item) * mult);
  }
  return out;
}

}  // namespace shadowkv::eval
