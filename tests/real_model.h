// The real Gemma 3 270M for tests that need it: loaded once per test binary from SHADOWKV_MODEL (scripts/test
// fetches it and sets the variable; a missing variable fails the test, it never skips).
#pragma once
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "model/model.h"

namespace shadowkv::testmodel {

inline const Model& gemma() {
  static std::unique_ptr<Model> m = [] {
    const char* p = std::getenv("SHADOWKV_MODEL");
    if (!p || !*p) throw std::runtime_error("SHADOWKV_MODEL is not set (path of the Gemma 3 270M GGUF)");
    return Model::load(p);
  }();
  return *m;
}

}  // namespace shadowkv::testmodel
