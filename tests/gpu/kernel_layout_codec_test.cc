#include "gpu/kernel_layout_codec.h"

#include <gtest/gtest.h>

#include <random>

namespace vkn {
namespace {

KernelLayout sample_layout() {
  KernelLayout l;
  l.entry_point = "main";
  l.bindings = {{0, true, "x"}, {3, false, "y"}};
  l.push_constant_bytes = 24;
  l.local_size = {64, 2, 1};
  l.spec_constants = {{0, 64}, {7, 0x3f800000}};
  return l;
}

bool same(const KernelLayout& a, const KernelLayout& b) {
  if (a.entry_point != b.entry_point || a.push_constant_bytes != b.push_constant_bytes ||
      a.local_size != b.local_size || a.bindings.size() != b.bindings.size() ||
      a.spec_constants.size() != b.spec_constants.size()) {
    return false;
  }
  for (size_t i = 0; i < a.bindings.size(); ++i) {
    if (a.bindings[i].binding != b.bindings[i].binding || a.bindings[i].read_only != b.bindings[i].read_only ||
        a.bindings[i].name != b.bindings[i].name) {
      return false;
    }
  }
  for (size_t i = 0; i < a.spec_constants.size(); ++i) {
    if (a.spec_constants[i].id != b.spec_constants[i].id ||
        a.spec_constants[i].default_value != b.spec_constants[i].default_value) {
      return false;
    }
  }
  return true;
}

TEST(KernelLayoutCodecTest, FileRoundTrips) {
  std::map<KernelId, KernelLayout> in;
  KernelId a{}, b{};
  a[0] = 1;
  b[31] = 2;
  in[a] = sample_layout();
  in[b] = KernelLayout{"main", {}, 0, {1, 1, 1}, {}};
  auto out = decode_layout_file(encode_layout_file(in));
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_TRUE(same(out->at(a), in[a]));
  EXPECT_TRUE(same(out->at(b), in[b]));
}

TEST(KernelLayoutCodecTest, EveryTruncationAndBitFlipIsRejectedWithoutCrashing) {
  std::map<KernelId, KernelLayout> in;
  in[KernelId{}] = sample_layout();
  const auto bytes = encode_layout_file(in);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto r = decode_layout_file(std::span(bytes).first(cut));
    ASSERT_FALSE(r.has_value()) << "cut at " << cut;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto flipped = bytes;
    flipped[i] ^= 0x40;
    EXPECT_FALSE(decode_layout_file(flipped).has_value()) << "flip at " << i;  // the checksum catches it
  }
}

TEST(KernelLayoutCodecTest, LayoutDecoderBoundsEveryCount) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(rng() % 64);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    size_t used = 0;
    auto r = decode_kernel_layout(junk, &used);
    if (r) {
      EXPECT_LE(used, junk.size());
    }
  }
  std::vector<uint8_t> huge_count = {4, 0, 0, 0, 'm', 'a', 'i', 'n', 0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(decode_kernel_layout(huge_count, nullptr).has_value());
}

}  // namespace
}  // namespace vkn
