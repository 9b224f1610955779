// Model::forward calls each sequence's cache outside any inactive OpenMP region: inside one (`parallel if
// (false)`, e.g. a batch of one) a cache's own parallel regions are nested, and libgomp starts new threads for a
// nested team every time instead of reusing its pool (one thread created per layer per step). Real Gemma 3 270M.
#include <gtest/gtest.h>
#include <omp.h>

#include <memory>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "real_model.h"

namespace shadowkv {
namespace {

// A `full` cache that records, at every attend, whether it runs inside an inactive parallel region.
class LevelSpy : public KvCache {
 public:
  explicit LevelSpy(std::unique_ptr<KvCache> inner) : inner_(std::move(inner)) {}
  void attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
              float* out) override {
    ++calls;
    if (omp_get_level() != omp_get_active_level()) ++inside_inactive;
    inner_->attend(layer, pos0, n, q, k_pre, k, v, out);
  }
  int64_t n_tokens() const override { return inner_->n_tokens(); }
  KvMemory memory() const override { return inner_->memory(); }
  std::unique_ptr<KvCache> clone() const override { return std::make_unique<LevelSpy>(inner_->clone()); }
  const char* policy() const override { return inner_->policy(); }

  int calls = 0, inside_inactive = 0;

 private:
  std::unique_ptr<KvCache> inner_;
};

TEST(ForwardThreads, CachesNeverRunInsideAnInactiveRegion) {
  const Model& m = testmodel::gemma();
  const KvGeometry g = m.kv_geometry(64, 16);
  std::vector<std::unique_ptr<LevelSpy>> seqs;
  for (int i = 0; i < 2; ++i) seqs.push_back(std::make_unique<LevelSpy>(make_kv_cache(g, KvOptions("full"))));
  const std::vector<int32_t> prompt = {2, 651, 6037, 9677, 236761, 564, 1083, 506};
  const int32_t next = 506;
  std::vector<float> logits;
  const int n_layer = m.config().n_layer;
  // Prefill (one item), a decode step of one sequence, then a decode step of two sequences together.
  m.forward({{seqs[0].get(), prompt.data(), (int)prompt.size(), 0}}, logits);
  m.forward({{seqs[0].get(), &next, 1, (int64_t)prompt.size()}}, logits);
  m.forward({{seqs[1].get(), prompt.data(), (int)prompt.size(), 0}}, logits);
  m.forward({{seqs[0].get(), &next, 1, (int64_t)prompt.size() + 1}, {seqs[1].get(), &next, 1, (int64_t)prompt.size()}},
            logits);
  EXPECT_EQ(seqs[0]->calls, 3 * n_layer);
  EXPECT_EQ(seqs[1]->calls, 2 * n_layer);
  EXPECT_EQ(seqs[0]->inside_inactive, 0);
  EXPECT_EQ(seqs[1]->inside_inactive, 0);
}

}  // namespace
}  // namespace shadowkv
