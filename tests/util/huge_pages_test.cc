// resize_with_huge_pages: the same contents as resize, large or small, empty or not; the
// advice itself only changes how the kernel backs the memory.
#include "util/huge_pages.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace vkn {
namespace {

TEST(HugePagesTest, LargeBuffersAreValueInitializedLikeResize) {
  std::vector<double> v;
  const size_t n = (kHugePageAdviceMin / sizeof(double)) * 3 + 7;  // past the threshold, odd size
  resize_with_huge_pages(v, n);
  ASSERT_EQ(v.size(), n);
  EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0; }));
  v[n - 1] = 3.0;  // writable to the end
  EXPECT_EQ(v[n - 1], 3.0);
}

TEST(HugePagesTest, SmallAndNonEmptyVectorsResizeAsUsual) {
  std::vector<uint32_t> small;
  resize_with_huge_pages(small, 100);
  EXPECT_EQ(small, std::vector<uint32_t>(100, 0));
  std::vector<uint32_t> kept = {1, 2, 3};
  resize_with_huge_pages(kept, kHugePageAdviceMin / sizeof(uint32_t) + 1);  // not empty: a plain resize
  EXPECT_EQ(kept[0], 1u);
  EXPECT_EQ(kept[2], 3u);
  EXPECT_EQ(kept.back(), 0u);
}

TEST(HugePagesTest, AdviceOnRangesWithoutAWholeHugePageIsANoOp) {
  std::vector<char> v(1 << 20, 'x');  // 1 MiB: no whole 2 MiB page inside
  advise_huge_pages(v.data(), v.size());
  advise_huge_pages(v.data() + 1, 0);
  EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](char c) { return c == 'x'; }));
}

}  // namespace
}  // namespace vkn
