// The attention of a decode step over the chunks it did not select, estimated from their summaries (the
// "estimation zone" of RetroInfer, arXiv 2505.02922, applied to ShadowKV's landmarks): each unselected chunk counts
// as `chunk` tokens that all have its landmark's logit and its mean value. ShadowKV itself drops these chunks, so
// the selection's softmax is renormalised over the attended rows; where a head's attention is spread over thousands
// of chunks (Gemma 3 270M's layer 11 at 32K: the selected and outlier chunks hold 64-90% of it) that renormalisation is
// the largest error left. The weights are the selector's own softmax terms: no extra pass over the landmarks.
#pragma once
#include <cstdint>
#include <vector>

#include "kv/shadowkv/chunk_selector.h"
#include "ops/attention.h"

namespace shadowkv {

// A chunk is left out of the estimate when its selection score (the largest of the group's softmax probabilities
// over the candidates) is below kNegligibleShare / n_candidates: the chunks left out then hold at most that share
// of any head's landmark softmax together. On Gemma 3 270M at 32K that skips 13-23% of the rows (most of them in the
// sharply focused layers 5 and 17) and changes no layer's output error in 4 digits (docs/results/
// s23-unselected-estimate/probe; a cut at 1e-3 of each head's best chunk skipped 70% and lost a needle sample).
inline constexpr float kNegligibleShare = 0.01f;

// Mean value of each chunk of n_chunks * chunk rows (row_stride floats apart), as int8 rows of head_dim with one
// scale per row (the row's max |value| / 127): 260 bytes a chunk on Gemma 3 270M instead of 512 as halves, a share of
// the hot tier that buys f16 U rows (docs/shadowkv-tuning.md section 13). Appended to `means` and `scales`.
void chunk_value_means(const float* values, int64_t row_stride, int64_t n_chunks, int chunk, int head_dim,
                       std::vector<int8_t>* means, std::vector<float>* scales);

// Softmax state of each of the selector's n_q query heads over the chunks not in `selected` (ascending candidate
// indices of the selector's last select()) but the negligible ones (above): states[h].acc must point at head_dim zeroed
// floats. value_means holds one int8 row per candidate, mean_scales its scale. Large sets split their rows in two
// halves for the two cores (always two, so the result does not depend on the thread count).
void estimate_unselected(const ChunkSelector& selector, int n_q, int head_dim, int chunk, const int8_t* value_means,
                         const float* mean_scales, const std::vector<int64_t>& selected, SoftmaxAcc* states);

}  // namespace shadowkv
