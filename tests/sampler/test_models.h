// Shared helpers for the sampler tests: every built-in model, and a finite-difference check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "vknode/sampler/hmc.h"
#include "vknode/sampler/model.h"
#include "vknode/sampler/models.h"

namespace vkn::sampler::testing {

struct NamedModel {
  std::string label;
  std::shared_ptr<Model> model;
};

// A sampler configuration with the fields the tests vary; the rest are SamplerConfig's defaults.
inline SamplerConfig sampler_config(uint32_t chains, uint32_t warmup, uint32_t draws, uint32_t steps, uint64_t seed,
                                    unsigned threads) {
  SamplerConfig c;
  c.chains = chains;
  c.warmup = warmup;
  c.draws = draws;
  c.steps = steps;
  c.seed = seed;
  c.threads = threads;
  return c;
}

// n chains at q = spacing * c in every coordinate (chain c), unit metric, lp and grad from the
// model: states for driving a backend directly.
inline std::vector<ChainState> chain_states(const Model& model, uint32_t n, double spacing, double step_size,
                                            uint32_t iteration = 0) {
  const size_t d = model.dimension();
  std::vector<ChainState> states(n);
  for (uint32_t c = 0; c < n; ++c) {
    states[c] = {std::vector<double>(d, spacing * c), 0, std::vector<double>(d), step_size,
                 std::vector<double>(d, 1.0), c, iteration};
    states[c].lp = model.log_density(states[c].q, states[c].grad);
  }
  return states;
}

inline std::shared_ptr<Model> must(Result<std::unique_ptr<Model>> r) {
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().to_string());
  return r ? std::shared_ptr<Model>(std::move(*r)) : nullptr;
}

// A small synthetic logistic-regression data set: N rows, d features (first column ones).
struct LogisticData {
  size_t n, d;
  std::vector<double> x, y, beta;
};
inline LogisticData make_logistic_data(size_t n, size_t d, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit;
  LogisticData data{n, d, std::vector<double>(n * d), std::vector<double>(n), std::vector<double>(d)};
  for (size_t j = 0; j < d; ++j) data.beta[j] = j == 0 ? 0.5 : (j % 2 ? 1.0 : -0.7);
  for (size_t i = 0; i < n; ++i) {
    double eta = 0;
    for (size_t j = 0; j < d; ++j) {
      const double v = j == 0 ? 1.0 : static_cast<double>(static_cast<float>(normal(rng)));
      data.x[i * d + j] = v;
      eta += v * data.beta[j];
    }
    data.y[i] = unit(rng) < 1.0 / (1.0 + std::exp(-eta)) ? 1.0 : 0.0;
  }
  return data;
}

inline std::vector<NamedModel> all_builtin_models() {
  const auto data = make_logistic_data(50, 3, 7);
  return {
      {"normal", must(make_normal(5, 0.5, 2.0))},
      {"student_t", must(make_student_t(5, 4.0, -1.0, 1.5))},
      {"cauchy", must(make_cauchy(4, 1.0, 0.5))},
      {"exponential", must(make_exponential(4, 2.0))},
      {"half_normal", must(make_half_normal(4, 1.5))},
      {"weibull", must(make_weibull(4, 1.7, 2.0))},
      {"beta", must(make_beta(4, 2.5, 1.5))},
      {"gamma", must(make_gamma(4, 3.0, 2.0))},
      {"lognormal", must(make_lognormal(4, 0.3, 0.8))},
      {"logistic_regression", must(make_logistic_regression(3, data.x, data.y, 2.0))},
      {"eight_schools", must(make_eight_schools())},
  };
}

// Checks the model's gradient against central differences at `q`.
inline void expect_gradient_matches(const Model& model, const std::vector<double>& q, double tol = 1e-6) {
  const size_t d = model.dimension();
  std::vector<double> grad(d), scratch(d);
  const double lp = model.log_density(q, grad);
  ASSERT_TRUE(std::isfinite(lp)) << model.name();
  for (size_t i = 0; i < d; ++i) {
    const double h = 1e-5 * std::max(1.0, std::abs(q[i]));
    std::vector<double> a = q, b = q;
    a[i] += h;
    b[i] -= h;
    const double fd = (model.log_density(a, scratch) - model.log_density(b, scratch)) / (2 * h);
    EXPECT_NEAR(grad[i], fd, tol * std::max(1.0, std::abs(fd))) << model.name() << " coordinate " << i;
  }
}

}  // namespace vkn::sampler::testing
