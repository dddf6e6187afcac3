#include "node/cpu_speed.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <limits>

#include "node/worker_placement.h"
#include "testing/gpu_fixture.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/stream.h"

namespace vkn::detail {
namespace {

TEST(CpuSpeedTest, KeepsTheCpusWithinTheSlackOfTheFastest) {
  // The H200 machine's shape: most CPUs alike, a few 1.6x slower, one far slower.
  std::map<int, double> seconds;
  for (int c = 0; c < 16; ++c) seconds[c] = 1.0 + 0.01 * (c % 3);
  for (int c : {8, 9, 10, 11, 15}) seconds[c] = 1.6;
  seconds[14] = 20.0;
  EXPECT_EQ(fastest_cpus(seconds, 0.15, 2), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 12, 13}));
  // Alike CPUs are all kept.
  EXPECT_EQ(fastest_cpus({{0, 1.0}, {1, 1.1}, {2, 1.05}, {3, 1.0}}, 0.15, 2), (std::vector<int>{0, 1, 2, 3}));
}

TEST(CpuSpeedTest, KeepsAtLeastTheAskedNumberOfTheFastest) {
  EXPECT_EQ(fastest_cpus({{0, 3.0}, {1, 1.0}, {2, 2.0}, {3, 5.0}}, 0.15, 2), (std::vector<int>{1, 2}));
  EXPECT_EQ(fastest_cpus({{4, 1.0}}, 0.15, 2), (std::vector<int>{4}));
  EXPECT_TRUE(fastest_cpus({}, 0.15, 2).empty());
}

TEST(CpuSpeedTest, TimesTheWorkOnEachCpuAndKeepsTheLeastOfTheTries) {
  const std::vector<int> before = thread_cpus();
  ASSERT_FALSE(before.empty());
  std::map<int, int> calls;
  std::map<int, double> seconds = measure_cpu_speeds(before, [&] {
    const int cpu = sched_getcpu();
    const int n = ++calls[cpu];
    return cpu * 10.0 + 5.0 / n;  // later tries are faster: the least is the last one
  }, 5);
  set_thread_cpus(before);
  EXPECT_EQ(thread_cpus(), before);
  ASSERT_EQ(seconds.size(), before.size());
  for (int cpu : before) {
    EXPECT_EQ(calls[cpu], 5) << "cpu " << cpu;
    EXPECT_DOUBLE_EQ(seconds[cpu], cpu * 10.0 + 1.0) << "timed somewhere other than cpu " << cpu;
  }
  // A CPU the thread may not use is left out, not timed elsewhere.
  calls.clear();
  seconds = measure_cpu_speeds({CPU_SETSIZE - 1}, [&] { return 1.0 * ++calls[sched_getcpu()]; }, 3);
  set_thread_cpus(before);
  if (before.back() != CPU_SETSIZE - 1) {
    EXPECT_TRUE(seconds.empty());
    EXPECT_TRUE(calls.empty());
  }
}

class RecordAndSubmitTest : public testing::GpuTest {};

TEST_F(RecordAndSubmitTest, TimesAFillThatRunsAndFailsCleanlyOnABadBuffer) {
  VKN_ASSERT_OK_AND_ASSIGN(scratch, Buffer::create(*device_, 256));
  VKN_ASSERT_OK(stream_->record_fill(scratch, 0, 256, 0x01010101));
  VKN_ASSERT_OK(stream_->submit_and_wait(testing::kWait));
  const double s = time_record_and_submit(*stream_, scratch);
  EXPECT_GT(s, 0.0);
  EXPECT_LT(s, 1.0);
  std::vector<uint32_t> got(64, 7);
  VKN_ASSERT_OK(stream_->download(scratch, 0, std::as_writable_bytes(std::span(got)), testing::kWait));
  EXPECT_EQ(got, std::vector<uint32_t>(64, 0)) << "the timed fill did not run";
  VKN_ASSERT_OK_AND_ASSIGN(small, Buffer::create(*device_, 16));
  EXPECT_EQ(time_record_and_submit(*stream_, small), std::numeric_limits<double>::infinity());
  EXPECT_FALSE(stream_->has_open_batch());
}

}  // namespace
}  // namespace vkn::detail
