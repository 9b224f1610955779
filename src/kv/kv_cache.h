// The KV-cache interface: every policy (full, shadowkv, later streaming/h2o/snapkv/quest/kivi) stores the keys
// and values of one sequence and computes that sequence's attention. The model calls attend() once per layer
// per forward pass, with the new tokens' projections; the policy decides what to keep and which keys to read.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ops/rope.h"

namespace shadowkv {

// What a policy needs to know about one attention layer.
struct LayerGeometry {
  int n_head = 0;     // query heads
  int n_kv_head = 0;  // key/value heads; query head h reads kv head h / (n_head / n_kv_head)
  int head_dim = 0;
  int window = 0;      // 0: global layer; >0: sliding window, key at p_k visible to p_q iff 0 <= p_q - p_k < window
  float scale = 1.0f;  // score = scale * q.k
  RopeSpec rope;       // the layer's RoPE (policies that rebuild pre-RoPE keys apply it themselves)
};

struct KvGeometry {
  std::vector<LayerGeometry> layers;
  int64_t max_ctx = 0;         // positions a sequence may reach (prompt + generation)
  int max_batch_tokens = 512;  // most new tokens one attend() call may bring (prefill chunk size)
};

// Bytes held, by named part, split into the hot tier (fast memory) and the cold tier (value store).
struct KvMemory {
  std::vector<std::pair<std::string, int64_t>> parts;  // e.g. {"k", bytes}, {"v", bytes}, {"U", bytes}
  int64_t hot = 0;
  int64_t cold = 0;
  int64_t total() const { return hot + cold; }
};

// A policy name and the settings given for it (by setting name, without "--"; flags as "true"/"false"). Settings
// not given take the defaults the policy declares (kv/kv_policy.h); the accessors validate names and types.
struct KvOptions {
  std::string policy = "full";
  std::map<std::string, std::string> settings;

  KvOptions() = default;
  explicit KvOptions(std::string name) : policy(std::move(name)) {}
  KvOptions& set(const std::string& name, const std::string& value) {
    settings[name] = value;
    return *this;
  }
  // The value given, else the declared default; Error if the policy does not declare `name` or the value is not of
  // the declared type.
  std::string text(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;
  bool flag(const std::string& name) const;
  bool declares(const std::string& name) const;  // the policy has this setting
};

class KvCache {
 public:
  virtual ~KvCache() = default;

  // Stores n new tokens at positions pos0 .. pos0+n-1 of `layer` and writes their causal attention output.
  // Layouts (row-major, one row per token): q and out [n, n_head*head_dim] (q post-RoPE);
  // k_pre (pre-RoPE), k (post-RoPE) and v [n, n_kv_head*head_dim]. pos0 equals the layer's stored length.
  virtual void attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k,
                      const float* v, float* out) = 0;

  // The prompt has been fed completely; policies that compress the prompt (shadowkv) do it here.
  virtual void end_prefill() {}

  // Positions stored so far (same for every layer between forward passes).
  virtual int64_t n_tokens() const = 0;

  virtual KvMemory memory() const = 0;

  // Policy-specific counters for the stats line / JSON (e.g. value-store hit rate), as name -> value.
  virtual std::vector<std::pair<std::string, double>> counters() const { return {}; }

  // Deep copy (the bench clones one prefilled cache across a batch).
  virtual std::unique_ptr<KvCache> clone() const = 0;

  // Before end_prefill(): this prompt's state as a cache of `options` (same policy, other knobs), or null when
  // the prefill state depends on what differs. Lets the eval harness prefill once for several variants.
  virtual std::unique_ptr<KvCache> fork(const KvOptions& options) const { return nullptr; }

  virtual const char* policy() const = 0;
};

// Creates a cache for one sequence from the policy registry (kv/kv_policy.h); throws shadowkv::Error for an unknown
// policy, a setting the policy does not declare or a value of the wrong type.
std::unique_ptr<KvCache> make_kv_cache(const KvGeometry& geometry, const KvOptions& options);

// Whether the `full` cache this policy is compared with stores f16: the policy's own --kv-f16 if it declares one,
// else full's default (also for a policy outside the registry, such as eval's test-only truncate:N).
bool full_equivalent_f16(const KvOptions& options);

// Bytes the `full` policy (f32 or f16 as in options) would hold for a sequence of n_tokens positions.
int64_t full_kv_bytes(const KvGeometry& geometry, int64_t n_tokens, bool f16);

}  // namespace shadowkv
