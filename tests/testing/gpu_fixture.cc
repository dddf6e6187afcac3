#include "testing/gpu_fixture.h"

namespace vkn::testing {
namespace {

// Created on first use; lives until the test binary exits.
Result<Device*> shared_device() {
  static Result<std::unique_ptr<Device>> device = Device::create();
  if (!device) return fail(device.error());
  return device->get();
}

}  // namespace

void GpuTest::SetUp() {
  auto device = shared_device();
  ASSERT_TRUE(device.has_value()) << device.error().to_string();
  device_ = *device;
  ASSERT_FALSE(device_->is_lost()) << "an earlier test lost the shared device";
  validation_errors_at_start_ = device_->validation_error_count();
  auto stream = Stream::create(*device_);
  ASSERT_TRUE(stream.has_value()) << stream.error().to_string();
  stream_ = std::move(*stream);
  kernels_ = std::make_unique<KernelCache>(*device_, nullptr);
  rng_.seed(std::random_device{}());
}

void GpuTest::use_own_device() {
  kernels_.reset();
  stream_.reset();
  auto device = Device::create();
  ASSERT_TRUE(device.has_value()) << device.error().to_string();
  own_device_ = std::move(*device);
  device_ = own_device_.get();
  validation_errors_at_start_ = 0;
  auto stream = Stream::create(*device_);
  ASSERT_TRUE(stream.has_value()) << stream.error().to_string();
  stream_ = std::move(*stream);
  kernels_ = std::make_unique<KernelCache>(*device_, nullptr);
}

void GpuTest::TearDown() {
  if (device_ == nullptr) return;
  EXPECT_EQ(device_->validation_error_count(), validation_errors_at_start_)
      << "last: " << device_->last_validation_message();
  kernels_.reset();
  stream_.reset();
  // Faults a test armed but did not trigger must not leak into the next test.
  device_->TEST_faults().fail_allocations = 0;
  device_->TEST_faults().hang_waits = 0;
  device_->TEST_faults().lose_device_on_submit = 0;
  own_device_.reset();
  device_ = nullptr;
}

}  // namespace vkn::testing
