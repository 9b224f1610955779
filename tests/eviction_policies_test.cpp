// The survey's eviction policies (streaming, h2o, snapkv, pyramidkv) on synthetic projections (tests/kv_test_util.h):
// each equals `full` at its most generous setting, and follows a brute-force double-precision reference of its own
// rule (visibility mask, eviction, pooled votes); memory, settings validation, clone and fork.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "kv/full_kv_cache.h"
#include "kv/h2o_cache.h"
#include "kv/snapkv_cache.h"
#include "kv_test_util.h"
#include "util/error.h"

namespace shadowkv {
namespace {
using namespace kvtest;

constexpr int kGroup = kHeads / kKv;
const int kGlobal[2] = {0, 2};  // make_geometry(): layers 0 and 2 are global, layer 1 slides

using Outputs = std::vector<std::vector<float>>;

// Double-precision softmax attention of query head h of layer l at position t over the rows at `keys`; writes the
// output to out[kHd] and adds each key's probability to probs[i] when probs is given.
void ref_attend(const KvGeometry& g, const Inputs& in, int l, int h, int64_t t, const std::vector<int64_t>& keys,
                float* out, std::vector<double>* probs = nullptr) {
  const int kv = h / kGroup;
  std::vector<double> s(keys.size());
  double m = -1e300, sum = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    double d = 0;
    for (int j = 0; j < kHd; ++j) d += (double)in.q[l][t * kQw + h * kHd + j] * in.k[l][keys[i] * kW + kv * kHd + j];
    s[i] = g.layers[l].scale * d;
    m = std::max(m, s[i]);
  }
  for (double& x : s) sum += x = std::exp(x - m);
  std::vector<double> o(kHd, 0.0);
  for (size_t i = 0; i < keys.size(); ++i) {
    for (int j = 0; j < kHd; ++j) o[j] += s[i] / sum * in.v[l][keys[i] * kW + kv * kHd + j];
    if (probs) (*probs)[i] += s[i] / sum;
  }
  for (int j = 0; j < kHd; ++j) out[j] = (float)o[j];
}

// Relative error of the global layers' outputs against a reference holding only those layers' rows.
double global_rel(const Outputs& got, const Outputs& ref) {
  double num = 0, den = 0;
  for (int l : kGlobal)
    for (size_t i = 0; i < got[l].size(); ++i) {
      num += (double)(got[l][i] - ref[l][i]) * (got[l][i] - ref[l][i]);
      den += (double)ref[l][i] * ref[l][i];
    }
  return std::sqrt(num / den);
}

int64_t part(const KvMemory& m, const std::string& name) {
  for (const auto& [n, b] : m.parts)
    if (n == name) return b;
  return -1;
}

// --- every policy -------------------------------------------------------------------------------------------

TEST(EvictionPolicies, GenerousSettingsEqualFull) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = prompt + 50;
  Inputs in(g, total, 0, 1.0f, 31);
  FullKvCache full(g, KvOptions{});
  const Outputs fp = feed(full, in, 0, prompt, 128);
  full.end_prefill();
  const Outputs ft = feed(full, in, prompt, prompt + 10, 10), fd = feed(full, in, prompt + 10, total, 1);
  for (const KvOptions& o :
       {opts("streaming", {{"window", "1000"}}), opts("h2o", {{"budget", "1000"}}),
        opts("snapkv", {{"budget", "1000"}}),
        opts("pyramidkv", {{"budget", "1000"}, {"beta", "2"}})}) {  // pyramidkv: layer budgets 1500 and 500 > 350
    SCOPED_TRACE(o.policy);
    std::unique_ptr<KvCache> c = make_kv_cache(g, o);
    const Outputs cp = feed(*c, in, 0, prompt, 128);
    c->end_prefill();
    const Outputs ct = feed(*c, in, prompt, prompt + 10, 10), cd = feed(*c, in, prompt + 10, total, 1);
    for (const auto& [got, want] : {std::pair{&cp, &fp}, {&ct, &ft}, {&cd, &fd}}) {
      const Diff d = compare(*got, *want);
      EXPECT_LT(d.rel, 1e-5) << "max " << d.max_abs;
      EXPECT_EQ((*got)[1], (*want)[1]);  // the sliding-window layer is the full policy's ring, bit for bit
    }
    EXPECT_EQ(c->n_tokens(), total);
    EXPECT_STREQ(c->policy(), o.policy.c_str());
  }
}

