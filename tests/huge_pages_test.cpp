// HugePageAllocator: blocks zero-filled, large ones 2 MiB-aligned, usable to their last byte, contents kept across
// growth.
#include "util/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>

namespace shadowkv {
namespace {

TEST(HugePages, LargeBlocksAreAlignedZeroedAndKeepTheirContentsWhenTheyGrow) {
  constexpr size_t kHuge = HugePageAllocator<uint8_t>::kHuge;
  HugeVector<uint32_t> v(kHuge / 4 + 1000);  // just over 2 MiB: the tail lies past the last whole huge page
  EXPECT_EQ((uintptr_t)v.data() % kHuge, 0u);
  for (uint32_t x : v) ASSERT_EQ(x, 0u);
  std::iota(v.begin(), v.end(), 7u);
  v.resize(3 * v.size());  // a new, larger block: the old contents move, the rest is zero
  EXPECT_EQ((uintptr_t)v.data() % kHuge, 0u);
  for (size_t i = 0; i < v.size() / 3; ++i) ASSERT_EQ(v[i], 7u + i);
  for (size_t i = v.size() / 3; i < v.size(); ++i) ASSERT_EQ(v[i], 0u);
  const HugeVector<uint32_t> copy = v;
  EXPECT_TRUE(copy == v);
}

TEST(HugePages, SmallBlocksComeFromTheHeap) {
  { const HugeVector<int> dirty(1000, -1); }  // leaves a freed heap block of the same size for the next one to reuse
  const HugeVector<int> zeros(1000);          // constructed without arguments: the block's zero-fill is the value
  for (int x : zeros) ASSERT_EQ(x, 0);
  HugeVector<float> v(100, 1.5f);
  v.push_back(2.5f);
  EXPECT_EQ(v.size(), 101u);
  EXPECT_EQ(v.back(), 2.5f);
  EXPECT_EQ(std::accumulate(v.begin(), v.end(), 0.0f), 152.5f);
}

}  // namespace
}  // namespace shadowkv
