// Singular-value spectrum of a key matrix, for choosing ShadowKV's rank on a real model (`shadowkv analyze-keys`).
// The paper's Fig. 1a observation is that pre-RoPE keys have a sharper spectrum than post-RoPE keys; the energy
// captured by the top r singular values (sum of sigma^2) is what a rank-r factorisation keeps:
// ||K - K_r||_F^2 / ||K||_F^2 = 1 - energy(r).
#pragma once
#include <cstdint>
#include <vector>

namespace shadowkv {

struct KeySpectrum {
  int64_t n_rows = 0;
  int width = 0;
  std::vector<double> sigma;  // min(n_rows, width) singular values, descending

  double total_energy() const;  // sum of sigma^2 (= ||K||_F^2)
  // Fraction of the energy in the top r singular values (r clamped to [0, sigma.size()]); 1 for an all-zero K.
  double energy_at(int r) const;
  // Smallest r whose energy_at(r) >= fraction (fraction in [0, 1]).
  int rank_for_energy(double fraction) const;
};

// Singular values of k (row-major [n_rows][width]) via LAPACKE_dgesdd in double; throws Error on bad input.
KeySpectrum key_spectrum(const float* k, int64_t n_rows, int width);

}  // namespace shadowkv
