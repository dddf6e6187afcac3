#include "testing/gpu_fixture.h"

namespace vkn::testing {

void GpuTest::SetUp() {
  auto device = Device::create();
  ASSERT_TRUE(device.has_value()) << device.error().to_string();
  device_ = std::move(*device);
  auto stream = Stream::create(*device_);
  ASSERT_TRUE(stream.has_value()) << stream.error().to_string();
  stream_ = std::move(*stream);
  kernels_ = std::make_unique<KernelCache>(*device_, nullptr);
  rng_.seed(std::random_device{}());
}

void GpuTest::TearDown() {
  if (device_ == nullptr) return;
  EXPECT_EQ(device_->validation_error_count(), 0u) << "last: " << device_->last_validation_message();
  kernels_.reset();
  stream_.reset();
  device_.reset();
}

}  // namespace vkn::testing
