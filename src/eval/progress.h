// Progress with ETA on stderr: a redrawn bar when stderr is a terminal, otherwise a plain line every 10%.
#pragma once
#include <cstdint>
#include <string>

namespace shadowkv::eval {

class Progress {
 public:
  // total: units of work (e.g. prompt tokens to process); label: shown before the bar.
  Progress(int64_t total, std::string label);
  // Marks `done` units finished (cumulative) with a short note (the current cell).
  void update(int64_t done, const std::string& note);
  void finish();

 private:
  int64_t total_, done_ = 0;
  std::string label_;
  bool tty_;
  double t0_;
  int last_decile_ = -1;
};

std::string format_duration(double seconds);

}  // namespace shadowkv::eval
