// Token sampling: greedy (temperature 0), or temperature + top-k + top-p with a seeded generator.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace shadowkv {

struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: no limit
  float top_p = 0.95f;       // >= 1: no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  int32_t sample(const float* logits, int n_vocab);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

// Index of the largest logit (lowest index on ties).
int32_t argmax(const float* logits, int n);

// log(sum(exp(x))) of one row, in double (max-shifted).
double log_sum_exp(const float* x, int n);

// log-softmax of one row of logits into out (resized to n).
void log_softmax(const float* logits, int n, std::vector<float>& out);

}  // namespace shadowkv
