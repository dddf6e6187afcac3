// Each built-in kernel against a CPU reference, on fresh random inputs, with the
// output buffer poisoned before every run.
#include "vknode/gpu/builtin_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "testing/gpu_fixture.h"

namespace vkn {
namespace {

using testing::kWait;
constexpr uint32_t kPoison = 0x7FC0DEAD;  // a NaN pattern no kernel writes

class BuiltinKernelsTest : public testing::GpuTest {
 protected:
  std::shared_ptr<Kernel> kernel(BuiltinKernel k) {
    auto r = kernels_->get_or_create(builtin_spirv(k), {}, to_string(k));
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return r ? *r : nullptr;
  }
  Buffer poisoned(size_t words) { return make_buffer(std::vector<uint32_t>(words, kPoison)); }
  static uint32_t groups_for(uint32_t n, uint32_t per_group) { return std::max(1u, (n + per_group - 1) / per_group); }
  std::vector<float> random_floats(size_t n) {
    std::uniform_real_distribution<float> d(-10.0f, 10.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng_);
    return v;
  }
};

TEST_F(BuiltinKernelsTest, EveryBuiltinBuildsAndIsNamed) {
  for (BuiltinKernel k : all_builtin_kernels()) {
    EXPECT_NE(kernel(k), nullptr) << to_string(k);
    EXPECT_EQ(builtin_kernel_from_name(to_string(k)), k);
  }
  EXPECT_FALSE(builtin_kernel_from_name("no_such_kernel").has_value());
}

TEST_F(BuiltinKernelsTest, FillWritesExactlyCountWords) {
  const uint32_t n = 1000 + rng_() % 5000;
  const uint32_t value = rng_();
  Buffer out = poisoned(n + 64);
  const FillPush push{n, value};
  const BufferBinding b[] = {{0, &out}};
  VKN_ASSERT_OK(stream_->record_dispatch(*kernel(BuiltinKernel::fill_u32), b, push_of(push),
                                         {groups_for(n, 256 * 4), 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  const auto got = read_buffer<uint32_t>(out, n + 64);
  for (uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], value) << i;
  for (uint32_t i = n; i < n + 64; ++i) ASSERT_EQ(got[i], kPoison) << i;
}

TEST_F(BuiltinKernelsTest, CopyMatchesSource) {
  const uint32_t n = 4096 + rng_() % 4096;
  std::vector<uint32_t> src(n);
  for (auto& v : src) v = rng_();
  Buffer s = make_buffer(src);
  Buffer d = poisoned(n);
  const CopyPush push{n};
  const BufferBinding b[] = {{0, &s}, {1, &d}};
  VKN_ASSERT_OK(stream_->record_dispatch(*kernel(BuiltinKernel::copy_u32), b, push_of(push), {7, 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  EXPECT_EQ(read_buffer<uint32_t>(d, n), src);
}

TEST_F(BuiltinKernelsTest, AxpyMatchesFusedMultiplyAdd) {
  const uint32_t n = 10'000 + rng_() % 1000;
  const auto x = random_floats(n);
  const auto y = random_floats(n);
  const float a = std::uniform_real_distribution<float>(-3, 3)(rng_);
  Buffer bx = make_buffer(x);
  Buffer by = make_buffer(y);
  const AxpyPush push{n, a};
  const BufferBinding b[] = {{0, &bx}, {1, &by}};
  VKN_ASSERT_OK(stream_->record_dispatch(*kernel(BuiltinKernel::axpy_f32), b, push_of(push),
                                         {groups_for(n, 256), 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  const auto got = read_buffer<float>(by, n);
  for (uint32_t i = 0; i < n; ++i) {
    ASSERT_NEAR(got[i], std::fma(a, x[i], y[i]), 1e-5f * (1 + std::fabs(y[i]) + std::fabs(a * x[i]))) << i;
  }
}

TEST_F(BuiltinKernelsTest, ReduceSumMatchesDoubleReferenceOverPasses) {
  const uint32_t n = 1'000'000 + rng_() % 1000;
  std::uniform_real_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng_);
  const double expect = std::accumulate(v.begin(), v.end(), 0.0);
  Buffer a = make_buffer(v);
  Buffer b = poisoned(1024);
  auto k = kernel(BuiltinKernel::reduce_sum_f32);
  // Pass 1: n -> 1024 partials; pass 2: 1024 -> 1.
  const ReducePush p1{n};
  const BufferBinding b1[] = {{0, &a}, {1, &b}};
  VKN_ASSERT_OK(stream_->record_dispatch(*k, b1, push_of(p1), {1024, 1, 1}));
  const ReducePush p2{1024};
  const BufferBinding b2[] = {{0, &b}, {1, &a}};
  VKN_ASSERT_OK(stream_->record_dispatch(*k, b2, push_of(p2), {1, 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  const float got = read_buffer<float>(a, 1)[0];
  EXPECT_NEAR(got, expect, 1e-5 * expect);
}

TEST_F(BuiltinKernelsTest, PhiloxUniformMatchesCpuBitForBit) {
  PhiloxPush push{100'003, static_cast<uint32_t>(rng_()), static_cast<uint32_t>(rng_()), static_cast<uint32_t>(rng_()),
                  7, 0};
  Buffer out = poisoned(push.count);
  const BufferBinding b[] = {{0, &out}};
  VKN_ASSERT_OK(stream_->record_dispatch(*kernel(BuiltinKernel::philox_f32), b, push_of(push),
                                         {groups_for(push.count, 1024), 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  const auto got = read_buffer<float>(out, push.count);
  const auto want = philox_reference(push);
  ASSERT_EQ(got, want);
  double mean = std::accumulate(got.begin(), got.end(), 0.0) / got.size();
  EXPECT_NEAR(mean, 0.5, 0.01);
  for (float f : got) ASSERT_TRUE(f >= 0.0f && f < 1.0f);
}

TEST_F(BuiltinKernelsTest, PhiloxNormalMatchesCpuAndHasUnitMoments) {
  PhiloxPush push{200'000, static_cast<uint32_t>(rng_()), 99, 0, 0, 1};
  Buffer out = poisoned(push.count);
  const BufferBinding b[] = {{0, &out}};
  VKN_ASSERT_OK(stream_->record_dispatch(*kernel(BuiltinKernel::philox_f32), b, push_of(push),
                                         {groups_for(push.count, 1024), 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  const auto got = read_buffer<float>(out, push.count);
  const auto want = philox_reference(push);
  double sum = 0, sum2 = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    // Error bounds from the GLSL specification: sin/cos on [-pi, pi] to 2^-11 absolute (the
    // radius multiplies it); log on [0.5, 2] to 2^-21 absolute, which sqrt turns into
    // 2^-21 / r in the radius r = sqrt(-2 log u) (large when u is near 1 and r is small).
    const size_t pair = i & ~size_t{1};
    const double radius = pair + 1 < want.size() ? std::hypot(want[pair], want[pair + 1]) : std::fabs(want[i]);
    const double bound = radius * std::ldexp(1.0, -11) + std::ldexp(1.0, -21) / std::max(radius, 1e-4) +
                         1e-5 * std::fabs(want[i]) + 1e-6;
    ASSERT_NEAR(got[i], want[i], bound) << i;
    sum += got[i];
    sum2 += double(got[i]) * got[i];
  }
  const double mean = sum / got.size();
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(sum2 / got.size() - mean * mean, 1.0, 0.02);
}

TEST_F(BuiltinKernelsTest, SpinComputesItsRecurrence) {
  const uint32_t n = 64 * 4;
  const uint32_t iterations = 1000 + rng_() % 1000;
  Buffer out = poisoned(n);
  const SpinPush push{iterations, n};
  const BufferBinding b[] = {{0, &out}};
  VKN_ASSERT_OK(stream_->record_dispatch(*kernel(BuiltinKernel::spin), b, push_of(push), {4, 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(kWait));
  const auto got = read_buffer<uint32_t>(out, n);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t x = i * 747796405u + 2891336453u;
    for (uint32_t k = 0; k < iterations; ++k) x = x * 1664525u + 1013904223u + (x >> 13);
    ASSERT_EQ(got[i], x) << i;
  }
}

}  // namespace
}  // namespace vkn
