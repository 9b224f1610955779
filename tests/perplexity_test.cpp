// Perplexity follows llama.cpp's llama-perplexity layout: windows of n_ctx tokens, the first token of every window
// replaced by BOS when the model adds one, logits at positions [n_ctx/2, n_ctx-2] scored. Layout tests on plain
// vectors; the BOS rule end to end on the real Gemma 3 270M (SHADOWKV_MODEL, add_bos_token = true).
#include "runtime/perplexity.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "real_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace shadowkv {
namespace {

std::vector<int32_t> iota_tokens(int n) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), 100);
  return t;
}

TEST(PerplexityLayout, WindowsAreConsecutiveAndStartWithBos) {
  const auto t = iota_tokens(70);  // 70 / 32 = 2 windows; the last 6 tokens are not used, as in llama.cpp
  const auto w0 = perplexity_window(t, 0, 32, 2);
  const auto w1 = perplexity_window(t, 1, 32, 2);
  ASSERT_EQ(w0.size(), 32u);
  EXPECT_EQ(w0[0], 2);  // BOS replaces the window's first token, it is not inserted
  EXPECT_EQ(w0[1], 101);
  EXPECT_EQ(w0[31], 131);
  EXPECT_EQ(w1[0], 2);
  EXPECT_EQ(w1[1], 133);
  EXPECT_EQ(w1[31], 163);
  EXPECT_THROW(perplexity_window(t, 2, 32, 2), Error);
}

TEST(PerplexityLayout, NoBosKeepsTheText) {
  const auto t = iota_tokens(64);
  EXPECT_EQ(perplexity_window(t, 1, 32, -1), std::vector<int32_t>(t.begin() + 32, t.end()));
}

TEST(PerplexityLayout, SecondHalfScored) {
  EXPECT_EQ(perplexity_first_scored(2048), 1024);  // positions 1024..2046 -> 1023 tokens per window
  EXPECT_EQ(perplexity_first_scored(33), 16);
}

// Gemma adds BOS, so the first token of every window is irrelevant (replaced); any later token matters.
TEST(PerplexityGemma, EveryWindowStartsWithBos) {
  const Model& m = testmodel::gemma();
  ASSERT_TRUE(m.tokenizer().add_bos_default());
  const int n_ctx = 16;
  auto t = m.tokenizer().encode(
      "The quick brown fox jumps over the lazy dog while the farmer watches from the old barn. Later that day "
      "the fox came back, and the dog, still lazy, did not move at all; the farmer laughed and went inside.",
      true);
  ASSERT_GE(t.size(), 2u * n_ctx);
  const PerplexityResult base = perplexity(m, t, n_ctx, KvOptions{}, 8);
  EXPECT_EQ(base.windows, (int)(t.size() / n_ctx));
  EXPECT_EQ(base.scored_tokens, (int64_t)base.windows * (n_ctx - n_ctx / 2 - 1));
  auto first_changed = t;
  first_changed[n_ctx] = m.tokenizer().find_token("zebra") >= 0 ? m.tokenizer().find_token("zebra") : 1000;
  EXPECT_EQ(perplexity(m, first_changed, n_ctx, KvOptions{}, 8).perplexity, base.perplexity);
  auto second_changed = t;
  second_changed[n_ctx + 1] = first_changed[n_ctx];
  EXPECT_NE(perplexity(m, second_changed, n_ctx, KvOptions{}, 8).perplexity, base.perplexity);
}

}  // namespace
}  // namespace shadowkv