TEST(EvictionPolicies, HoldLessMemoryThanFull) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = prompt + 20;
  Inputs in(g, total, 0, 1.0f, 32);
  FullKvCache full(g, KvOptions{});
  feed(full, in, 0, total, 128);
  const int64_t row = kKv * kHd * 4 * 2 * 2;  // one position of both global layers' keys and values, f32
  // Rows held per KV head in each of the two global layers after the prompt and after 20 decoded tokens.
  const std::map<std::string, std::pair<int64_t, int64_t>> held = {{"streaming", {2 * 68, 2 * 68}},
                                                                   {"h2o", {2 * 64, 2 * 64}},
                                                                   {"snapkv", {2 * 64, 2 * 84}},
                                                                   {"pyramidkv", {112 + 16, 112 + 16 + 2 * 20}}};
  for (const auto& [name, rows] : held) {
    SCOPED_TRACE(name);
    KvOptions o(name);
    o.set(name == "streaming" ? "window" : "budget", "64");
    if (name == "pyramidkv") o.set("beta", "4").set("window", "8");  // layer budgets 112 and 16 (> the window)
    std::unique_ptr<KvCache> c = make_kv_cache(g, o);
    feed(*c, in, 0, prompt, 128);
    c->end_prefill();
    EXPECT_EQ(part(c->memory(), "global_kv"), rows.first * row / 2);
    feed(*c, in, prompt, total, 1);
    const KvMemory m = c->memory();
    EXPECT_EQ(part(m, "global_kv"), rows.second * row / 2);
    EXPECT_LT(m.total(), full.memory().total() / 2);
    EXPECT_EQ(part(m, "sliding_layers"), part(full.memory(), "sliding_layers"));
    int64_t sum = 0;
    for (const auto& p : m.parts) sum += p.second;
    EXPECT_EQ(sum, m.total());
  }
}

TEST(EvictionPolicies, BadSettingsThrow) {
  const KvGeometry g = make_geometry();
  for (const KvOptions& o :
       {opts("streaming", {{"window", "0"}}), opts("streaming", {{"sinks", "-1"}}), opts("h2o", {{"budget", "-4"}}),
        opts("h2o", {{"budget", "0"}}), opts("h2o", {{"budget", "16"}, {"recent", "17"}}),
        opts("h2o", {{"recent", "-2"}}), opts("snapkv", {{"budget", "-1"}}), opts("snapkv", {{"window", "0"}}),
        opts("snapkv", {{"pool", "median"}}), opts("snapkv", {{"kernel", "4"}}), opts("snapkv", {{"kernel", "0"}}),
        opts("snapkv", {{"budget", "many"}}), opts("pyramidkv", {{"beta", "0"}}), opts("pyramidkv", {{"budget", "-8"}}),
        opts("pyramidkv", {{"pool", "median"}}), opts("streaming", {{"budget", "64"}})}) {
    SCOPED_TRACE(o.policy + " " + o.settings.begin()->first + "=" + o.settings.begin()->second);
    EXPECT_THROW(make_kv_cache(g, o), Error);
  }
}

