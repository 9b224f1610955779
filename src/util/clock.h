// Wall-clock seconds from a steady clock, for the timers of the engine loop, the harness and the bench.
#pragma once
#include <chrono>

namespace shadowkv {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace shadowkv
