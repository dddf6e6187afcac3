// The CPU Philox against the Random123 known-answer vector, an independent straightforward
// implementation written here, and the GPU layer's philox_reference (the CPU twin of
// shaders/philox_f32.comp).
#include "sampler/philox.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sampler/hmc_transition.h"
#include "vknode/gpu/builtin_kernels.h"

namespace vkn::sampler {
namespace {

// Philox4x32-10 spelled out from the paper: mulhi/mullo, round, key bump between rounds.
std::array<uint32_t, 4> textbook_philox(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  const uint32_t m0 = 0xD2511F53, m1 = 0xCD9E8D57, w0 = 0x9E3779B9, w1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += w0;
      key[1] += w1;
    }
    const uint64_t prod0 = static_cast<uint64_t>(m0) * ctr[0];
    const uint64_t prod1 = static_cast<uint64_t>(m1) * ctr[2];
    const uint32_t hi0 = static_cast<uint32_t>(prod0 >> 32), lo0 = static_cast<uint32_t>(prod0);
    const uint32_t hi1 = static_cast<uint32_t>(prod1 >> 32), lo1 = static_cast<uint32_t>(prod1);
    ctr = {hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0};
  }
  return ctr;
}

TEST(PhiloxTest, KnownAnswerVectors) {
  // Random123's kat_vectors for philox4x32_10.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
  static_assert(philox4x32_10({0, 0, 0, 0}, {0, 0})[0] == 0x6627e8d5);
}

TEST(PhiloxTest, MatchesAnIndependentImplementation) {
  std::mt19937_64 rng(8);
  for (int i = 0; i < 10000; ++i) {
    const PhiloxCounter c = {static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()),
                             static_cast<uint32_t>(rng())};
    const PhiloxKey k = {static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())};
    ASSERT_EQ(philox4x32_10(c, k), textbook_philox(c, k));
  }
}

// The sampler's mapping reproduces the GPU kernel's reference bit for bit for counters of the
// kernel's shape (t + lo, hi, 0, 0).
TEST(PhiloxTest, MatchesTheGpuKernelReference) {
  for (uint32_t mode : {0u, 1u}) {
    const PhiloxPush push{4000, 0x1234567, 0x89abcdef, 0xfffffff0, 77, mode};
    const auto expected = philox_reference(push);
    for (uint32_t t = 0; 4 * t < push.count; ++t) {
      const PhiloxCounter c = {t + push.counter_lo, push.counter_hi, 0, 0};
      const PhiloxKey k = {push.key0, push.key1};
      const auto got = mode == 1 ? philox_normal4(c, k) : philox_uniform4(c, k);
      for (uint32_t j = 0; j < 4; ++j) ASSERT_EQ(got[j], expected[4 * t + j]) << "mode " << mode << " t " << t;
    }
  }
}

TEST(PhiloxTest, UniformsAreIn24BitSteps) {
  EXPECT_EQ(philox_unit(0), 0.0f);
  EXPECT_EQ(philox_unit(0xffffffff), 1.0f - 1.0f / 16777216.0f);
  EXPECT_EQ(philox_unit(0x00000100), 1.0f / 16777216.0f);
  EXPECT_EQ(philox_unit(0x000000ff), 0.0f);
}

TEST(PhiloxTest, StreamLayoutIsDocumented) {
  EXPECT_EQ(philox_key(0x0123456789abcdefull), (PhiloxKey{0x89abcdef, 0x01234567}));
  EXPECT_EQ(philox_counter(3, 5, 7, kStreamStepSizeInit, 2), (PhiloxCounter{3, 5, 7, 3 | (2 << 8)}));
  // Momentum coordinate i of chain c at iteration t is word i % 4 of block i / 4.
  std::vector<double> p(10);
  const std::vector<double> unit(10, 1.0);
  detail::draw_momentum(p, unit, philox_key(99), 4, 17, kStreamMomentum);
  for (size_t i = 0; i < 10; ++i) {
    const auto z = philox_normal4(philox_counter(static_cast<uint32_t>(i / 4), 4, 17, kStreamMomentum), philox_key(99));
    EXPECT_EQ(p[i], static_cast<double>(z[i % 4]));
  }
  // The inverse metric scales the momentum by 1 / sqrt(m).
  const std::vector<double> four(10, 4.0);
  std::vector<double> scaled(10);
  detail::draw_momentum(scaled, four, philox_key(99), 4, 17, kStreamMomentum);
  for (size_t i = 0; i < 10; ++i) EXPECT_DOUBLE_EQ(scaled[i], p[i] / 2);
}

TEST(PhiloxTest, NormalsHaveUnitMoments) {
  double sum = 0, sum2 = 0;
  const int n = 50000;
  for (uint32_t b = 0; b < n / 4; ++b) {
    for (float z : philox_normal4(philox_counter(b, 0, 0, 0), philox_key(5))) {
      sum += z;
      sum2 += static_cast<double>(z) * z;
    }
  }
  EXPECT_NEAR(sum / n, 0.0, 5 / std::sqrt(n));
  EXPECT_NEAR(sum2 / n, 1.0, 5 * std::sqrt(2.0 / n));
}

}  // namespace
}  // namespace vkn::sampler