TEST(EvictionPolicies, CloneContinuesIdentically) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 200, total = prompt + 30;
  Inputs in(g, total, 0, 1.0f, 33);
  for (const KvOptions& o : {opts("streaming", {{"window", "40"}}), opts("h2o", {{"budget", "40"}}),
                             opts("snapkv", {{"budget", "40"}}), opts("pyramidkv", {{"budget", "40"}})}) {
    SCOPED_TRACE(o.policy);
    std::unique_ptr<KvCache> c = make_kv_cache(g, o);
    feed(*c, in, 0, prompt, 64);
    c->end_prefill();
    feed(*c, in, prompt, prompt + 5, 1);
    std::unique_ptr<KvCache> copy = c->clone();
    EXPECT_EQ(compare(feed(*c, in, prompt + 5, total, 1), feed(*copy, in, prompt + 5, total, 1)).max_abs, 0.0f);
    EXPECT_STREQ(copy->policy(), o.policy.c_str());
  }
}

// --- streaming ----------------------------------------------------------------------------------------------

TEST(Streaming, MatchesMaskedReference) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = prompt + 40;
  Inputs in(g, total, 0, 1.0f, 34);
  FullKvCache full(g, KvOptions{});
  Outputs fo = feed(full, in, 0, prompt, 128);
  const Outputs fd = feed(full, in, prompt, total, 1);
  for (int l = 0; l < 3; ++l) fo[l].insert(fo[l].end(), fd[l].begin(), fd[l].end());
  for (const auto& [sinks, window] : {std::pair{4, 40}, {0, 7}, {10, 1}}) {
    SCOPED_TRACE("sinks " + std::to_string(sinks) + " window " + std::to_string(window));
    std::unique_ptr<KvCache> c =
        make_kv_cache(g, opts("streaming", {{"sinks", std::to_string(sinks)}, {"window", std::to_string(window)}}));
    Outputs got = feed(*c, in, 0, prompt, 128);  // chunks longer than the window: the mask applies inside them
    c->end_prefill();
    const Outputs dec = feed(*c, in, prompt, total, 1);
    for (int l = 0; l < 3; ++l) got[l].insert(got[l].end(), dec[l].begin(), dec[l].end());
    Outputs ref(3, std::vector<float>(total * kQw));
    for (int l : kGlobal)
      for (int64_t t = 0; t < total; ++t) {
        std::vector<int64_t> keys;
        for (int64_t p = 0; p <= t; ++p)
          if (p < sinks || t - p < window) keys.push_back(p);
        for (int h = 0; h < kHeads; ++h) ref_attend(g, in, l, h, t, keys, &ref[l][t * kQw + h * kHd]);
      }
    EXPECT_LT(global_rel(got, ref), 1e-5);
    EXPECT_EQ(got[1], fo[1]);
    EXPECT_EQ(part(c->memory(), "global_kv"), (int64_t)2 * kKv * (sinks + window) * kHd * 4 * 2);
  }
}

// --- h2o ----------------------------------------------------------------------------------------------------

// The H2O rule, step by step in double: per KV head, kept positions with accumulated scores.
struct H2oReference {
  struct Head {
    std::vector<int64_t> pos;
    std::vector<double> score;
  };
  int64_t budget, recent;
  std::map<int, std::vector<Head>> heads;  // by layer

  // Attends positions [p0, p0+n) of the global layers (writing out[l][(t - p0) * kQw ...]), then evicts.
  void step(const KvGeometry& g, const Inputs& in, int64_t p0, int n, Outputs& out) {
    for (int l : kGlobal) {
      heads[l].resize(kKv);
      for (int kv = 0; kv < kKv; ++kv) {
        Head& hd = heads[l][kv];
        for (int64_t t = p0; t < p0 + n; ++t) hd.pos.push_back(t), hd.score.push_back(0.0);
        for (int64_t t = p0; t < p0 + n; ++t) {
          const int64_t visible = hd.pos.size() - (p0 + n - 1 - t);  // kept rows, then the chunk up to t
          const std::vector<int64_t> keys(hd.pos.begin(), hd.pos.begin() + visible);
          std::vector<double> probs(keys.size(), 0.0);
          for (int h = kv * kGroup; h < (kv + 1) * kGroup; ++h)
            ref_attend(g, in, l, h, t, keys, &out[l][(t - p0) * kQw + h * kHd], &probs);
          for (size_t i = 0; i < probs.size(); ++i) hd.score[i] += probs[i];
        }
        evict(hd);
      }
    }
  }
  void evict(Head& hd) const {
    const int64_t excess = (int64_t)hd.pos.size() - budget;
    for (int64_t e = 0; e < excess; ++e) {  // drop the lowest-scored row outside the recent window, the oldest on a tie
      int64_t worst = 0;
      for (int64_t i = 1; i < (int64_t)hd.pos.size() - recent; ++i)
        if (hd.score[i] < hd.score[worst]) worst = i;
      hd.pos.erase(hd.pos.begin() + worst);
      hd.score.erase(hd.score.begin() + worst);
    }
  }
};

