#include "kv/shadowkv/key_spectrum.h"

#include <lapacke.h>

#include <algorithm>
#include <string>

#include "util/error.h"

namespace shadowkv {

double KeySpectrum::total_energy() const {
  double e = 0;
  for (double s : sigma) e += s * s;
  return e;
}

double KeySpectrum::energy_at(int r) const {
  const double total = total_energy();
  if (total <= 0) return 1.0;
  r = std::clamp(r, 0, (int)sigma.size());
  double e = 0;
  for (int j = 0; j < r; ++j) e += sigma[j] * sigma[j];
  return e / total;
}

int KeySpectrum::rank_for_energy(double fraction) const {
  const double total = total_energy();
  if (total <= 0 || fraction <= 0) return 0;
  double e = 0;
  for (int j = 0; j < (int)sigma.size(); ++j) {
    e += sigma[j] * sigma[j];
    if (e >= fraction * total) return j + 1;
  }
  return (int)sigma.size();
}

KeySpectrum key_spectrum(const float* k, int64_t n_rows, int width) {
  if (n_rows < 1 || width < 1) throw Error("key spectrum: empty key matrix");
  if (n_rows > (int64_t)1 << 30) throw Error("key spectrum: too many rows (" + std::to_string(n_rows) + ")");
  const int m = (int)n_rows, mn = std::min(m, width);
  // Double precision: the small singular values (sigma^2 below 1e-7 of the total) still get counted correctly.
  std::vector<double> a(k, k + (size_t)n_rows * width);
  KeySpectrum s;
  s.n_rows = n_rows;
  s.width = width;
  s.sigma.resize(mn);
  const lapack_int info =
      LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', m, width, a.data(), width, s.sigma.data(), nullptr, mn, nullptr, width);
  if (info != 0) throw Error("key spectrum: SVD failed (dgesdd info " + std::to_string(info) + ")");
  return s;
}

}  // namespace shadowkv
