#include "vknode/node/buffer_registry.h"

#include <gtest/gtest.h>

#include <cstring>

#include "testing/gpu_fixture.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/stream.h"

namespace vkn {
namespace {

using testing::kWait;

class BufferRegistryTest : public testing::GpuTest {
 protected:
  BufferRegistry registry_{1 << 20};
  uint64_t batches() const { return stream_->stats().batches; }
};

// The node syncs durable buffers after every job: with none written, that costs no batch.
TEST_F(BufferRegistryTest, SyncsOnlyDurableBuffersThatWereWritten) {
  VKN_ASSERT_OK(registry_.create(*device_, "d", {256, ElementType::u32, {64}, true}));
  VKN_ASSERT_OK(registry_.create(*device_, "p", {256}));
  const uint64_t before = batches();
  VKN_ASSERT_OK(registry_.sync_durable(*stream_, kWait));
  VKN_ASSERT_OK_AND_ASSIGN(plain, registry_.get_for_write("p"));
  VKN_ASSERT_OK(stream_->record_fill(*plain, 0, 256, 1));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  VKN_ASSERT_OK(registry_.sync_durable(*stream_, kWait));
  EXPECT_EQ(batches(), before + 1) << "a sync with no durable buffer written submitted a batch";

  VKN_ASSERT_OK_AND_ASSIGN(durable, registry_.get_for_write("d"));
  VKN_ASSERT_OK(stream_->record_fill(*durable, 0, 256, 0xD00D));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  VKN_ASSERT_OK(registry_.sync_durable(*stream_, kWait));
  EXPECT_EQ(batches(), before + 3);
  const std::vector<std::byte>* mirror = registry_.durable_mirror("d");
  ASSERT_NE(mirror, nullptr);
  std::vector<uint32_t> words(64);
  std::memcpy(words.data(), mirror->data(), 256);
  EXPECT_EQ(words, std::vector<uint32_t>(64, 0xD00D));
  VKN_ASSERT_OK(registry_.sync_durable(*stream_, kWait));
  EXPECT_EQ(batches(), before + 3) << "synced again with nothing written since";
}

TEST_F(BufferRegistryTest, ARemovedDirtyBufferIsNotSynced) {
  VKN_ASSERT_OK(registry_.create(*device_, "d", {256, ElementType::bytes, {}, true}));
  VKN_ASSERT_OK_AND_ASSIGN(durable, registry_.get_for_write("d"));
  (void)durable;
  VKN_ASSERT_OK(registry_.remove("d"));
  const uint64_t before = batches();
  VKN_ASSERT_OK(registry_.sync_durable(*stream_, kWait));
  EXPECT_EQ(batches(), before);
  EXPECT_EQ(registry_.durable_mirror("d"), nullptr);
}

}  // namespace
}  // namespace vkn