TEST(H2o, FollowsTheEvictionRule) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 100, total = prompt + 30;
  Inputs in(g, total, 6, 2.0f, 35);  // low-rank keys and key-like queries: some tokens matter much more
  for (const auto& [budget, recent] : {std::pair{24, 8}, {40, -1}, {16, 0}, {16, 16}}) {
    SCOPED_TRACE("budget " + std::to_string(budget) + " recent " + std::to_string(recent));
    KvOptions o = opts("h2o", {{"budget", std::to_string(budget)}, {"recent", std::to_string(recent)}});
    H2oKvCache c(g, o);
    H2oReference ref{budget, recent == -1 ? budget / 2 : recent, {}};
    EXPECT_EQ(c.recent(), ref.recent);
    auto run = [&](int64_t p0, int64_t p1, int step) {
      const Outputs got = feed(c, in, p0, p1, step);
      Outputs want(3, std::vector<float>((p1 - p0) * kQw));
      for (int64_t p = p0; p < p1; p += step) {
        Outputs part(3, std::vector<float>(step * kQw));
        const int n = (int)std::min<int64_t>(step, p1 - p);
        ref.step(g, in, p, n, part);
        for (int l : kGlobal) std::copy_n(part[l].begin(), n * kQw, want[l].begin() + (p - p0) * kQw);
      }
      EXPECT_LT(global_rel(got, want), 1e-5);
      for (int gi = 0; gi < 2; ++gi)
        for (int kv = 0; kv < kKv; ++kv)
          ASSERT_EQ(c.kept_positions(gi, kv), ref.heads[kGlobal[gi]][kv].pos) << "layer " << gi << " head " << kv;
    };
    run(0, prompt, 32);
    c.end_prefill();
    run(prompt, total, 1);
    if (ref.recent < budget) {
      EXPECT_NE(c.kept_positions(0, 0), c.kept_positions(0, 1));  // kept tokens differ per KV head
    }
    const auto ctr = c.counters();
    EXPECT_EQ(ctr[1].first, "evicted");
    EXPECT_EQ(ctr[1].second, 2 * kKv * (total - budget));
  }
}

// --- snapkv / pyramidkv --------------------------------------------------------------------------------------

// Brute-force SnapKV selection for one KV head: pooled votes of the last w prompt queries, top (budget - w) of the
// positions before the window (ties: the earlier), plus the window.
std::vector<int64_t> snap_reference(const KvGeometry& g, const Inputs& in, int l, int kv, int64_t prompt,
                                    int64_t budget, int64_t w, int kernel, bool avg) {
  const int64_t prefix = prompt - w;
  std::vector<double> votes(prefix, 0.0);
  std::vector<float> out(kHd);
  for (int64_t t = prefix; t < prompt; ++t) {
    std::vector<int64_t> keys(t + 1);
    std::iota(keys.begin(), keys.end(), 0);
    std::vector<double> probs(t + 1, 0.0);
    for (int h = kv * kGroup; h < (kv + 1) * kGroup; ++h) ref_attend(g, in, l, h, t, keys, out.data(), &probs);
    for (int64_t p = 0; p < prefix; ++p) votes[p] += probs[p];
  }
  std::vector<double> pooled(prefix);
  for (int64_t p = 0; p < prefix; ++p) {
    double acc = avg ? 0.0 : -1.0;
    for (int64_t j = p - kernel / 2; j <= p + kernel / 2; ++j)
      if (j >= 0 && j < prefix) acc = avg ? acc + votes[j] : std::max(acc, votes[j]);
    pooled[p] = avg ? acc / kernel : acc;
  }
  std::vector<int64_t> order(prefix);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return pooled[a] > pooled[b]; });
  order.resize(std::max<int64_t>(0, budget - w));
  std::sort(order.begin(), order.end());
  for (int64_t p = prefix; p < prompt; ++p) order.push_back(p);
  return order;
}

