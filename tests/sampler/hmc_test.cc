// The sampler end to end on the CPU: known posteriors recovered within Monte Carlo error,
// determinism across thread counts, and configuration checks.
#include "vknode/sampler/hmc.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sampler/test_models.h"
#include "vknode/sampler/diagnostics.h"

namespace vkn::sampler {
namespace {

using testing::must;

SamplerConfig small_config(uint32_t chains = 4, uint32_t warmup = 300, uint32_t draws = 500) {
  SamplerConfig c = testing::sampler_config(chains, warmup, draws, 8, 20240601, 2);
  return c;
}

SampleResult run(const Model& model, const SamplerConfig& config) {
  auto r = sample(model, config);
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  return r ? std::move(*r) : SampleResult{};
}

// |mean - truth| < 5 MCSE for every output value, and optionally the same for the variance
// (through the draws of (x - truth)^2).
void expect_moments(const SampleResult& r, double mean, double variance, double tol = 5) {
  for (size_t k = 0; k < r.num_params(); ++k) {
    const auto x = r.param_draws(k);
    const auto s = summarize_param(r.param_names[k], x, r.chains);
    EXPECT_LT(std::abs(s.mean - mean), tol * s.mcse_mean) << r.param_names[k] << " mean " << s.mean;
    EXPECT_LT(s.rhat, 1.02) << r.param_names[k];
    if (variance > 0) {
      std::vector<double> sq(x.size());
      for (size_t i = 0; i < x.size(); ++i) sq[i] = (x[i] - mean) * (x[i] - mean);
      const double m = std::accumulate(sq.begin(), sq.end(), 0.0) / sq.size();
      EXPECT_LT(std::abs(m - variance), tol * mcse_mean(sq, r.chains)) << r.param_names[k] << " variance " << m;
    }
  }
}

TEST(HmcTest, RecoversIidNormalMeanAndVariance) {
  auto model = must(make_normal(10, 1.0, 2.0));
  const auto r = run(*model, small_config());
  expect_moments(r, 1.0, 4.0);
  EXPECT_EQ(r.backend, "cpu");
  EXPECT_TRUE(r.fallback_reason.empty());
  const auto s = summarize(r);
  EXPECT_EQ(s.divergences, 0u);
  // Dual averaging aims at 0.8 during warm-up; sampling with exp(x_bar), the smaller averaged
  // step size, accepts more (about 0.9 on Gaussians, as in Stan).
  EXPECT_GT(s.mean_accept_stat, 0.7);
  EXPECT_LT(s.mean_accept_stat, 0.97);
  // The adapted metric estimates the posterior variance (4) from one window of 225
  // autocorrelated warm-up draws per chain: within a factor 2.5.
  for (const auto& metric : r.inv_metric) {
    for (double m : metric) {
      EXPECT_GT(m, 4.0 / 2.5);
      EXPECT_LT(m, 4.0 * 2.5);
    }
  }
  for (const auto& p : s.params) EXPECT_GT(p.ess_bulk, 200) << p.name;
}

TEST(HmcTest, RecoversConstrainedFamilies) {
  struct Case {
    const char* family;
    std::shared_ptr<Model> model;
    double mean, variance;
  };
  const double pi = 3.14159265358979323846;
  const Case cases[] = {
      {"exponential", must(make_exponential(2, 2.0)), 0.5, 0.25},
      {"gamma", must(make_gamma(2, 3.0, 2.0)), 1.5, 0.75},
      {"beta", must(make_beta(2, 2.0, 3.0)), 0.4, 0.04},
      {"lognormal", must(make_lognormal(2, 0.0, 0.5)), std::exp(0.125), (std::exp(0.25) - 1) * std::exp(0.25)},
      {"half_normal", must(make_half_normal(2, 1.0)), std::sqrt(2 / pi), 1 - 2 / pi},
      {"weibull", must(make_weibull(2, 2.0, 1.0)), std::tgamma(1.5), 1 - std::tgamma(1.5) * std::tgamma(1.5)},
      {"student_t", must(make_student_t(2, 5.0, 1.0, 1.0)), 1.0, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.family);
    const auto r = run(*c.model, small_config(4, 300, 600));
    expect_moments(r, c.mean, c.variance);
  }
}

TEST(HmcTest, LogisticRegressionRecoversCoefficients) {
  const auto data = testing::make_logistic_data(400, 3, 99);
  auto model = must(make_logistic_regression(3, data.x, data.y, 2.5));
  const auto r = run(*model, small_config(4, 300, 400));
  for (size_t k = 0; k < 3; ++k) {
    const auto s = summarize_param(r.param_names[k], r.param_draws(k), r.chains);
    // The posterior concentrates near the truth: within 4 posterior sd (plus MC error).
    EXPECT_LT(std::abs(s.mean - data.beta[k]), 4 * s.sd + 5 * s.mcse_mean) << r.param_names[k];
    EXPECT_LT(s.sd, 0.3);
    EXPECT_LT(s.rhat, 1.02);
  }
}

TEST(HmcTest, EightSchoolsNonCentredSamplesWell) {
  auto model = must(make_eight_schools());
  auto config = small_config(4, 500, 500);
  config.target_accept = 0.9;
  const auto r = run(*model, config);
  const auto s = summarize(r);
  EXPECT_LE(s.divergences, 20u);
  // Posterior means of mu and tau are about 4.4 and 3.6 (posteriordb reference).
  EXPECT_NEAR(s.params[1].mean, 4.4, 5 * s.params[1].mcse_mean + 0.3);
  EXPECT_NEAR(s.params[2].mean, 3.6, 5 * s.params[2].mcse_mean + 0.3);
  for (const auto& p : s.params) EXPECT_LT(p.rhat, 1.05) << p.name;
}

TEST(HmcTest, ManyChainsGiveRhatNearOne) {
  auto model = must(make_normal(4));
  auto config = small_config(16, 200, 500);
  config.metric_pooled = true;
  const auto r = run(*model, config);
  for (const auto& p : summarize(r).params) {
    EXPECT_LT(p.rhat, 1.01) << p.name;
    EXPECT_GT(p.ess_bulk, 0.2 * 16 * 500) << p.name;  // lp__ mixes slowest
  }
  // One metric for all chains.
  for (const auto& m : r.inv_metric) EXPECT_EQ(m, r.inv_metric[0]);
}

TEST(HmcTest, ChEESAdaptsTheTrajectoryLength) {
  auto model = must(make_normal(10, 0.0, 3.0));
  auto config = small_config(16, 300, 300);
  config.adapt_steps = true;
  config.steps = 2;
  const auto r = run(*model, config);
  // For a Gaussian of scale 3, ChEES favours lengths around a quarter to a half period (~5-10).
  EXPECT_GT(r.trajectory_length, 2.0);
  EXPECT_LT(r.trajectory_length, 30.0);
  expect_moments(r, 0.0, 9.0);
}

TEST(HmcTest, ResultsDoNotDependOnThreadCount) {
  auto model = must(make_student_t(5, 4.0));
  auto config = small_config(5, 150, 100);
  config.threads = 1;
  const auto a = run(*model, config);
  config.threads = 3;
  const auto b = run(*model, config);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.lp, b.lp);
  EXPECT_EQ(a.energy, b.energy);
  EXPECT_EQ(a.adapted_step_size, b.adapted_step_size);
  config.seed += 1;
  const auto c = run(*model, config);
  EXPECT_NE(a.values, c.values);
}

// Many chains x a block of draws x d reaches the size where the draws are recorded by groups
// of chains on a thread pool; small blocks on one thread must give the same result. A
// constrained family, so that constrain() does work per value.
TEST(HmcTest, ParallelRecordingOfManyChainsMatchesSerialRecording) {
  auto model = must(make_beta(64, 2.0, 3.0));
  auto config = testing::sampler_config(260, 10, 64, 4, 17, 3);
  config.block_size = 64;  // 260 x 64 x 64 values: parallel recording
  const auto a = run(*model, config);
  config.threads = 1;
  config.block_size = 8;  // 260 x 8 x 64: below the threshold, one thread
  const auto b = run(*model, config);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.lp, b.lp);
  EXPECT_EQ(a.n_leapfrog, b.n_leapfrog);
  EXPECT_EQ(a.divergent, b.divergent);
  EXPECT_EQ(a.gradient_evaluations, b.gradient_evaluations);
  for (double v : a.values) ASSERT_TRUE(v > 0.0 && v < 1.0);  // beta draws, constrained
}

