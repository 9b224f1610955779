// The `shadowkv` KV-cache policy (arXiv 2410.21465, following the authors' code; see docs/shadowkv.md).
// Global layers: prefill is dense; end_prefill() factors the prompt's pre-RoPE keys (low_rank_keys), summarises
// chunks by landmarks, keeps outlier chunks and the local window dense and moves the other chunks' values to the
// value store. Each decode step scores landmarks, rebuilds the top-k chunks' keys (U . SVt, then RoPE at their
// positions), fetches their values through the hot buffer and runs exact attention over
// local + outliers + selected + generated tokens. Generated tokens are folded into the compressed part once the
// dense tail grows past the local window by ShadowKvConfig::fold_tokens, so generation length is unbounded.
// Sliding-window layers use the `full` policy's DenseLayerStore ring.
// Choices beyond the paper: U is stored as U.S (= K.V, see low_rank_keys.h); KvOptions.f16 makes the value store
// (cold tier) f16, dense parts stay f32; the hot buffer starts empty (the authors seed it with the prompt's last
// query); "hot_values" in memory() counts the buffer's rebuilt keys and values.
#pragma once
#include <memory>
#include <vector>

#include "kv/dense_layer_store.h"
#include "kv/kv_cache.h"
#include "kv/shadowkv/chunk_selector.h"
#include "kv/shadowkv/hot_value_buffer.h"
#include "kv/shadowkv/low_rank_keys.h"
#include "kv/shadowkv/shadowkv_options.h"
#include "kv/shadowkv/value_store.h"

namespace shadowkv {

std::unique_ptr<KvCache> make_shadowkv_cache(const KvGeometry& geometry, const KvOptions& options);

class ShadowKvCache : public KvCache {
 public:
  ShadowKvCache(const KvGeometry& geometry, const KvOptions& options);
  ShadowKvCache(const ShadowKvCache& other);  // deep copy
  ShadowKvCache& operator=(const ShadowKvCache&) = delete;

  void attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
              float* out) override;
  void end_prefill() override;
  // Stores prompt tokens like attend() but computes no outputs (for callers that need none, e.g. benchmarks
  // building a long context). Only before end_prefill().
  void ingest(int layer, int64_t pos0, int n, const float* k_pre, const float* k, const float* v);
  int64_t n_tokens() const override { return lens_.empty() ? 0 : lens_[0]; }
  KvMemory memory() const override;
  std::vector<std::pair<std::string, double>> counters() const override;
  std::unique_ptr<KvCache> clone() const override { return std::make_unique<ShadowKvCache>(*this); }
  const char* policy() const override { return "shadowkv"; }

  // Introspection for tests and stats.
  int64_t budget() const { return budget_tokens_; }        // selected-token budget (after end_prefill)
  int64_t compressed_tokens(int layer) const;              // positions covered by U rows
  int64_t candidate_chunks(int layer, int kv_head) const;  // chunks selectable by landmarks
  int64_t outlier_chunk_count(int layer, int kv_head) const;
  int rank(int layer) const;

 private:
  struct Head {
    std::vector<float> tail_k, tail_v;  // dense tail [len - comp_end][head_dim] (everything before compression)
    std::vector<float> out_k, out_v;    // outlier chunks [n_out*chunk][head_dim]
    std::vector<float> landmarks;       // [n_cand][head_dim]
    std::vector<int64_t> cand_chunk;    // candidate index -> chunk number (first position = chunk*C)
    std::vector<int64_t> selected;      // scratch: this step's selection
    ChunkSelector selector;
  };
  struct GlobalLayer {
    int layer = 0;  // index in the geometry
    int rank = 0;
    int64_t comp_end = 0;  // positions [0, comp_end) are compressed; the dense tail starts here
    bool compressed = false;
    KeyBasis basis;
    std::vector<float> svt;        // [n_kv][rank][head_dim]
    std::vector<float> coef;       // U rows [comp_end][rank]
    std::vector<float> tail_kpre;  // [len - comp_end][n_kv*head_dim]
    std::vector<Head> heads;
    HotValueBuffer hot;
  };

  void prefill_attend(GlobalLayer& g, int64_t pos0, int n, const float* q, float* out);
  void decode_attend(GlobalLayer& g, int64_t pos, const float* q, float* out);
  void append_tail(GlobalLayer& g, const float* k_pre, const float* k, const float* v);
  void compress_prompt(GlobalLayer& g);
  // A basis fitted to fewer keys than the key width would drop directions later keys need, so a short prompt
  // stays dense after end_prefill() and is compressed once the layer holds this many tokens (generated included).
  int64_t min_compress_tokens(const LayerGeometry& lg) const;
  void fold_tail(GlobalLayer& g);
  // Moves the first n_chunks chunks of the dense tail into the compressed part; (*outliers)[h] lists the chunks
  // (relative to the tail start, increasing) that head h keeps dense instead (only at end_prefill).
  void compress_front(GlobalLayer& g, int64_t n_chunks, const std::vector<std::vector<int64_t>>* outliers);

  KvGeometry geom_;
  ShadowKvConfig cfg_;
  std::vector<int64_t> lens_;    // per geometry layer
  std::vector<int> global_of_;   // geometry layer -> index in globals_ or -1
  std::vector<int> sliding_of_;  // geometry layer -> layer index in sliding_ or -1
  std::vector<GlobalLayer> globals_;
  std::vector<std::unique_ptr<ValueStore>> stores_;  // per global layer, one stream per KV head
  std::vector<DenseLayerStore> sliding_;             // sliding-window layers, exactly as the `full` policy keeps them
  bool prefill_done_ = false;
  int64_t budget_tokens_ = 0;
  int64_t budget_chunks_ = 0;
  int64_t n_outliers_ = 0;
};

}  // namespace shadowkv
