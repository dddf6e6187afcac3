// Warm-up building blocks: Stan's window schedule, dual averaging, Welford, ChEES, Halton.
#include "sampler/adaptation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace vkn::sampler::detail {
namespace {

std::vector<uint32_t> window_ends(uint32_t warmup) {
  WindowSchedule w(warmup);
  std::vector<uint32_t> ends;
  for (uint32_t t = 0; t < warmup; ++t) {
    if (w.end_of_window()) {
      ends.push_back(t);
      w.compute_next_window();
    }
    w.next();
  }
  return ends;
}

TEST(WindowScheduleTest, MatchesStanForOneThousandIterations) {
  // Stan: init buffer 75, windows 25, 50, 100, 200, 500 (the last stretched), term buffer 50.
  EXPECT_EQ(window_ends(1000), (std::vector<uint32_t>{99, 149, 249, 449, 949}));
}

TEST(WindowScheduleTest, ShortWarmupsScaleTheBuffers) {
  // 100 < 75 + 25 + 50: init 15, term 10, one window of 75.
  EXPECT_EQ(window_ends(100), (std::vector<uint32_t>{89}));
  WindowSchedule w(100);
  for (int t = 0; t < 15; ++t) {
    EXPECT_FALSE(w.in_window()) << t;
    w.next();
  }
  EXPECT_TRUE(w.in_window());
  EXPECT_TRUE(window_ends(10).empty());  // no metric adaptation below 20 iterations
}

TEST(DualAveragingTest, ConvergesToTheTargetAcceptance) {
  // Acceptance falls with the step size as exp(-eps): the target 0.8 needs eps = -log(0.8).
  DualAveraging da(0.8);
  double eps = 1.0;
  da.restart(eps);
  for (int i = 0; i < 2000; ++i) eps = da.learn(std::exp(-eps));
  EXPECT_NEAR(da.final_step_size(), -std::log(0.8), 0.01);
}

TEST(WelfordVarianceTest, MergeEqualsOnePass) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(2.0, 3.0);
  WelfordVariance all(2), a(2), b(2);
  for (int i = 0; i < 500; ++i) {
    const double x[2] = {normal(rng), normal(rng)};
    all.add(x);
    (i < 200 ? a : b).add(x);
  }
  a.merge(b);
  const auto v1 = all.regularized_variance(), v2 = a.regularized_variance();
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(v1[i], v2[i], 1e-10);
    EXPECT_NEAR(v1[i], 9.0 * 500 / 505, 1.0);
  }
}

TEST(ChEESTest, LengthGrowsWhenTrajectoriesAreTooShort) {
  // Two chains moving apart along their velocity: longer trajectories would help.
  ChEES chees(1.0);
  const std::vector<double> q = {-1, 1}, q_prop = {-1.5, 1.5}, v = {-1, 1}, accept = {1, 1}, t = {1, 1};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(chees.update(2, 1, q, q_prop, v, accept, t, 0.1, 100));
  EXPECT_GT(chees.length(), 1.2);
  EXPECT_LE(chees.length(), 100);
}

TEST(ChEESTest, StepsAreJitteredAndCapped) {
  ChEES chees(10.0);
  EXPECT_EQ(chees.steps(0, 1.0, 100), 5u);  // halton(0) = 1/2
  EXPECT_EQ(chees.steps(1, 1.0, 100), 3u);  // 1/4 -> ceil(2.5)
  EXPECT_EQ(chees.steps(2, 1.0, 100), 8u);  // 3/4 -> ceil(7.5)
  EXPECT_EQ(chees.steps(0, 0.001, 100), 100u);
  EXPECT_DOUBLE_EQ(halton(6), 0.875);
}

}  // namespace
}  // namespace vkn::sampler::detail
