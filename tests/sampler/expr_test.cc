// ExprBuilder/ExprModel: values and gradients against closed forms and finite differences,
// folding, data, and misuse reported as errors.
#include "vknode/sampler/expr.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sampler/test_models.h"

namespace vkn::sampler {
namespace {

std::unique_ptr<ExprModel> model_of(const ExprBuilder& b, Expr e, size_t d = 0) {
  auto m = ExprModel::create(b, e, d);
  EXPECT_TRUE(m.has_value()) << m.error().to_string();
  return m ? std::move(*m) : nullptr;
}

TEST(ExprModelTest, MatchesTheBuiltinNormal) {
  ExprBuilder b;
  std::vector<Expr> terms;
  const double mu = 0.5, sigma = 2.0;
  for (Expr q : b.params(4)) {
    Expr z = (q - mu) / sigma;
    terms.push_back(-0.5 * square(z) - std::log(sigma) - 0.5 * std::log(2 * 3.14159265358979323846));
  }
  auto model = model_of(b, sum(terms));
  auto normal = testing::must(make_normal(4, mu, sigma));
  std::vector<double> q = {0.1, -2, 3.5, 0.5}, g1(4), g2(4);
  EXPECT_NEAR(model->log_density(q, g1), normal->log_density(q, g2), 1e-12);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(g1[i], g2[i], 1e-12);
  EXPECT_EQ(model->dimension(), 4u);
  EXPECT_EQ(model->param_names()[3], "q3");
}

TEST(ExprModelTest, EveryOperationHasTheRightGradient) {
  ExprBuilder b;
  Expr x = b.param(0), y = b.param(1), z = b.param(2);
  const std::vector<Expr> terms = {
      exp(0.3 * x), log(y * y + 1.0), log1p(square(z)), sqrt(2.0 + x * x), sin(x) * cos(y),
      tanh(z - 0.2), lgamma(3.0 + y * y), logistic(x - z), log1p_exp(2.0 * y), pow(1.5 + x * x, z),
      pow(x, 3.0), pow(y, -2.0), x / (2.0 + y * y), -z, 3.0 - x, 1.0 / (1.0 + z * z), pow(2.0 + z * z, 0.5)};
  auto model = model_of(b, sum(terms));
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> q = {u(rng), u(rng) + 2.0, u(rng)};  // y away from 0 for pow(y, -2)
    testing::expect_gradient_matches(*model, q, 1e-6);
  }
}

TEST(ExprModelTest, ValuesMatchClosedForms) {
  ExprBuilder b;
  Expr x = b.param(0);
  auto model = model_of(b, lgamma(x) + pow(x, 2.5) + log1p_exp(x) + tanh(x));
  std::vector<double> q = {1.7}, g(1);
  const double expected = std::lgamma(1.7) + std::pow(1.7, 2.5) + std::log1p(std::exp(1.7)) + std::tanh(1.7);
  EXPECT_NEAR(model->log_density(q, g), expected, 1e-13);
}

TEST(ExprModelTest, ConstantsFoldAndIntegerPowersAreExact) {
  ExprBuilder b;
  Expr x = b.param(0);
  auto model = model_of(b, pow(x, 3.0) + exp(b.constant(0.0)) * 2.0);
  // param, powi, folded constant 2, add.
  EXPECT_EQ(model->tape_size(), 4u);
  std::vector<double> q = {-2.0}, g(1);
  EXPECT_EQ(model->log_density(q, g), -6.0);
  EXPECT_EQ(g[0], 12.0);
}

TEST(ExprModelTest, DataElementsAreReadAndExposed) {
  ExprBuilder b;
  const std::vector<double> y = {1.0, 2.5, -0.5};
  ExprData data = b.data("obs", y);
  Expr mu = b.param(0);
  std::vector<Expr> terms;
  for (size_t i = 0; i < y.size(); ++i) terms.push_back(-0.5 * square(b.at(data, i) - mu));
  auto model = model_of(b, sum(terms));
  std::vector<double> q = {0.25}, g(1);
  double expected = 0, dexp = 0;
  for (double v : y) {
    expected -= 0.5 * (v - 0.25) * (v - 0.25);
    dexp += v - 0.25;
  }
  EXPECT_NEAR(model->log_density(q, g), expected, 1e-12);
  EXPECT_NEAR(g[0], dexp, 1e-12);
  const auto buffers = model->data_buffers();
  ASSERT_EQ(buffers.size(), 1u);
  EXPECT_EQ(buffers[0].name, "obs");
  EXPECT_EQ(buffers[0].values, (std::vector<float>{1.0f, 2.5f, -0.5f}));
  EXPECT_NE(model->glsl().find("vkn_obs"), std::string::npos);
}

TEST(ExprModelTest, UnusedParametersHaveZeroGradient) {
  ExprBuilder b;
  auto model = model_of(b, -square(b.param(1)), 3);
  std::vector<double> q = {5, 2, 7}, g(3, 99.0);
  EXPECT_EQ(model->log_density(q, g), -4.0);
  EXPECT_EQ(g, (std::vector<double>{0, -4, 0}));
}

TEST(ExprModelTest, NaNBecomesNegativeInfinity) {
  ExprBuilder b;
  auto model = model_of(b, log(b.param(0)));
  std::vector<double> q = {-1.0}, g(1);
  EXPECT_EQ(model->log_density(q, g), -std::numeric_limits<double>::infinity());
}

TEST(ExprModelTest, MisuseIsReported) {
  ExprBuilder a, b;
  Expr mixed = a.param(0) + b.param(0);
  EXPECT_EQ(ExprModel::create(a, mixed).error().code, Errc::invalid_argument);
  ExprBuilder c;
  EXPECT_FALSE(ExprModel::create(c, c.constant(1.0)).has_value());     // no parameters
  EXPECT_FALSE(ExprModel::create(c, c.param(3), 2).has_value());       // past the dimension
  EXPECT_FALSE(ExprModel::create(c, Expr()).has_value());              // empty Expr
  ExprBuilder d;
  d.data("bad name", std::vector<double>{1.0});
  EXPECT_FALSE(ExprModel::create(d, d.param(0)).has_value());
  ExprBuilder e;
  ExprData data = e.data("x", std::vector<double>{1.0});
  e.at(data, 5);
  EXPECT_FALSE(ExprModel::create(e, e.param(0)).has_value());
}

// Long chains build without recursion (and destroy without it: nodes live in a vector).
TEST(ExprModelTest, DeepChainsDoNotRecurse) {
  ExprBuilder b;
  Expr e = b.param(0);
  for (int i = 0; i < 200000; ++i) e = e + b.param(1) * 1e-6;
  auto model = model_of(b, -square(e));
  std::vector<double> q = {0.5, 1.0}, g(2);
  const double s = 0.5 + 200000 * 1e-6;
  EXPECT_NEAR(model->log_density(q, g), -s * s, 1e-9);
  EXPECT_NEAR(g[1], -2 * s * 200000 * 1e-6, 1e-6);
}

}  // namespace
}  // namespace vkn::sampler
