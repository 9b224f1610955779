#include "eval/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "util/clock.h"

namespace shadowkv::eval {
namespace {}  // namespace

std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  char b[32];
  const long t = (long)(s + 0.5);
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  return b;
}

Progress::Progress(int64_t total, std::string label)
    : total_(std::max<int64_t>(1, total)), label_(std::move(label)), tty_(isatty(2)), t0_(now_s()) {}

void Progress::update(int64_t done, const std::string& note) {
  done_ = std::min(done, total_);
  const double frac = (double)done_ / total_, el = now_s() - t0_;
  const double eta = done_ > 0 ? el * (1 - frac) / frac : -1;
  if (tty_) {
    const int w = 30, fill = (int)(frac * w);
    std::string bar(fill, '#');
    bar += std::string(w - fill, '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %5.1f%% elapsed %s ETA %s %s", label_.c_str(), bar.c_str(), 100 * frac,
                 format_duration(el).c_str(), done_ > 0 ? format_duration(eta).c_str() : "?", note.c_str());
    std::fflush(stderr);
    return;
  }
  const int decile = (int)(frac * 10);
  if (decile == last_decile_) return;
  last_decile_ = decile;
  std::fprintf(stderr, "%s: %3d%% done, elapsed %s, ETA %s (%s)\n", label_.c_str(), decile * 10,
               format_duration(el).c_str(), done_ > 0 ? format_duration(eta).c_str() : "?", note.c_str());
}

void Progress::finish() {
  if (tty_) std::fprintf(stderr, "\n");
  std::fprintf(stderr, "%s: finished in %s\n", label_.c_str(), format_duration(now_s() - t0_).c_str());
}

}  // namespace shadowkv::eval
