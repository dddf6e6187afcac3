// Built-in models: gradients against finite differences, names, constraining transforms and
// argument checks.
#include "vknode/sampler/models.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sampler/special_math.h"
#include "sampler/test_models.h"

namespace vkn::sampler {
namespace {

using testing::all_builtin_models;

TEST(ModelsTest, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  for (const auto& [label, model] : all_builtin_models()) {
    ASSERT_NE(model, nullptr) << label;
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<double> q(model->dimension());
      for (double& x : q) x = u(rng);
      SCOPED_TRACE(label);
      testing::expect_gradient_matches(*model, q);
    }
  }
}

TEST(ModelsTest, NormalLogDensityIsExact) {
  auto model = testing::must(make_normal(2, 1.0, 2.0));
  std::vector<double> q = {1.0, 3.0}, g(2);
  const double expected = 2 * (-std::log(2.0) - 0.5 * std::log(2 * M_PI)) - 0.5 * 1.0;
  EXPECT_NEAR(model->log_density(q, g), expected, 1e-12);
  EXPECT_DOUBLE_EQ(g[0], 0.0);
  EXPECT_DOUBLE_EQ(g[1], -0.5);
}

// The positive families integrate to one on the unconstrained scale (Jacobian included).
TEST(ModelsTest, DensitiesIntegrateToOneOnTheUnconstrainedScale) {
  for (const auto& [label, model] : all_builtin_models()) {
    if (label == "logistic_regression" || label == "eight_schools" || label == "cauchy") continue;
    auto one = testing::must(make_builtin(label, "d=1"));
    double sum = 0;
    const double h = 1e-3;
    std::vector<double> q(1), g(1);
    for (double x = -60; x <= 60; x += h) {
      q[0] = x;
      const double lp = one->log_density(q, g);
      if (std::isfinite(lp)) sum += std::exp(lp) * h;
    }
    // Student-t (nu = 3) keeps about 1e-5 of its mass beyond +-60.
    EXPECT_NEAR(sum, 1.0, label == "student_t" ? 3e-5 : 1e-6) << label;
  }
}

TEST(ModelsTest, ImpossiblePointsAreNegativeInfinity) {
  auto model = testing::must(make_exponential(1, 1.0));
  std::vector<double> q = {1000.0}, g(1);
  EXPECT_EQ(model->log_density(q, g), -std::numeric_limits<double>::infinity());
}

TEST(ModelsTest, ConstrainMapsToTheSupport) {
  std::vector<double> q = {-3.0, 0.0, 2.0};
  auto beta = testing::must(make_beta(3, 2, 2));
  for (double v : beta->constrain(q)) EXPECT_TRUE(v > 0 && v < 1);
  auto gamma = testing::must(make_gamma(3, 2, 2));
  const auto g = gamma->constrain(q);
  EXPECT_DOUBLE_EQ(g[2], std::exp(2.0));
  EXPECT_EQ(gamma->param_names(), (std::vector<std::string>{"theta.1", "theta.2", "theta.3"}));
}

TEST(ModelsTest, EightSchoolsReportsDerivedTheta) {
  auto model = testing::must(make_eight_schools());
  ASSERT_EQ(model->dimension(), 10u);
  const auto names = model->param_names();
  ASSERT_EQ(names.size(), 18u);
  EXPECT_EQ(names[0], "mu");
  EXPECT_EQ(names[1], "tau");
  EXPECT_EQ(names[2], "theta_tilde.1");
  EXPECT_EQ(names[10], "theta.1");
  std::vector<double> q(10, 0.5);
  const auto v = model->constrain(q);
  EXPECT_DOUBLE_EQ(v[1], std::exp(0.5));
  EXPECT_DOUBLE_EQ(v[10], 0.5 + std::exp(0.5) * 0.5);
  const auto data = model->data_buffers();
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].name, "y");
  EXPECT_EQ(data[0].values[0], 28.0f);
  EXPECT_EQ(data[1].binding, kDataBindingBase + 1);
}

TEST(ModelsTest, FactoriesRejectBadArguments) {
  EXPECT_EQ(make_normal(3, 0, -1).error().code, Errc::invalid_argument);
  EXPECT_EQ(make_normal(0, 0, 1).error().code, Errc::invalid_argument);
  EXPECT_EQ(make_beta(3, 0, 1).error().code, Errc::invalid_argument);
  EXPECT_EQ(make_student_t(3, std::nan(""), 0, 1).error().code, Errc::invalid_argument);
  const std::vector<double> x = {1, 2, 3, 4}, y = {0, 2};
  EXPECT_EQ(make_logistic_regression(2, x, y).error().code, Errc::invalid_argument);
  EXPECT_EQ(make_logistic_regression(3, x, std::vector<double>{0, 1}).error().code, Errc::invalid_argument);
  EXPECT_EQ(make_builtin("nope", "").error().code, Errc::not_found);
  EXPECT_EQ(make_builtin("normal", "d=3,sgima=2").error().code, Errc::invalid_argument);
  EXPECT_EQ(make_builtin("normal", "d=x").error().code, Errc::invalid_argument);
  EXPECT_EQ(make_builtin("normal", "d=0").error().code, Errc::invalid_argument);
  auto ok = make_builtin("gamma", " d = 7 , shape=3 ");
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  EXPECT_EQ((*ok)->dimension(), 7u);
}

TEST(SpecialMathTest, LgammaAndDigammaMatchReferences) {
  for (double x : {1e-8, 0.1, 0.5, 1.0, 1.5, 2.0, 3.7, 9.99, 10.0, 25.0, 170.5, 1e6, -0.5, -2.3}) {
    EXPECT_NEAR(detail::lgamma(x), std::lgamma(x), 1e-13 * std::max(1.0, std::abs(std::lgamma(x)))) << x;
    const double h = 1e-6 * std::abs(x);
    const double fd = (std::lgamma(x + h) - std::lgamma(x - h)) / (2 * h);
    EXPECT_NEAR(detail::digamma(x), fd, 1e-6 * std::max(1.0, std::abs(fd))) << x;
  }
  EXPECT_NEAR(detail::digamma(1.0), -0.57721566490153286, 1e-15);
}

TEST(SpecialMathTest, InverseNormalCdfIsAccurate) {
  EXPECT_NEAR(detail::inv_normal_cdf(0.975), 1.959963984540054, 1e-14);
  EXPECT_NEAR(detail::inv_normal_cdf(0.5), 0.0, 1e-15);
  EXPECT_NEAR(detail::inv_normal_cdf(1e-10), -6.361340902404056, 1e-12);
  for (double p = 0.001; p < 1; p += 0.01) {
    const double x = detail::inv_normal_cdf(p);
    EXPECT_NEAR(0.5 * std::erfc(-x / std::sqrt(2.0)), p, 1e-15) << p;
  }
  EXPECT_TRUE(std::isinf(detail::inv_normal_cdf(0.0)));
  EXPECT_TRUE(std::isnan(detail::inv_normal_cdf(1.5)));
}

}  // namespace
}  // namespace vkn::sampler
