#include "vknode/gpu/stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <numeric>

#include "testing/gpu_fixture.h"
#include "vknode/gpu/builtin_kernels.h"

namespace vkn {
namespace {

using namespace std::chrono_literals;
using testing::kWait;

class StreamTest : public testing::GpuTest {
 protected:
  std::shared_ptr<Kernel> builtin(BuiltinKernel k) {
    auto r = kernels_->get_or_create(builtin_spirv(k), {}, to_string(k));
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return r ? *r : nullptr;
  }
  // Records a spin kernel long enough to outlive a 1 ms deadline on any device.
  void record_long_spin(const Buffer& out) {
    auto spin = builtin(BuiltinKernel::spin);
    const SpinPush push{2'000'000, 64 * 64};
    const BufferBinding b[] = {{0, &out}};
    ASSERT_TRUE(stream_->record_dispatch(*spin, b, push_of(push), {64, 1, 1}).has_value());
  }
};

TEST_F(StreamTest, FillCopyAndDownloadInOneBatchSeeEachOthersWrites) {
  VKN_ASSERT_OK_AND_ASSIGN(a, Buffer::create(*device_, 4096));
  VKN_ASSERT_OK_AND_ASSIGN(b, Buffer::create(*device_, 4096));
  std::vector<uint32_t> out(1024, 0xDEADBEEF);
  VKN_ASSERT_OK(stream_->record_fill(a, 0, 4096, 0x01020304));
  VKN_ASSERT_OK(stream_->record_copy(a, 0, b, 0, 4096));
  VKN_ASSERT_OK(stream_->record_fill(a, 0, 4096, 0));
  VKN_ASSERT_OK(stream_->record_download(b, 0, std::as_writable_bytes(std::span(out))));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  for (uint32_t v : out) ASSERT_EQ(v, 0x01020304u);
}

TEST_F(StreamTest, RejectsBadRangesBeforeRecording) {
  VKN_ASSERT_OK_AND_ASSIGN(a, Buffer::create(*device_, 1024));
  EXPECT_EQ(stream_->record_fill(a, 2, 8, 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(stream_->record_fill(a, 0, 2048, 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(stream_->record_copy(a, 0, a, 100, 200).error().code, Errc::invalid_argument);  // overlap
  EXPECT_EQ(stream_->record_copy(a, 1000, a, 0, 100).error().code, Errc::invalid_argument);
  std::vector<std::byte> big(2048);
  EXPECT_EQ(stream_->record_upload(a, 0, big).error().code, Errc::invalid_argument);
  EXPECT_EQ(stream_->record_download(a, 512, big).error().code, Errc::invalid_argument);
  EXPECT_FALSE(stream_->has_open_batch());
}

TEST_F(StreamTest, TimeoutLeavesTheBatchRunningAndALaterWaitCompletesIt) {
  VKN_ASSERT_OK_AND_ASSIGN(out, Buffer::create(*device_, 64 * 64 * 4));
  record_long_spin(out);
  VKN_ASSERT_OK_AND_ASSIGN(ticket, stream_->submit());
  auto quick = stream_->wait(ticket, 1ms);
  ASSERT_FALSE(quick.has_value()) << "the spin kernel finished within 1 ms; make it longer";
  EXPECT_EQ(quick.error().code, Errc::timeout);
  EXPECT_FALSE(stream_->is_idle());
  VKN_ASSERT_OK(stream_->wait(ticket, kWait));
  EXPECT_TRUE(stream_->is_idle());
  // The slot is reusable afterwards: its fence was reset only after it signalled.
  VKN_ASSERT_OK(stream_->record_fill(out, 0, 64, 0));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
}

TEST_F(StreamTest, SlotReuseWaitsForThePendingBatchWithOneSlot) {
  StreamOptions options;
  options.slots = 1;
  VKN_ASSERT_OK_AND_ASSIGN(one, Stream::create(*device_, options));
  VKN_ASSERT_OK_AND_ASSIGN(buf, Buffer::create(*device_, 4096));
  std::vector<uint32_t> seen(1, 0);
  for (uint32_t i = 1; i <= 20; ++i) {
    VKN_ASSERT_OK(one->record_fill(buf, 0, 4096, i));
    VKN_ASSERT_OK(one->submit());
  }
  VKN_ASSERT_OK(one->record_download(buf, 0, std::as_writable_bytes(std::span(seen))));
  VKN_ASSERT_OK(one->submit_and_wait(kWait));
  EXPECT_EQ(seen[0], 20u);
}

TEST_F(StreamTest, InjectedDeviceLossIsDistinctFromTimeoutAndSticks) {
  use_own_device();
  VKN_ASSERT_OK_AND_ASSIGN(buf, Buffer::create(*device_, 256));
  device_->TEST_faults().lose_device_on_submit = 1;
  VKN_ASSERT_OK(stream_->record_fill(buf, 0, 256, 1));
  auto r = stream_->submit();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::device_lost);
  EXPECT_TRUE(device_->is_lost());
  EXPECT_EQ(stream_->record_fill(buf, 0, 256, 1).error().code, Errc::device_lost);
  EXPECT_EQ(Buffer::create(*device_, 64).error().code, Errc::device_lost);
}

TEST_F(StreamTest, InjectedHangTimesOutAtTheDeadline) {
  VKN_ASSERT_OK_AND_ASSIGN(buf, Buffer::create(*device_, 256));
  VKN_ASSERT_OK(stream_->record_fill(buf, 0, 256, 1));
  VKN_ASSERT_OK_AND_ASSIGN(ticket, stream_->submit());
  device_->TEST_faults().hang_waits = 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = stream_->wait(ticket, 50ms);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  VKN_ASSERT_OK(stream_->wait(ticket, kWait));
}

TEST_F(StreamTest, StagingIsReusedAcrossBatches) {
  VKN_ASSERT_OK_AND_ASSIGN(buf, Buffer::create(*device_, 1 << 20));
  std::vector<std::byte> data(1 << 20, std::byte{3});
  for (int i = 0; i < 6; ++i) VKN_ASSERT_OK(stream_->upload(buf, 0, data, kWait));
  const uint64_t allocations = stream_->stats().staging_allocations;
  for (int i = 0; i < 30; ++i) VKN_ASSERT_OK(stream_->upload(buf, 0, data, kWait));
  EXPECT_EQ(stream_->stats().staging_allocations, allocations);
}

TEST_F(StreamTest, BatchStagingLimitIsEnforcedButSyncTransfersChunk) {
  StreamOptions options;
  options.max_staging_bytes = 1 << 20;
  VKN_ASSERT_OK_AND_ASSIGN(small, Stream::create(*device_, options));
  VKN_ASSERT_OK_AND_ASSIGN(buf, Buffer::create(*device_, 5 << 20));
  std::vector<uint32_t> data(5 << 18);
  std::iota(data.begin(), data.end(), 7u);
  auto too_big = small->record_upload(buf, 0, std::as_bytes(std::span(data)));
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().code, Errc::invalid_argument);
  small->discard_open_batch();
  VKN_ASSERT_OK(small->upload(buf, 0, std::as_bytes(std::span(data)), kWait));
  std::vector<uint32_t> out(data.size(), 0);
  VKN_ASSERT_OK(small->download(buf, 0, std::as_writable_bytes(std::span(out)), kWait));
  EXPECT_EQ(out, data);
}

TEST_F(StreamTest, ZeroCopyStagedUploadLandsInTheBuffer) {
  VKN_ASSERT_OK_AND_ASSIGN(buf, Buffer::create(*device_, 4096));
  VKN_ASSERT_OK_AND_ASSIGN(staged, stream_->stage(4096));
  for (uint64_t i = 0; i < 4096; ++i) staged.data[i] = std::byte(i * 7);
  VKN_ASSERT_OK(stream_->record_upload_staged(staged, buf, 0));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  const auto out = read_buffer<uint8_t>(buf, 4096);
  for (uint64_t i = 0; i < 4096; ++i) ASSERT_EQ(out[i], static_cast<uint8_t>(i * 7));
}

TEST_F(StreamTest, ZeroCopyStagedDownloadIsReadableAfterTheWait) {
  std::vector<uint32_t> data(1024);
  for (uint32_t i = 0; i < 1024; ++i) data[i] = i * 2654435761u;
  Buffer buf = make_buffer(data);
  VKN_ASSERT_OK_AND_ASSIGN(staged, stream_->record_download_staged(buf, 512, 2048));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  std::vector<uint32_t> got(512);
  std::memcpy(got.data(), staged.data, 2048);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + 128));
  EXPECT_EQ(stream_->record_download_staged(buf, 4000, 200).error().code, Errc::invalid_argument);
}

TEST_F(StreamTest, SubmitWithNothingOpenIsAlreadyComplete) {
  VKN_ASSERT_OK_AND_ASSIGN(t, stream_->submit());
  VKN_ASSERT_OK(stream_->wait(t, 1ms));
  EXPECT_EQ(stream_->wait(Ticket{999}, 1ms).error().code, Errc::invalid_argument);
}

TEST_F(StreamTest, TheNextBatchOpenedDuringAWaitIsUsedAndNeverSubmittedEmpty) {
  VKN_ASSERT_OK_AND_ASSIGN(out, Buffer::create(*device_, 64 * 64 * 4));
  record_long_spin(out);
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  // The spin outlived the first look at the counter, so the wait opened the next batch.
  EXPECT_EQ(stream_->stats().batches_opened_early, 1u);
  EXPECT_FALSE(stream_->has_open_batch()) << "an early batch holds nothing yet";
  const uint64_t batches = stream_->stats().batches;
  // Nothing recorded: a submit is complete at once and a discard keeps the batch for later.
  VKN_ASSERT_OK_AND_ASSIGN(empty, stream_->submit());
  VKN_ASSERT_OK(stream_->wait(empty, kWait));
  stream_->discard_open_batch();
  EXPECT_EQ(stream_->stats().batches, batches);
  // The next recording goes into it, and its results are right.
  std::vector<uint32_t> got(64);
  VKN_ASSERT_OK(stream_->record_fill(out, 0, 256, 0x5A5A5A5Au));
  VKN_ASSERT_OK(stream_->record_download(out, 0, std::as_writable_bytes(std::span(got))));
  EXPECT_TRUE(stream_->has_open_batch());
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  EXPECT_EQ(stream_->stats().batches, batches + 1);
  for (uint32_t v : got) ASSERT_EQ(v, 0x5A5A5A5Au);
  // A discarded batch (something recorded) is dropped, and the stream goes on.
  VKN_ASSERT_OK(stream_->record_fill(out, 0, 256, 1));
  stream_->discard_open_batch();
  EXPECT_FALSE(stream_->has_open_batch());
  VKN_ASSERT_OK(stream_->record_download(out, 0, std::as_writable_bytes(std::span(got))));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  for (uint32_t v : got) ASSERT_EQ(v, 0x5A5A5A5Au) << "the discarded fill ran";
}

// A staged download stays readable until its slot's next batch opens: a wait never opens
// that batch early.
TEST_F(StreamTest, AWaitLeavesASlotWithStagedDownloadsAlone) {
  VKN_ASSERT_OK_AND_ASSIGN(out, Buffer::create(*device_, 64 * 64 * 4));
  VKN_ASSERT_OK(stream_->record_fill(out, 0, 256, 0x600DF00Du));
  VKN_ASSERT_OK_AND_ASSIGN(staged, stream_->record_download_staged(out, 0, 256));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  record_long_spin(out);
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  // The third batch's slot is the last free one: the wait for it would open the staged
  // batch's slot next (the spin outlives the first look at the counter).
  const uint64_t opened = stream_->stats().batches_opened_early;
  record_long_spin(out);
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  EXPECT_EQ(stream_->stats().batches_opened_early, opened) << "the staged batch's slot was opened early";
  std::vector<uint32_t> got(64);
  std::memcpy(got.data(), staged.data, 256);
  EXPECT_EQ(got, std::vector<uint32_t>(64, 0x600DF00Du));
}

TEST_F(StreamTest, AWaitNeverOpensABatchWhoseSlotIsBusy) {
  StreamOptions one;
  one.slots = 1;
  VKN_ASSERT_OK_AND_ASSIGN(single, Stream::create(*device_, one));
  VKN_ASSERT_OK_AND_ASSIGN(out, Buffer::create(*device_, 64 * 64 * 4));
  auto spin = builtin(BuiltinKernel::spin);
  const SpinPush push{2'000'000, 64 * 64};
  const BufferBinding b[] = {{0, &out}};
  VKN_ASSERT_OK(single->record_dispatch(*spin, b, push_of(push), {64, 1, 1}));
  VKN_ASSERT_OK(single->submit_and_wait(kWait));
  EXPECT_EQ(single->stats().batches_opened_early, 0u) << "its only slot was the one the GPU ran";
  VKN_ASSERT_OK(single->record_fill(out, 0, 64, 0));
  VKN_ASSERT_OK(single->submit_and_wait(kWait));
}

}  // namespace
}  // namespace vkn
