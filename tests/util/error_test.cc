#include "vknode/error.h"

#include <gtest/gtest.h>
#include <vulkan/vulkan.h>

#include <set>
#include <string>

namespace vkn {
namespace {

TEST(ErrorTest, EveryCodeHasADistinctName) {
  std::set<std::string> names;
  for (int c = static_cast<int>(Errc::ok); c <= static_cast<int>(Errc::cancelled); ++c) {
    const std::string name(to_string(static_cast<Errc>(c)));
    EXPECT_NE(name, "unknown") << c;
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
  }
  EXPECT_EQ(to_string(Errc::device_lost), "device_lost");
  EXPECT_EQ(to_string(Errc::node_timeout), "node_timeout");
}

TEST(ErrorTest, ConvertsToErrorCodeInTheVknodeCategory) {
  std::error_code ec = Errc::kernel_quarantined;
  EXPECT_EQ(ec.category().name(), std::string("vknode"));
  EXPECT_EQ(ec.message(), "kernel_quarantined");
  EXPECT_EQ(ec, make_error_code(Errc::kernel_quarantined));
  EXPECT_NE(ec, make_error_code(Errc::node_dead));
}

TEST(ErrorTest, MapsVkResultsToDistinctCodes) {
  EXPECT_EQ(Error::vulkan(VK_ERROR_DEVICE_LOST, "x").code, Errc::device_lost);
  EXPECT_EQ(Error::vulkan(VK_TIMEOUT, "x").code, Errc::timeout);
  EXPECT_EQ(Error::vulkan(VK_ERROR_OUT_OF_DEVICE_MEMORY, "x").code, Errc::out_of_device_memory);
  EXPECT_EQ(Error::vulkan(VK_ERROR_OUT_OF_HOST_MEMORY, "x").code, Errc::out_of_host_memory);
  EXPECT_EQ(Error::vulkan(VK_ERROR_EXTENSION_NOT_PRESENT, "x").code, Errc::unsupported);
  EXPECT_EQ(Error::vulkan(VK_ERROR_INITIALIZATION_FAILED, "x").code, Errc::vulkan_error);
  EXPECT_EQ(Error::vulkan(VK_ERROR_DEVICE_LOST, "x").vk_result, VK_ERROR_DEVICE_LOST);
}

TEST(ErrorTest, MessageNamesWhatAndWhich) {
  const Error e = Error::not_found("no buffer", "weights");
  EXPECT_EQ(e.code, Errc::not_found);
  EXPECT_EQ(e.to_string(), "not_found: no buffer: weights");
  EXPECT_EQ(Error::vulkan(VK_ERROR_DEVICE_LOST, "submit").to_string(), "device_lost (VK_ERROR_DEVICE_LOST): submit");
}

TEST(ErrorTest, FailBuildsAnUnexpected) {
  Result<int> r = fail(Errc::quota_exceeded, "budget", "64 MiB");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::quota_exceeded);
  EXPECT_EQ(r.error().message, "budget: 64 MiB");
}

}  // namespace
}  // namespace vkn
