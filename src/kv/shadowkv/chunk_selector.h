// Decode-time chunk selection under GQA (ShadowKV decode step 2, as the authors' code does it): every query head
// of a KV head's group takes a softmax of scale*q.landmark over the candidate chunks; a chunk's score is the max of
// these probabilities over the group; the top-k chunks are rebuilt. Each KV head selects its own chunks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv/shadowkv/landmark_panels.h"

namespace shadowkv {

class ChunkSelector {
 public:
  // q: [n_q][head_dim] (the group's query heads). Writes the indices (into the landmark list) of the
  // min(k, size) best chunks to `selected` in increasing order (ties: lower index wins). Uses OpenMP over the
  // landmarks when there are many. Reuses its scratch buffers across calls.
  void select(const float* q, int n_q, int head_dim, float scale, const LandmarkPanels& landmarks, int64_t k,
              std::vector<int64_t>* selected);

  // Per-chunk scores of the last select() (max over heads of softmax probability).
  const std::vector<float>& scores() const { return score_; }
  // Of the last select(): candidates scored, head h's softmax terms exp(scale*q.landmark - max_logit(h)) per
  // candidate, and that head's largest scale*q.landmark.
  int64_t candidates() const { return (int64_t)score_.size(); }
  const float* weights(int h) const { return &logits_[(size_t)h * ld_]; }
  float max_logit(int h) const { return max_[h]; }

 private:
  std::vector<float> logits_;  // [n_q][panels * kPanelRows]
  std::vector<float> score_;   // [n_cand]
  std::vector<float> top_;     // scratch for the k-th largest score
  std::vector<float> max_;     // [n_q] largest logit per head
  int64_t ld_ = 0;             // row stride of logits_
};

}  // namespace shadowkv
