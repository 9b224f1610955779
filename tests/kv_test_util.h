// Synthetic attention inputs for KV-policy tests: a 3-layer geometry (global, sliding-window, global; GQA 4:2,
// head_dim 32), per-position projections with optionally low-rank keys, feeding helpers and output comparison.
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "ops/rope.h"

namespace shadowkv::kvtest {

constexpr int kHeads = 4, kKv = 2, kHd = 32, kW = kKv * kHd, kQw = kHeads * kHd;

inline KvGeometry make_geometry() {
  KvGeometry g;
  LayerGeometry l;
  l.n_head = kHeads;
  l.n_kv_head = kKv;
  l.head_dim = kHd;
  l.scale = 1.0f / std::sqrt((float)kHd);
  l.rope = RopeSpec::make(RopeSpec::Style::Neox, kHd, 10000.0f);
  LayerGeometry s = l;
  s.window = 48;
  s.rope = RopeSpec::make(RopeSpec::Style::Neox, kHd, 10000.0f);
  g.layers = {l, s, l};
  g.max_ctx = 4096;
  g.max_batch_tokens = 128;
  return g;
}

// Per layer and position: q (post-RoPE), pre-RoPE k, post-RoPE k, v. Keys are `latent`-rank (plus noise) when
// latent > 0, so a low-rank basis fits them; 0 = full-rank Gaussian keys. From position remix_at on, the keys
// live in another latent subspace (a basis fitted before it does not fit them).
struct Inputs {
  int n_layers = 3;
  int64_t n = 0;
  std::vector<std::vector<float>> q, kpre, k, v;  // [layer][pos * width]

  Inputs(const KvGeometry& g, int64_t n_pos, int latent, float q_gain, uint32_t seed, int64_t remix_at = -1)
      : n(n_pos) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    q.resize(n_layers), kpre.resize(n_layers), k.resize(n_layers), v.resize(n_layers);
    for (int l = 0; l < n_layers; ++l) {
      std::vector<float> mix((size_t)std::max(latent, 1) * kW);
      auto new_mix = [&] {
        for (float& x : mix) x = nd(rng) / std::sqrt((float)std::max(latent, 1));
      };
      new_mix();
      q[l].resize(n * kQw), kpre[l].resize(n * kW), k[l].resize(n * kW), v[l].resize(n * kW);
      for (int64_t p = 0; p < n; ++p) {
        if (p == remix_at) new_mix();
        float* kp = &kpre[l][p * kW];
        if (latent > 0) {
          std::vector<float> z(latent);
          for (float& x : z) x = nd(rng);
          for (int i = 0; i < kW; ++i) {
            float s = 0.001f * nd(rng);
            for (int j = 0; j < latent; ++j) s += z[j] * mix[(size_t)j * kW + i];
            kp[i] = s;
          }
        } else {
          for (int i = 0; i < kW; ++i) kp[i] = nd(rng);
        }
        std::copy(kp, kp + kW, &k[l][p * kW]);
        apply_rope(g.layers[l].rope, &k[l][p * kW], kKv, kHd, p);
        for (int i = 0; i < kW; ++i) v[l][p * kW + i] = nd(rng);
        // Queries: a key-like vector (so some keys matter much more than others) times q_gain, plus noise.
        for (int h = 0; h < kHeads; ++h)
          for (int d = 0; d < kHd; ++d)
            q[l][p * kQw + h * kHd + d] = q_gain * kpre[l][p * kW + (h / 2) * kHd + d] + 0.3f * nd(rng);
        apply_rope(g.layers[l].rope, &q[l][p * kQw], kHeads, kHd, p);
      }
    }
  }
};

// Feeds positions [p0, p1) in calls of `step` tokens; returns the outputs [layer][(p - p0) * kQw].
inline std::vector<std::vector<float>> feed(KvCache& c, const Inputs& in, int64_t p0, int64_t p1, int step) {
  std::vector<std::vector<float>> out(in.n_layers, std::vector<float>((p1 - p0) * kQw));
  for (int64_t p = p0; p < p1; p += step) {
    const int n = (int)std::min<int64_t>(step, p1 - p);
    for (int l = 0; l < in.n_layers; ++l)
      c.attend(l, p, n, &in.q[l][p * kQw], &in.kpre[l][p * kW], &in.k[l][p * kW], &in.v[l][p * kW],
               &out[l][(p - p0) * kQw]);
  }
  return out;
}

struct Diff {
  float max_abs = 0;
  double rel = 0;  // ||a - b|| / ||b|| over everything
  bool finite = true;
};

inline Diff compare(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  Diff d;
  double num = 0, den = 0;
  for (size_t l = 0; l < a.size(); ++l)
    for (size_t i = 0; i < a[l].size(); ++i) {
      if (!std::isfinite(a[l][i])) d.finite = false;
      d.max_abs = std::max(d.max_abs, std::fabs(a[l][i] - b[l][i]));
      num += (double)(a[l][i] - b[l][i]) * (a[l][i] - b[l][i]);
      den += (double)b[l][i] * b[l][i];
    }
  d.rel = std::sqrt(num / den);
  return d;
}

// Options of `policy` with the given settings.
inline KvOptions opts(const std::string& policy, const std::map<std::string, std::string>& settings = {}) {
  KvOptions o(policy);
  for (const auto& [k, v] : settings) o.set(k, v);
  return o;
}

// A cache's counters by name.
inline std::map<std::string, double> counter_map(const KvCache& c) {
  const auto v = c.counters();
  return {v.begin(), v.end()};
}

}  // namespace shadowkv::kvtest
