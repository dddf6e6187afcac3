// R-hat, ESS and MCSE against sequences with known answers, against an independent direct
// (non-FFT) implementation written here, and against values computed with a literal port of
// the posterior R package's code.
#include "vknode/sampler/diagnostics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace vkn::sampler {
namespace {

std::vector<double> iid_normal(size_t chains, size_t n, uint64_t seed, double shift_per_chain = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(chains * n);
  for (size_t c = 0; c < chains; ++c) {
    for (size_t i = 0; i < n; ++i) v[c * n + i] = normal(rng) + shift_per_chain * static_cast<double>(c);
  }
  return v;
}

std::vector<double> ar1(size_t chains, size_t n, double rho, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(chains * n);
  const double innovation_sd = std::sqrt(1 - rho * rho);
  for (size_t c = 0; c < chains; ++c) {
    double x = normal(rng);  // stationary start
    for (size_t i = 0; i < n; ++i) {
      v[c * n + i] = x;
      x = rho * x + innovation_sd * normal(rng);
    }
  }
  return v;
}

// posterior's .ess with autocovariances summed directly (O(n^2)), for chains as given.
double direct_ess(const std::vector<std::vector<double>>& x) {
  const size_t m = x.size(), n = x[0].size();
  std::vector<std::vector<double>> acov(m, std::vector<double>(n));
  std::vector<double> means(m);
  for (size_t c = 0; c < m; ++c) {
    means[c] = std::accumulate(x[c].begin(), x[c].end(), 0.0) / n;
    for (size_t t = 0; t < n; ++t) {
      double s = 0;
      for (size_t i = 0; i + t < n; ++i) s += (x[c][i] - means[c]) * (x[c][i + t] - means[c]);
      acov[c][t] = s / n;
    }
  }
  auto mean_acov = [&](size_t t) {
    double s = 0;
    for (size_t c = 0; c < m; ++c) s += acov[c][t];
    return s / m;
  };
  const double mean_var = mean_acov(0) * n / (n - 1.0);
  double var_plus = mean_var * (n - 1.0) / n;
  const double grand = std::accumulate(means.begin(), means.end(), 0.0) / m;
  double b = 0;
  for (double mu : means) b += (mu - grand) * (mu - grand);
  if (m > 1) var_plus += b / (m - 1.0);
  std::vector<double> rho(n, 0.0);
  rho[0] = 1;
  double even = 1, odd = 1 - (mean_var - mean_acov(1)) / var_plus;
  rho[1] = odd;
  size_t t = 0;
  while (t < n - 5 && even + odd > 0) {
    t += 2;
    even = 1 - (mean_var - mean_acov(t)) / var_plus;
    odd = 1 - (mean_var - mean_acov(t + 1)) / var_plus;
    if (even + odd >= 0) {
      rho[t] = even;
      rho[t + 1] = odd;
    }
  }
  const size_t max_t = t;
  if (even > 0) rho[max_t] = even;
  for (t = 2; t + 2 <= max_t; t += 2) {
    if (rho[t] + rho[t + 1] > rho[t - 2] + rho[t - 1]) rho[t] = rho[t + 1] = (rho[t - 2] + rho[t - 1]) / 2;
  }
  double tau = -1 + rho[max_t];
  for (size_t i = 0; i < max_t; ++i) tau += 2 * rho[i];
  const double s = static_cast<double>(m * n);
  return s / std::max(tau, 1 / std::log10(s));
}

TEST(DiagnosticsTest, IidDrawsHaveEssNearTheirCount) {
  const auto v = iid_normal(4, 1000, 11);
  EXPECT_NEAR(ess_bulk(v, 4), 4000, 0.15 * 4000);
  EXPECT_NEAR(ess_tail(v, 4), 4000, 0.2 * 4000);
  EXPECT_NEAR(ess_mean(v, 4), 4000, 0.15 * 4000);
  EXPECT_LT(split_rhat(v, 4), 1.01);
  EXPECT_GT(split_rhat(v, 4), 0.99);
}

TEST(DiagnosticsTest, Ar1EssMatchesTheory) {
  const double rho = 0.9;
  const size_t chains = 4, n = 5000;
  const auto v = ar1(chains, n, rho, 12);
  const double expected = chains * n * (1 - rho) / (1 + rho);
  EXPECT_NEAR(ess_bulk(v, chains), expected, 0.2 * expected);
  EXPECT_NEAR(ess_mean(v, chains), expected, 0.2 * expected);
  EXPECT_LT(split_rhat(v, chains), 1.01);
  // MCSE of the mean is sd / sqrt(ESS), with sd = 1.
  EXPECT_NEAR(mcse_mean(v, chains), 1 / std::sqrt(expected), 0.15 / std::sqrt(expected));
}

TEST(DiagnosticsTest, EssAgreesWithDirectAutocovariances) {
  const size_t chains = 3, n = 301;  // odd lengths exercise the FFT padding
  const auto v = ar1(chains, n, 0.6, 13);
  std::vector<std::vector<double>> x(chains);
  for (size_t c = 0; c < chains; ++c) x[c].assign(v.begin() + c * n, v.begin() + (c + 1) * n);
  EXPECT_NEAR(ess_basic(v, chains), direct_ess(x), 1e-8 * direct_ess(x));
  // Antithetic chains give ESS above the draw count, capped at S log10 S.
  std::vector<double> alt(2 * 100);
  for (size_t i = 0; i < alt.size(); ++i) alt[i] = (i % 2 ? 1.0 : -1.0) + 1e-3 * static_cast<double>(i % 7);
  EXPECT_GT(ess_basic(alt, 2), 200);
  EXPECT_LE(ess_basic(alt, 2), 200 * std::log10(200.0) + 1e-9);
}

TEST(DiagnosticsTest, RhatDetectsChainsThatDisagree) {
  const auto v = iid_normal(4, 500, 14, 1.0);
  EXPECT_GT(split_rhat(v, 4), 1.1);
  // Trend within chains: split chains catch it.
  std::vector<double> trend(2 * 400);
  std::mt19937_64 rng(15);
  std::normal_distribution<double> normal;
  for (size_t i = 0; i < trend.size(); ++i) trend[i] = static_cast<double>(i % 400) / 100.0 + normal(rng);
  EXPECT_GT(split_rhat(trend, 2), 1.1);
  // Different scales: the folded (tail) R-hat catches them.
  auto scales = iid_normal(2, 1000, 16);
  for (size_t i = 1000; i < 2000; ++i) scales[i] *= 4;
  EXPECT_GT(split_rhat(scales, 2), 1.05);
}

// Reference values from a line-by-line port of posterior 1.5's rhat(), ess_bulk(), ess_tail()
// and mcse_mean() (R) applied to x[c][i] = sin(1 + 3c + 0.7 i) + 0.01 i, 3 chains x 25 draws.
// (The port sums autocovariances directly; posterior's FFT agrees when the chain length is a
// "good" FFT size, as 12 is.)
TEST(DiagnosticsTest, MatchesPosteriorPackageValues) {
  constexpr double kRhat = 0.99963115217868348;
  constexpr double kEssBulk = 30.704836571279319;
  constexpr double kEssTail = 53.973333333333329;
  constexpr double kMcseMean = 0.138893502830013;
  const size_t chains = 3, n = 25;
  std::vector<double> v(chains * n);
  for (size_t c = 0; c < chains; ++c) {
    for (size_t i = 0; i < n; ++i) v[c * n + i] = std::sin(1.0 + 3.0 * c + 0.7 * i) + 0.01 * i;
  }
  EXPECT_NEAR(split_rhat(v, chains), kRhat, 1e-9);
  EXPECT_NEAR(ess_bulk(v, chains), kEssBulk, 1e-6);
  EXPECT_NEAR(ess_tail(v, chains), kEssTail, 1e-6);
  EXPECT_NEAR(mcse_mean(v, chains), kMcseMean, 1e-9);
}

TEST(DiagnosticsTest, DegenerateInputsGiveNaN) {
  const std::vector<double> constant(400, 3.0);
  EXPECT_TRUE(std::isnan(split_rhat(constant, 4)));
  EXPECT_TRUE(std::isnan(ess_bulk(constant, 4)));
  auto with_nan = iid_normal(2, 100, 17);
  with_nan[5] = std::nan("");
  EXPECT_TRUE(std::isnan(ess_bulk(with_nan, 2)));
  EXPECT_TRUE(std::isnan(split_rhat(std::vector<double>{1, 2, 3}, 1)));
}

TEST(DiagnosticsTest, QuantilesInterpolateLinearly) {
  const std::vector<double> v = {4, 1, 3, 2, 5};
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 3);
  EXPECT_DOUBLE_EQ(quantile(v, 0.05), 1.2);
  EXPECT_DOUBLE_EQ(quantile(v, 0.95), 4.8);
  EXPECT_DOUBLE_EQ(quantile(v, 1.0), 5);
  EXPECT_TRUE(std::isnan(quantile({}, 0.5)));
}

}  // namespace
}  // namespace vkn::sampler
