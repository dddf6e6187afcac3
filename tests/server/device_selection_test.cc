// expand_device_selectors: comma lists, repeats and "all" against a given device list.
#include "server/device_selection.h"

#include <gtest/gtest.h>

namespace vkn::server {
namespace {

DeviceInfo device(uint32_t index, VkPhysicalDeviceType type) {
  DeviceInfo d;
  d.index = index;
  d.type = type;
  d.name = "dev" + std::to_string(index);
  return d;
}

using Strings = std::vector<std::string>;

TEST(DeviceSelectionTest, CommaListsAndRepeatsKeepTheirOrder) {
  const Strings given = {"1,llvm", "0", "0"};
  auto out = expand_device_selectors(given, {});
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(*out, (Strings{"1", "llvm", "0", "0"}));
}

TEST(DeviceSelectionTest, AllSelectsEveryGpuButNotTheCpu) {
  const std::vector<DeviceInfo> devices = {device(0, VK_PHYSICAL_DEVICE_TYPE_CPU),
                                           device(1, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU),
                                           device(2, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU)};
  auto out = expand_device_selectors(Strings{"all"}, devices);
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(*out, (Strings{"1", "2"}));
}

TEST(DeviceSelectionTest, AllFallsBackToTheCpuDeviceWhenItIsTheOnlyKind) {
  auto out = expand_device_selectors(Strings{"all"}, {device(0, VK_PHYSICAL_DEVICE_TYPE_CPU)});
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(*out, (Strings{"0"}));
}

TEST(DeviceSelectionTest, EmptySelectorsAndNoDevicesAreErrors) {
  for (const char* bad : {"", "0,", ",0", "0,,1"}) {
    auto out = expand_device_selectors(Strings{bad}, {});
    ASSERT_FALSE(out) << bad;
    EXPECT_EQ(out.error().code, Errc::invalid_argument) << bad;
  }
  auto none = expand_device_selectors(Strings{"all"}, {});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::not_found);
}

TEST(DeviceSelectionTest, AllOnThisMachineFindsADevice) {
  // On lavapipe (CI) this is the CPU fallback; on a GPU machine the GPUs.
  auto out = expand_device_selectors(Strings{"all"});
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_FALSE(out->empty());
}

}  // namespace
}  // namespace vkn::server
