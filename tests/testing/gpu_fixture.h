// GpuTest: a gtest fixture with a Device (validation on when $VKNODE_VALIDATION=1, as
// ctest sets it), a Stream and a KernelCache. The Device is shared by all tests of the
// binary (some drivers refuse new instances after a few dozen in one process); a test
// that must break its device calls use_own_device(). A test fails if the validation
// layer reported an error while it ran.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "vknode/gpu/buffer.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel_cache.h"
#include "vknode/gpu/stream.h"

namespace vkn::testing {

inline constexpr std::chrono::seconds kWait{60};

// Unwraps a Result in a test, failing the test with the error's text.
#define VKN_ASSERT_OK_AND_ASSIGN(lhs, expr)                                   \
  auto lhs##_result = (expr);                                               \
  ASSERT_TRUE(lhs##_result.has_value()) << lhs##_result.error().to_string(); \
  auto lhs = std::move(*lhs##_result)

#define VKN_ASSERT_OK(expr)                                                  \
  do {                                                                       \
    auto vkn_r = (expr);                                                     \
    ASSERT_TRUE(vkn_r.has_value()) << vkn_r.error().to_string();             \
  } while (0)

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Switches this test to a device of its own (for tests that lose or poison it).
  void use_own_device();

  // Bytes of a span of trivially copyable values.
  template <typename T>
  static std::span<const std::byte> bytes_of(std::span<const T> v) {
    return std::as_bytes(v);
  }
  template <typename T>
  static std::span<const std::byte> push_of(const T& push) {
    return std::as_bytes(std::span(&push, 1));
  }
  // Uploads `values` into a new device buffer (fails the test on error).
  template <typename T>
  Buffer make_buffer(const std::vector<T>& values) {
    auto b = Buffer::create(*device_, values.size() * sizeof(T));
    EXPECT_TRUE(b.has_value()) << b.error().to_string();
    auto r = stream_->upload(*b, 0, std::as_bytes(std::span(values)), kWait);
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return std::move(*b);
  }
  template <typename T>
  std::vector<T> read_buffer(const Buffer& b, size_t count) {
    std::vector<T> out(count);
    auto r = stream_->download(b, 0, std::as_writable_bytes(std::span(out)), kWait);
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return out;
  }

  std::mt19937 rng_{12345};
  Device* device_ = nullptr;
  std::unique_ptr<Device> own_device_;
  uint64_t validation_errors_at_start_ = 0;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<KernelCache> kernels_;
};

}  // namespace vkn::testing