TEST(SnapKv, KeepsTheTopPooledVotesThenEverything) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 200, total = prompt + 20;
  Inputs in(g, total, 6, 2.0f, 36);
  for (const auto& [kernel, pool] : {std::pair{7, "max"}, {5, "avg"}, {1, "max"}}) {
    SCOPED_TRACE(std::to_string(kernel) + " " + pool);
    const int64_t budget = 48, window = 8;
    SnapKvCache c(g, opts("snapkv", {{"budget", std::to_string(budget)},
                                     {"window", std::to_string(window)},
                                     {"kernel", std::to_string(kernel)},
                                     {"pool", pool}}));
    feed(c, in, 0, prompt, 64);  // the window spans two chunks' queries: 192..199 are in the last one
    c.end_prefill();
    std::vector<std::vector<int64_t>> kept(4);
    for (int gi = 0; gi < 2; ++gi)
      for (int kv = 0; kv < kKv; ++kv) {
        kept[gi * kKv + kv] = snap_reference(g, in, kGlobal[gi], kv, prompt, budget, window, kernel, pool[0] == 'a');
        ASSERT_EQ(c.kept_positions(gi, kv), kept[gi * kKv + kv]) << "layer " << gi << " head " << kv;
      }
    EXPECT_NE(kept[0], kept[1]);
    // Decode: every new token is kept and attends over the kept prompt tokens plus the tokens since.
    const Outputs got = feed(c, in, prompt, total, 1);
    Outputs want(3, std::vector<float>((total - prompt) * kQw));
    for (int gi = 0; gi < 2; ++gi)
      for (int kv = 0; kv < kKv; ++kv) {
        std::vector<int64_t> keys = kept[gi * kKv + kv];
        for (int64_t t = prompt; t < total; ++t) {
          keys.push_back(t);
          for (int h = kv * kGroup; h < (kv + 1) * kGroup; ++h)
            ref_attend(g, in, kGlobal[gi], h, t, keys, &want[kGlobal[gi]][(t - prompt) * kQw + h * kHd]);
        }
        EXPECT_EQ(c.kept_positions(gi, kv), keys);
      }
    EXPECT_LT(global_rel(got, want), 1e-5);
  }
}

TEST(SnapKv, BudgetBelowTheWindowKeepsTheWindow) {
  const KvGeometry g = make_geometry();
  Inputs in(g, 100, 0, 1.0f, 37);
  SnapKvCache c(g, opts("snapkv", {{"budget", "3"}, {"window", "8"}}));
  feed(c, in, 0, 100, 128);
  c.end_prefill();
  std::vector<int64_t> window(8);
  std::iota(window.begin(), window.end(), 92);
  EXPECT_EQ(c.kept_positions(1, 1), window);
}

