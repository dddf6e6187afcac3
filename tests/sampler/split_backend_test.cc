// SplitLeapfrogBackend: chains spread over several backends give the draws of one backend, and
// a failing part hands its share to the CPU while the others go on.
#include "vknode/sampler/split_backend.h"

#include <gtest/gtest.h>

#include "sampler/flaky_backend.h"
#include "sampler/test_models.h"
#include "vknode/sampler/hmc.h"

namespace vkn::sampler {
namespace {

using testing::FlakyBackend;
using testing::must;

SamplerConfig split_config(uint32_t chains) {
  SamplerConfig c = testing::sampler_config(chains, 80, 120, 5, 11, 1);
  c.block_size = 40;
  return c;
}

std::vector<std::unique_ptr<LeapfrogBackend>> cpu_parts(const Model& model, size_t n) {
  std::vector<std::unique_ptr<LeapfrogBackend>> parts;
  for (size_t i = 0; i < n; ++i) parts.push_back(std::move(*CpuLeapfrogBackend::create(model, 1)));
  return parts;
}

TEST(SplitBackendTest, DrawsDoNotDependOnTheSplit) {
  auto model = must(make_normal(3, 0.5, 1.5));
  const auto reference = sample(*model, split_config(7));
  ASSERT_TRUE(reference.has_value());
  for (size_t n : {1u, 2u, 3u, 9u}) {  // 9 parts for 7 chains: two parts stay idle
    auto split = SplitLeapfrogBackend::create(*model, cpu_parts(*model, n), 1);
    ASSERT_TRUE(split.has_value()) << split.error().to_string();
    auto r = sample(*model, split_config(7), split->get());
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(r->values, reference->values) << n << " parts";
    EXPECT_EQ(r->lp, reference->lp);
    EXPECT_EQ(r->n_leapfrog, reference->n_leapfrog);
    EXPECT_EQ((*split)->parts(), n);
    EXPECT_TRUE((*split)->fallback_reasons().empty());
  }
}

TEST(SplitBackendTest, AFailingPartMovesToTheCpuAndTheOthersGoOn) {
  auto model = must(make_gamma(2, 2.0, 1.0));
  const auto config = split_config(6);
  const auto reference = sample(*model, config);
  ASSERT_TRUE(reference.has_value());
  std::vector<std::unique_ptr<LeapfrogBackend>> parts;
  parts.push_back(std::make_unique<FlakyBackend>(*model, 1000, Errc::device_lost));
  auto flaky = std::make_unique<FlakyBackend>(*model, 30, Errc::device_lost);
  FlakyBackend* failing = flaky.get();
  parts.push_back(std::move(flaky));
  auto split = SplitLeapfrogBackend::create(*model, std::move(parts), 1);
  ASSERT_TRUE(split.has_value());
  EXPECT_EQ((*split)->name(), "split[flaky, flaky]");
  auto r = sample(*model, config, split->get());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->values, reference->values);  // same streams on the CPU: not one draw changes
  EXPECT_EQ(r->backend, "split[flaky, cpu]");
  EXPECT_EQ(failing->calls(), 31);  // retired at its first failure
  ASSERT_EQ((*split)->fallback_reasons().size(), 1u);
  EXPECT_NE((*split)->fallback_reasons()[0].find("injected fault"), std::string::npos);
}

TEST(SplitBackendTest, FailingTrajectoriesRetireThePartToo) {
  auto model = must(make_normal(2));
  const auto reference = sample(*model, split_config(4));
  std::vector<std::unique_ptr<LeapfrogBackend>> parts = cpu_parts(*model, 1);
  parts.push_back(std::make_unique<FlakyBackend>(*model, 1000, Errc::node_dead, /*fail_trajectories=*/true));
  auto split = SplitLeapfrogBackend::create(*model, std::move(parts), 1);
  ASSERT_TRUE(split.has_value());
  auto r = sample(*model, split_config(4), split->get());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->values, reference->values);
  EXPECT_EQ(r->backend, "split[cpu, cpu]");
}

TEST(SplitBackendTest, OtherErrorsComeBackAndBadInputIsRejected) {
  auto model = must(make_normal(2));
  std::vector<std::unique_ptr<LeapfrogBackend>> parts = cpu_parts(*model, 1);
  parts.push_back(std::make_unique<FlakyBackend>(*model, 0, Errc::invalid_argument));
  auto split = SplitLeapfrogBackend::create(*model, std::move(parts), 1);
  ASSERT_TRUE(split.has_value());
  auto r = sample(*model, split_config(4), split->get());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("injected fault"), std::string::npos);

  EXPECT_EQ(SplitLeapfrogBackend::create(*model, {}).error().code, Errc::invalid_argument);
  auto one = SplitLeapfrogBackend::create(*model, cpu_parts(*model, 2), 1);
  ASSERT_TRUE(one.has_value());
  const std::vector<double> q0(4, 0.0), p0(2, 0.0), eps(2, 0.1), m(2, 1.0);
  auto t = (*one)->trajectories({2, 1, q0, p0, eps, m});  // p0 short of [chain][d]
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace vkn::sampler
