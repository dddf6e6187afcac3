#include "vknode/gpu/buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "gpu/memory_allocator.h"
#include "testing/gpu_fixture.h"

namespace vkn {
namespace {

using testing::kWait;

class BufferTest : public testing::GpuTest {};

TEST_F(BufferTest, ZeroSizeIsInvalid) {
  auto b = Buffer::create(*device_, 0);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code, Errc::invalid_argument);
}

TEST_F(BufferTest, RangeChecksRejectOverflowAndOutOfBounds) {
  VKN_ASSERT_OK_AND_ASSIGN(b, Buffer::create(*device_, 1024));
  EXPECT_TRUE(b.check_range(0, 1024).has_value());
  EXPECT_TRUE(b.check_range(1024, 0).has_value());
  EXPECT_EQ(b.check_range(1, 1024).error().code, Errc::invalid_argument);
  EXPECT_EQ(b.check_range(1025, 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(b.check_range(8, ~0ull).error().code, Errc::invalid_argument);
}

TEST_F(BufferTest, UploadDownloadRoundTripsRandomBytesAtOffsets) {
  VKN_ASSERT_OK_AND_ASSIGN(b, Buffer::create(*device_, 1 << 20));
  std::vector<uint8_t> data(300'001);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& v : data) v = static_cast<uint8_t>(byte(rng_));
  VKN_ASSERT_OK(stream_->upload(b, 4096 + 3, std::as_bytes(std::span(data)), kWait));
  std::vector<uint8_t> out(data.size(), 0xCD);  // poisoned
  VKN_ASSERT_OK(stream_->download(b, 4096 + 3, std::as_writable_bytes(std::span(out)), kWait));
  EXPECT_EQ(out, data);
}

TEST_F(BufferTest, HostVisibleKindsAreMappedAndBoundsChecked) {
  for (BufferKind kind : {BufferKind::upload, BufferKind::readback}) {
    VKN_ASSERT_OK_AND_ASSIGN(b, Buffer::create(*device_, 256, kind));
    ASSERT_TRUE(b.is_mapped()) << to_string(kind);
    const std::vector<std::byte> in(16, std::byte{7});
    VKN_ASSERT_OK(b.write_mapped(240, in));
    std::vector<std::byte> out(16);
    VKN_ASSERT_OK(b.read_mapped(240, out));
    EXPECT_EQ(out, in);
    EXPECT_EQ(b.write_mapped(241, in).error().code, Errc::invalid_argument);
  }
  VKN_ASSERT_OK_AND_ASSIGN(dev, Buffer::create(*device_, 256, BufferKind::device));
  if (!dev.is_mapped()) {
    std::vector<std::byte> out(4);
    EXPECT_EQ(dev.read_mapped(0, out).error().code, Errc::invalid_argument);
  }
}

TEST_F(BufferTest, InjectedAllocationFailureIsOutOfMemoryThenRecovers) {
  // A size above the dedicated threshold always needs a fresh vkAllocateMemory.
  const uint64_t big = MemoryAllocator::kDedicatedThreshold + 4096;
  device_->TEST_faults().fail_allocations = 1;
  auto b = Buffer::create(*device_, big);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code, Errc::out_of_device_memory);
  EXPECT_NE(b.error().message.find("bytes"), std::string::npos);
  auto again = Buffer::create(*device_, big);
  EXPECT_TRUE(again.has_value()) << again.error().to_string();
}

TEST_F(BufferTest, AbsurdSizeFailsCleanly) {
  auto b = Buffer::create(*device_, 1ull << 52);
  ASSERT_FALSE(b.has_value());
  EXPECT_TRUE(b.error().code == Errc::out_of_device_memory || b.error().code == Errc::out_of_host_memory ||
              b.error().code == Errc::vulkan_error)
      << b.error().to_string();
}

TEST_F(BufferTest, SmallBuffersReuseBlocksWithoutNewDeviceAllocations) {
  { VKN_ASSERT_OK_AND_ASSIGN(warm, Buffer::create(*device_, 4096)); }
  const uint64_t before = device_->allocator().stats().device_allocations;
  for (int i = 0; i < 200; ++i) {
    VKN_ASSERT_OK_AND_ASSIGN(b, Buffer::create(*device_, 4096 + 64 * i));
  }
  EXPECT_EQ(device_->allocator().stats().device_allocations, before);
}

TEST_F(BufferTest, ReleasedRangesCoalesce) {
  const uint64_t used_before = device_->allocator().stats().used_bytes;
  {
    std::vector<Buffer> many;
    for (int i = 0; i < 64; ++i) {
      VKN_ASSERT_OK_AND_ASSIGN(b, Buffer::create(*device_, 100'000));
      many.push_back(std::move(b));
    }
    EXPECT_GE(device_->allocator().stats().used_bytes, used_before + 64 * 100'000);
  }
  EXPECT_EQ(device_->allocator().stats().used_bytes, used_before);
  // After coalescing, one range nearly the size of a block fits again without a new block.
  const uint64_t blocks = device_->allocator().stats().blocks;
  VKN_ASSERT_OK_AND_ASSIGN(big, Buffer::create(*device_, MemoryAllocator::kDedicatedThreshold));
  EXPECT_EQ(device_->allocator().stats().blocks, blocks);
}

}  // namespace
}  // namespace vkn
