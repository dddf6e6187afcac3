#include "vknode/gpu/device.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "gpu/memory_allocator.h"

namespace vkn {
namespace {

TEST(DeviceTest, ListsAtLeastOneDeviceWithSaneLimits) {
  auto devices = list_devices();
  ASSERT_TRUE(devices.has_value()) << devices.error().to_string();
  ASSERT_FALSE(devices->empty());
  for (const DeviceInfo& d : *devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GE(d.api_version, VK_API_VERSION_1_2);
    EXPECT_GE(d.max_workgroup_invocations, 128u);
    EXPECT_GE(d.max_push_constants_size, 128u);
    EXPECT_FALSE(d.heaps.empty());
    EXPECT_NE(describe(d).find(d.name), std::string::npos);
  }
}

TEST(DeviceTest, CreatesWithRobustAccessAndAComputeQueue) {
  auto device = Device::create();
  ASSERT_TRUE(device.has_value()) << device.error().to_string();
  EXPECT_NE((*device)->handle(), VK_NULL_HANDLE);
  EXPECT_NE((*device)->queue(), VK_NULL_HANDLE);
  EXPECT_TRUE((*device)->info().has_push_descriptor);
  const char* validation = std::getenv("VKNODE_VALIDATION");
  if (validation != nullptr && std::string(validation) == "1") {
    EXPECT_TRUE((*device)->validation_enabled());
  }
  EXPECT_EQ((*device)->validation_error_count(), 0u);
}

TEST(DeviceTest, SelectsByIndexNameSubstringAndUuid) {
  auto devices = list_devices();
  ASSERT_TRUE(devices.has_value());
  const DeviceInfo& first = devices->front();
  for (const std::string& selector : {std::string("0"), first.name.substr(0, 4), uuid_string(first.device_uuid)}) {
    DeviceOptions options;
    options.selector = selector;
    auto device = Device::create(options);
    ASSERT_TRUE(device.has_value()) << selector << ": " << device.error().to_string();
    EXPECT_EQ((*device)->info().device_uuid, first.device_uuid) << selector;
  }
}

TEST(DeviceTest, UnknownSelectorIsNotFoundAndListsDevices) {
  DeviceOptions options;
  options.selector = "no-such-gpu-anywhere";
  auto device = Device::create(options);
  ASSERT_FALSE(device.has_value());
  EXPECT_EQ(device.error().code, Errc::not_found);
  EXPECT_NE(device.error().message.find("devices:"), std::string::npos);
}

TEST(DeviceTest, EnvironmentSelectorIsHonoured) {
  setenv("VKNODE_DEVICE", "no-such-gpu-anywhere", 1);
  auto device = Device::create();
  unsetenv("VKNODE_DEVICE");
  ASSERT_FALSE(device.has_value());
  EXPECT_EQ(device.error().code, Errc::not_found);
}

TEST(DeviceTest, MemoryTypeLookupHonoursRequiredFlags) {
  auto device = Device::create();
  ASSERT_TRUE(device.has_value());
  auto host = (*device)->find_memory_type(~0u, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT, 0);
  ASSERT_TRUE(host.has_value());
  EXPECT_TRUE((*device)->memory_properties().memoryTypes[*host].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
  auto none = (*device)->find_memory_type(0u, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT, 0);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, Errc::unsupported);
}

}  // namespace
}  // namespace vkn
