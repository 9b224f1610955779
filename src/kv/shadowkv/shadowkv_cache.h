// The `shadowkv` KV-cache policy (arXiv 2410.21465, following the authors' code; tuning and measurements in
// docs/shadowkv-tuning.md).
// Global layers: prefill is dense (the same DenseLayerStore and tiled kernel as `full`); end_prefill() factors the
// prompt's pre-RoPE keys (low_rank_keys), summarises chunks by landmarks, keeps outlier chunks and the local window
// dense, moves the other chunks' values to the value store and seeds the hot buffer with the last prompt query's
// selection. Each decode step scores landmarks, rebuilds the top-k chunks' keys (U . SVt, then RoPE at their
// positions), fetches their values through the hot buffer and runs exact attention over
// outliers + selected + dense tail. The dense tail (local window, generated tokens, later turns) stays exact up to
// ShadowKvConfig::dense_tail tokens; past that its oldest half is compressed as a block with its own basis,
// landmarks and outliers, so generation length is unbounded with bounded memory.
// A prompt no longer than the default budget is not compressed (the whole of it would be selected anyway).
// Sliding-window layers use the `full` policy's DenseLayerStore ring.
// Choices beyond the paper: U is stored as U.S (= K.V, see low_rank_keys.h), or for int8 rows as U with S moved
// into the basis (balance_columns); U rows are f16 with a single KV head and int8 with a scale per row otherwise
// (--factor-dtype auto; q8, f16 or f32 on request) and landmarks f16 (f32 with --factor-dtype f32), landmarks in
// transposed panels for scoring (landmark_panels.h); the value store (cold tier), the hot buffer and the outlier
// chunks are f16 unless --value-dtype is f32; --kv-f16 makes the sliding-window layers f16, the dense tail stays
// f32; "hot_values" in memory() counts the buffer's rebuilt keys and values. With a single KV head (or --unselected
// mean) the chunks a step does not select are not dropped but estimated from their landmarks and int8 mean values
// (unselected_estimate.h).
#pragma once
#include <memory>
#include <vector>

#include "kv/dense_layer_store.h"
#include "kv/kv_cache.h"
#include "kv/shadowkv/chunk_rope.h"
#include "kv/shadowkv/chunk_selector.h"
#include "kv/shadowkv/factor_rows.h"
#include "kv/shadowkv/hot_value_buffer.h"
#include "kv/shadowkv/landmark_panels.h"
#include "kv/shadowkv/low_rank_keys.h"
#include "kv/shadowkv/outliers.h"
#include "kv/shadowkv/shadowkv_options.h"
#include "kv/shadowkv/value_store.h"

namespace shadowkv {

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
  std::unique_ptr<KvCache> fork(const KvOptions& options) const override;
  const char* policy() const override { return "shadowkv"; }

  // Introspection for tests and stats.
  int64_t budget() const { return budget_tokens_; }        // selected-token budget (after end_prefill)
  int64_t compressed_tokens(int layer) const;              // positions covered by U rows
  int64_t candidate_chunks(int layer, int kv_head) const;  // chunks selectable by landmarks
  int64_t outlier_chunk_count(int layer, int kv_head) const;
  int64_t segment_count(int layer) const;  // compressed blocks (the prompt, then dense-tail blocks)
  int rank(int layer) const;

 private:
  struct Head {
    OutlierRows outliers;             // outlier chunks' rows [n_out*chunk][head_dim]
    LandmarkPanels landmarks;         // n_cand landmarks of head_dim
    std::vector<int8_t> value_means;  // [n_cand][head_dim] int8: each candidate's mean value (unselected_estimate.h)
    std::vector<float> mean_scales;   // [n_cand] their scales
    std::vector<int64_t> cand_chunk;  // candidate index -> chunk number (first position = chunk*C)
    std::vector<int64_t> selected;    // scratch: this step's selection
    ChunkSelector selector;
  };
  // One compressed block: positions [begin, end), their U rows expressed in this block's own basis.
  struct Segment {
    int64_t begin = 0, end = 0;
    std::vector<float> svt;  // [n_kv][rank][head_dim]
  };
  struct GlobalLayer {
    int layer = 0;  // index in the geometry
    int rank = 0;
    bool estimate = false;  // unselected chunks estimated (estimates_unselected, shadowkv_options.h)
    int64_t comp_end = 0;   // positions [0, comp_end) are compressed; the dense tail holds the rest
    DenseLayerStore tail;   // exact post-RoPE K, V of [comp_end, len)
    std::vector<Segment> segments;
    FactorRows coef;            // U rows [comp_end][rank]
    std::vector<float> last_q;  // query of the last token attended before end_prefill (seeds the hot buffer)
    std::vector<Head> heads;
    HotValueBuffer hot;
    std::shared_ptr<const RunAngles> angles;  // chunk-start RoPE angles of [0, comp_end), shared by equal ropes
  };

  void append_tail(GlobalLayer& g, int64_t pos, int n, const float* k_pre, const float* k, const float* v);
  void decode_attend(GlobalLayer& g, int64_t pos, const float* q, float* out);
  // Softmax states of every query head over its KV head's unselected chunks at the last selection
  // (unselected_estimate.h), their sums in *acc; empty when the layer drops them.
  std::vector<SoftmaxAcc> estimate_rest(const GlobalLayer& g, std::vector<float>* acc) const;
  // Selects each KV head's top-k chunks for query q and fills the hot buffer's misses (keys rebuilt, values read).
  void select_and_fetch(GlobalLayer& g, const float* q);
  // A hot-buffer slot to fill: candidate `cand` of `head` into `slot`.
  struct Fill {
    int head;
    int64_t cand;
    int slot;
  };
  static const Segment& segment_at(const GlobalLayer& g, int64_t p);  // the segment holding position p
  // Fills n slots of one head whose chunks lie in one segment: keys rebuilt by one GEMM, rotated at their true
  // positions, values read from the cold tier.
  void fill_slots(GlobalLayer& g, const Fill* fills, size_t n) const;
  // Compresses the first n_chunks chunks of the dense tail as one segment with its own basis; each head keeps its
  // n_outliers worst-summarised chunks of the block dense.
  void compress_block(GlobalLayer& g, int64_t n_chunks, int64_t n_outliers);
  // Pre-RoPE keys of the next n_tok tail tokens, rotated back from the stored post-RoPE keys (RoPE is a rotation:
  // no separate pre-RoPE copy of the dense tail is kept).
  std::vector<float> pre_rope_keys(const GlobalLayer& g, int64_t n_tok) const;
  // Makes g.angles cover positions [0, end): another global layer's table when it has the same rope, else a new one.
  void cover_angles(GlobalLayer& g, int64_t end);
  // Compresses the oldest block of the dense tail while it is longer than the local window + dense_tail.
  void maybe_fold(GlobalLayer& g, int64_t pos);
  int64_t budget_chunks(const GlobalLayer& g) const;

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
  int64_t n_outliers_ = 0;       // per KV head, for the prompt
  double outlier_fraction_ = 0;  // n_outliers_ per compressible prompt chunk, applied to dense-tail blocks
};

}  // namespace shadowkv
