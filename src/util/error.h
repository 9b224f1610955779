// Errors: every user-facing failure (bad file, bad flag, bad input) is thrown as shadowkv::Error with a one-line
// message; the CLI catches it, prints "error: <message>" and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace shadowkv {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

}  // namespace shadowkv
