#include "node/cpu_speed.h"

#include <gtest/gtest.h>

#include "node/worker_placement.h"

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

TEST(CpuSpeedTest, MeasuresEveryAllowedCpuAndLeavesNoneUnmeasured) {
  const std::vector<int> before = thread_cpus();
  ASSERT_FALSE(before.empty());
  const std::map<int, double> seconds = measure_cpu_speeds(before);
  set_thread_cpus(before);
  EXPECT_EQ(thread_cpus(), before);
  ASSERT_EQ(seconds.size(), before.size());
  for (const auto& [cpu, s] : seconds) {
    EXPECT_GT(s, 0.0) << "cpu " << cpu;
    EXPECT_LT(s, 0.1) << "cpu " << cpu << ": 16k steps of integer work took " << s << " s";
  }
  // A CPU the thread may not use is skipped, not measured elsewhere.
  const std::map<int, double> none = measure_cpu_speeds({CPU_SETSIZE - 1});
  set_thread_cpus(before);
  EXPECT_TRUE(none.empty() || before.back() == CPU_SETSIZE - 1);
}

}  // namespace
}  // namespace vkn::detail
