#include "kv/shadowkv/unselected_estimate.h"

#include <cmath>

#include "kv/shadowkv/landmarks.h"
#include "ops/quantize.h"
#include "ops/vec.h"

namespace shadowkv {

void chunk_value_means(const float* values, int64_t row_stride, int64_t n_chunks, int chunk, int head_dim,
                       std::vector<int8_t>* means, std::vector<float>* scales) {
  std::vector<float> mean((size_t)n_chunks * head_dim);
  chunk_landmarks(values, row_stride, n_chunks, chunk, head_dim, mean.data());  // a landmark is a chunk's mean row
  const size_t old = means->size();
  means->resize(old + (size_t)n_chunks * head_dim);
  for (int64_t c = 0; c < n_chunks; ++c)
    scales->push_back(
        quantize_i8_row(&mean[(size_t)c * head_dim], head_dim, means->data() + old + (size_t)c * head_dim));
}

void estimate_unselected(const ChunkSelector& selector, int n_q, int head_dim, int chunk, const int8_t* value_means,
                         const float* mean_scales, const std::vector<int64_t>& selected, SoftmaxAcc* states) {
  const int64_t n_cand = selector.candidates();
  thread_local std::vector<int64_t> rest;       // unselected candidates with a weight that counts
  thread_local std::vector<float> w, part_acc;  // weights x row scales [n_q][rest]; each part's sums [part][n_q][hd]
  rest.clear();
  const float* score = selector.scores().data();
  const float cut = kNegligibleShare / (float)n_cand;
  size_t si = 0;
  for (int64_t c = 0; c < n_cand; ++c) {
    if (si < selected.size() && selected[si] == c) {
      ++si;
      continue;
    }
    if (score[c] >= cut) rest.push_back(c);
  }
  const int64_t n = (int64_t)rest.size();
  w.resize((size_t)n_q * n);
  for (int h = 0; h < n_q; ++h) {
    const float* wh = selector.weights(h);
    float l = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      l += wh[rest[j]];
      w[(size_t)h * n + j] = wh[rest[j]] * mean_scales[rest[j]];
    }
    states[h].m = selector.max_logit(h) + std::log((float)chunk);
    states[h].l = l;
  }
  // Two halves of the rows on the two cores when there are many (always two then, so the sum's order does not
  // depend on the thread count), the second half's sums added to the first's.
  const int parts = n * n_q * head_dim > (1 << 17) ? 2 : 1;
  part_acc.assign((size_t)parts * n_q * head_dim, 0.0f);
  float* acc = part_acc.data();  // named here: thread_local names are per thread inside the parallel region
  const float* wp = w.data();
  const int64_t* idx = rest.data();
#pragma omp parallel for if (parts > 1)
  for (int p = 0; p < parts; ++p) {
    const int64_t j0 = n * p / parts, j1 = n * (p + 1) / parts;
    group_accumulate(wp + j0, n, n_q, head_dim, value_means, idx + j0, j1 - j0, acc + (size_t)p * n_q * head_dim);
  }
  for (int h = 0; h < n_q; ++h)
    for (int d = 0; d < head_dim; ++d) {
      float s = 0.0f;
      for (int p = 0; p < parts; ++p) s += acc[((size_t)p * n_q + h) * head_dim + d];
      states[h].acc[d] += s;
    }
}

}  // namespace shadowkv