TEST(PyramidKv, LayerBudgetsFollowTheSchedule) {
  const std::vector<int64_t> b = pyramid_budgets(1024, 20, 5);  // min 51, max 1997
  EXPECT_EQ(b, (std::vector<int64_t>{1997, 1997 - 486, 1997 - 973, 1997 - 1459, 51}));
  EXPECT_NEAR(std::accumulate(b.begin(), b.end(), 0.0) / b.size(), 1024.0, 1.0);
  for (int L : {2, 3, 7, 26, 62}) {
    const std::vector<int64_t> s = pyramid_budgets(1000, 20, L);
    EXPECT_EQ(s.front(), 1950);
    EXPECT_EQ(s.back(), 50);
    EXPECT_TRUE(std::is_sorted(s.rbegin(), s.rend()));
    EXPECT_NEAR(std::accumulate(s.begin(), s.end(), 0.0) / L, 1000.0, 1.0) << L;
  }
  EXPECT_EQ(pyramid_budgets(64, 20, 1), std::vector<int64_t>{64});
}

TEST(PyramidKv, EachLayerIsSnapKvWithItsBudget) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300;
  Inputs in(g, prompt, 6, 2.0f, 38);
  SnapKvCache pyr(g, opts("pyramidkv", {{"budget", "64"}, {"beta", "4"}, {"window", "8"}, {"pool", "avg"}}));
  EXPECT_EQ(pyr.layer_budget(0), 112);
  EXPECT_EQ(pyr.layer_budget(1), 16);
  SnapKvCache first(g, opts("snapkv", {{"budget", "112"}, {"window", "8"}, {"pool", "avg"}}));
  SnapKvCache last(g, opts("snapkv", {{"budget", "16"}, {"window", "8"}, {"pool", "avg"}}));
  for (SnapKvCache* c : {&pyr, &first, &last}) feed(*c, in, 0, prompt, 128), c->end_prefill();
  for (int kv = 0; kv < kKv; ++kv) {
    EXPECT_EQ(pyr.kept_positions(0, kv), first.kept_positions(0, kv));
    EXPECT_EQ(pyr.kept_positions(1, kv), last.kept_positions(1, kv));
    EXPECT_EQ(pyr.kept_positions(0, kv).size(), 112u);
  }
  // A layer whose budget covers the prompt keeps it whole.
  SnapKvCache wide(g, opts("pyramidkv", {{"budget", "200"}, {"beta", "2"}}));  // layer budgets 300 and 100
  feed(wide, in, 0, prompt, 128);
  wide.end_prefill();
  EXPECT_EQ(wide.kept_positions(0, 0).size(), (size_t)prompt);
  EXPECT_EQ(wide.kept_positions(1, 0).size(), 100u);
}

TEST(SnapKv, ForkBeforeEndPrefillEqualsAFreshPrefill) {
  const KvGeometry g = make_geometry();
  const int64_t prompt = 300, total = prompt + 20;
  Inputs in(g, total, 6, 2.0f, 39);
  SnapKvCache base(g, opts("snapkv", {}));  // window 32
  feed(base, in, 0, prompt, 128);
  for (const KvOptions& o : {opts("pyramidkv", {{"budget", "64"}, {"window", "8"}}),
                             opts("snapkv", {{"budget", "40"}, {"kernel", "3"}, {"pool", "avg"}})}) {
    SCOPED_TRACE(o.policy);
    std::unique_ptr<KvCache> forked = base.fork(o), fresh = make_kv_cache(g, o);
    ASSERT_NE(forked, nullptr);
    feed(*fresh, in, 0, prompt, 128);
    forked->end_prefill(), fresh->end_prefill();
    EXPECT_EQ(compare(feed(*forked, in, prompt, total, 1), feed(*fresh, in, prompt, total, 1)).max_abs, 0.0f);
    EXPECT_STREQ(forked->policy(), o.policy.c_str());
  }
  EXPECT_EQ(base.fork(opts("snapkv", {{"window", "64"}})), nullptr);  // queries we did not keep
  EXPECT_EQ(base.fork(KvOptions{}), nullptr);
  base.end_prefill();
  EXPECT_EQ(base.fork(opts("snapkv", {})), nullptr);
}

}  // namespace
}  // namespace shadowkv
