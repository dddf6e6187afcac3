// The node bench's baseline in a child process (bench/core_dispatch_child.h): the CLI
// re-executed as `bench-child dispatch` answers blocks of timed dispatches and checks its
// buffer at the end; every way the child can fail comes back as an error.
#include "core_dispatch_child.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core_dispatch.h"

namespace vkn::detail {
namespace {

std::string device_selector() {
  const char* d = std::getenv("VKNODE_DEVICE");
  return d != nullptr ? d : "";
}

TEST(CoreDispatchChildTest, AnswersBlocksAndChecksItsBuffer) {
  auto child = CoreDispatchChild::start(VKNODE_CLI, device_selector());
  ASSERT_TRUE(child) << child.error().to_string();
  for (int count : {1, 5}) {
    auto us = (*child)->block(count);
    ASSERT_TRUE(us) << us.error().to_string();
    ASSERT_EQ(us->size(), static_cast<size_t>(count));
    for (double t : *us) EXPECT_GT(t, 0.0);
  }
  auto done = (*child)->finish();
  EXPECT_TRUE(done) << done.error().to_string();
}

TEST(CoreDispatchChildTest, RefusesBlocksOfNoDispatches) {
  auto child = CoreDispatchChild::start(VKNODE_CLI, device_selector());
  ASSERT_TRUE(child) << child.error().to_string();
  auto none = (*child)->block(0);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
  auto one = (*child)->block(1);  // still answering
  ASSERT_TRUE(one) << one.error().to_string();
  EXPECT_EQ(one->size(), 1u);
  EXPECT_TRUE((*child)->finish());
}

TEST(CoreDispatchChildTest, RunsABlockOnTheCpuItIsGiven) {
  auto child = CoreDispatchChild::start(VKNODE_CLI, device_selector());
  ASSERT_TRUE(child) << child.error().to_string();
  auto here = (*child)->block(3, sched_getcpu());
  ASSERT_TRUE(here) << here.error().to_string();
  EXPECT_EQ(here->size(), 3u);
  auto anywhere = (*child)->block(2, -1);
  ASSERT_TRUE(anywhere) << anywhere.error().to_string();
  EXPECT_TRUE((*child)->finish());
}

TEST(CoreDispatchChildTest, ACpuTheChildCannotRunOnIsAnError) {
  auto child = CoreDispatchChild::start(VKNODE_CLI, device_selector());
  ASSERT_TRUE(child) << child.error().to_string();
  auto none = (*child)->block(1, -2);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
  // A CPU number the machine does not have: the child answers so, then exits.
  auto missing = (*child)->block(1, CPU_SETSIZE - 1);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().to_string().find("cannot run on CPU"), std::string::npos) << missing.error().to_string();
  auto after = (*child)->block(1);
  ASSERT_FALSE(after);
  EXPECT_NE(after.error().to_string().find("exited with status 1"), std::string::npos) << after.error().to_string();
}

TEST(CoreDispatchChildTest, AChildThatExitsAtOnceIsAnError) {
  auto child = CoreDispatchChild::start("/bin/false", "");
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().message.find("exited with status 1"), std::string::npos) << child.error().to_string();
}

TEST(CoreDispatchChildTest, AChildThatNeverAnswersTimesOutAndIsKilled) {
  // A stand-in that keeps the socket open and says nothing.
  const std::filesystem::path script =
      std::filesystem::temp_directory_path() / ("vknode_silent_child_" + std::to_string(getpid()));
  {
    std::ofstream out(script);
    out << "#!/bin/sh\nexec sleep 30\n";
  }
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  const auto t0 = std::chrono::steady_clock::now();
  auto child = CoreDispatchChild::start(script.string(), "", std::chrono::milliseconds(200));
  const auto waited = std::chrono::steady_clock::now() - t0;
  std::filesystem::remove(script);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code, Errc::timeout) << child.error().to_string();
  EXPECT_LT(waited, std::chrono::seconds(10));  // the child was killed, not waited out
}

TEST(CoreDispatchChildTest, AMissingExecutableIsAnError) {
  auto child = CoreDispatchChild::start("/nonexistent/vknode", "");
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().to_string().find("/nonexistent/vknode"), std::string::npos) << child.error().to_string();
}

TEST(CoreDispatchChildTest, AnUnknownDeviceIsTheChildsError) {
  auto child = CoreDispatchChild::start(VKNODE_CLI, "no such device anywhere");
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().to_string().find("could not start"), std::string::npos) << child.error().to_string();
}

TEST(CoreDispatchTest, TheDispatchFillsItsBuffer) {
  auto core = CoreDispatch::create(device_selector());
  ASSERT_TRUE(core) << core.error().to_string();
  ASSERT_TRUE((*core)->once());
  auto ok = (*core)->verify();
  EXPECT_TRUE(ok) << ok.error().to_string();
}

}  // namespace
}  // namespace vkn::detail