TEST(HmcTest, FixedStepSizeWithoutWarmup) {
  auto model = must(make_normal(3));
  auto config = small_config(2, 0, 50);
  config.step_size = 0.25;
  config.step_size_jitter = 0;
  const auto r = run(*model, config);
  for (double e : r.step_size) EXPECT_EQ(e, 0.25);
  for (uint32_t n : r.n_leapfrog) EXPECT_EQ(n, 8u);
  EXPECT_EQ(r.gradient_evaluations, 2u * 50 * 8);
  config.step_size_jitter = 0.5;
  const auto jittered = run(*model, config);
  for (double e : jittered.step_size) {
    EXPECT_GE(e, 0.125);
    EXPECT_LE(e, 0.375);
  }
  EXPECT_NE(jittered.step_size.front(), jittered.step_size.back());
}

TEST(HmcTest, ProgressIsReported) {
  auto model = must(make_normal(2));
  auto config = small_config(2, 30, 250);
  config.block_size = 100;
  std::vector<uint32_t> seen;
  config.progress = [&](uint32_t done, uint32_t total) {
    EXPECT_EQ(total, 280u);
    seen.push_back(done);
  };
  run(*model, config);
  ASSERT_EQ(seen.size(), 33u);  // every warm-up iteration, then three sampling blocks
  EXPECT_EQ(seen[29], 30u);
  EXPECT_EQ(seen.back(), 280u);
}

TEST(HmcTest, InvalidConfigurationsAreRejected) {
  auto model = must(make_normal(2));
  auto bad = [&](auto mutate) {
    auto config = small_config();
    mutate(config);
    auto r = sample(*model, config);
    return !r && r.error().code == Errc::invalid_argument;
  };
  EXPECT_TRUE(bad([](SamplerConfig& c) { c.chains = 0; }));
  EXPECT_TRUE(bad([](SamplerConfig& c) { c.draws = 0; }));
  EXPECT_TRUE(bad([](SamplerConfig& c) { c.steps = 0; }));
  EXPECT_TRUE(bad([](SamplerConfig& c) { c.step_size = -1; }));
  EXPECT_TRUE(bad([](SamplerConfig& c) { c.target_accept = 1.0; }));
  EXPECT_TRUE(bad([](SamplerConfig& c) { c.init = {1, 2, 3}; }));
  EXPECT_TRUE(bad([](SamplerConfig& c) { c.adapt_steps = true, c.chains = 1; }));
  // An initial point outside the support.
  auto exp_model = must(make_exponential(1));
  auto config = small_config();
  config.init = {1000.0};
  EXPECT_EQ(sample(*exp_model, config).error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace vkn::sampler
