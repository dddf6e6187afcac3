// A run split over processes (ChainGroup; here threads stand in for MPI ranks) against the
// same run in one process: exact with per-chain adaptation, one shared metric, step size and
// trajectory length with pooled adaptation and ChEES.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "sampler/adaptation.h"
#include "sampler/test_models.h"
#include "sampler/thread_chain_group.h"
#include "vknode/sampler/diagnostics.h"
#include "vknode/sampler/hmc.h"

namespace vkn::sampler {
namespace {

using testing::must;
using testing::ThreadChainGroup;

SamplerConfig base_config(uint32_t chains) {
  SamplerConfig c = testing::sampler_config(chains, 200, 150, 6, 77, 1);
  return c;
}

// Runs `config` split over `split.size()` threads, rank r taking split[r] chains, and joins
// the parts; `allreduces` (optional) receives the number of collective calls.
SampleResult run_split(const Model& model, SamplerConfig config, const std::vector<uint32_t>& split,
                       uint64_t* allreduces = nullptr) {
  uint32_t total = 0;
  for (uint32_t n : split) total += n;
  ThreadChainGroup group(static_cast<uint32_t>(split.size()), total);
  std::vector<SampleResult> parts(split.size());
  std::vector<std::string> errors(split.size());
  std::vector<std::thread> ranks;
  uint32_t first = 0;
  for (size_t r = 0; r < split.size(); ++r) {
    SamplerConfig c = config;
    c.chains = split[r];
    c.first_chain = first;
    c.group = &group.member(static_cast<uint32_t>(r));
    first += split[r];
    ranks.emplace_back([&, c, r] {
      auto result = sample(model, c);
      if (result) {
        parts[r] = std::move(*result);
      } else {
        errors[r] = result.error().to_string();
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (size_t r = 0; r < split.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  if (allreduces) *allreduces = group.allreduce_calls();
  auto all = concatenate_chains(parts);
  EXPECT_TRUE(all.has_value()) << all.error().to_string();
  return all ? std::move(*all) : SampleResult{};
}

SampleResult run_whole(const Model& model, const SamplerConfig& config) {
  auto r = sample(model, config);
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  return r ? std::move(*r) : SampleResult{};
}

TEST(ChainGroupTest, SplitRunWithPerChainAdaptationEqualsOneProcessExactly) {
  auto model = must(make_normal(5, 1.0, 2.0));
  const auto config = base_config(7);
  const auto whole = run_whole(*model, config);
  for (const std::vector<uint32_t>& split : {std::vector<uint32_t>{3, 4}, std::vector<uint32_t>{2, 2, 3}}) {
    const auto joined = run_split(*model, config, split);
    ASSERT_EQ(joined.chains, whole.chains);
    EXPECT_EQ(joined.values, whole.values);
    EXPECT_EQ(joined.lp, whole.lp);
    EXPECT_EQ(joined.step_size, whole.step_size);
    EXPECT_EQ(joined.n_leapfrog, whole.n_leapfrog);
    EXPECT_EQ(joined.inv_metric, whole.inv_metric);
    EXPECT_EQ(joined.gradient_evaluations, whole.gradient_evaluations);
  }
}

TEST(ChainGroupTest, PooledMetricAndStepSizeAreSharedByEveryRank) {
  auto model = must(make_normal(4, 0.0, 3.0));
  auto config = base_config(6);
  config.metric_pooled = true;
  config.step_size_pooled = true;
  uint64_t allreduces = 0;
  const auto joined = run_split(*model, config, {2, 1, 3}, &allreduces);
  // Pooling at every metric window's end (3 for 200 warm-up iterations) and of the step size.
  EXPECT_GE(allreduces, 4u);
  const auto whole = run_whole(*model, config);
  ASSERT_EQ(joined.chains, 6u);
  for (uint32_t c = 0; c < joined.chains; ++c) {
    EXPECT_EQ(joined.inv_metric[c], joined.inv_metric[0]) << "chain " << c;
    EXPECT_EQ(joined.adapted_step_size[c], joined.adapted_step_size[0]) << "chain " << c;
  }
  // The pooled estimate merges the ranks' partial estimates, so it matches one process up to
  // rounding, not bit for bit; the metric estimates the posterior variance 9.
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(joined.inv_metric[0][i], whole.inv_metric[0][i], 1e-9 * whole.inv_metric[0][i]);
    EXPECT_GT(joined.inv_metric[0][i], 9.0 / 2.5);
    EXPECT_LT(joined.inv_metric[0][i], 9.0 * 2.5);
  }
}

TEST(ChainGroupTest, ChEESLengthIsOneForTheGroupAndRecoversTheTarget) {
  auto model = must(make_normal(6, -1.0, 1.5));
  auto config = base_config(8);
  config.adapt_steps = true;
  config.warmup = 300;
  config.draws = 300;
  const auto joined = run_split(*model, config, {4, 4});
  ASSERT_EQ(joined.num_params(), 6u);
  for (size_t k = 0; k < joined.num_params(); ++k) {
    const auto p = summarize_param(joined.param_names[k], joined.param_draws(k), joined.chains);
    EXPECT_LT(std::abs(p.mean + 1.0), 5 * p.mcse_mean) << p.name;
    EXPECT_LT(p.rhat, 1.05) << p.name;
  }
  // Every chain of every rank ran the same K in every draw (K comes from the group's length).
  for (uint32_t i = 0; i < joined.draws; ++i) {
    for (uint32_t c = 1; c < joined.chains; ++c) {
      if (joined.divergent[joined.index(c, i)] || joined.divergent[joined.index(0, i)]) continue;
      ASSERT_EQ(joined.n_leapfrog[joined.index(c, i)], joined.n_leapfrog[joined.index(0, i)]) << "draw " << i;
    }
  }
}

TEST(ChainGroupTest, ChEESUpdateOverSplitChainsMatchesOneProcess) {
  const std::vector<double> q = {-1, 1, 0.5, 2}, q_prop = {-1.5, 1.5, 0.2, 2.6}, v = {-1, 1, -0.3, 0.8},
                            accept = {1, 0.5, 0.9, 0.7}, t = {1, 1, 1.2, 0.8};
  detail::ChEES whole(1.0), left(1.0), right(1.0);
  ASSERT_TRUE(whole.update(4, 1, q, q_prop, v, accept, t, 0.1, 100));
  ThreadChainGroup group(2, 4);
  auto run = [&](detail::ChEES& chees, uint32_t rank) {
    const size_t at = rank * 2;
    auto sum = [&](std::span<double> x) { return group.member(rank).allreduce_sum(x); };
    auto part = [&](const std::vector<double>& x) { return std::span<const double>(&x[at], 2); };
    EXPECT_TRUE(chees.update(2, 1, part(q), part(q_prop), part(v), part(accept), part(t), 0.1, 100, sum));
  };
  std::thread r1([&] { run(right, 1); });
  run(left, 0);
  r1.join();
  EXPECT_NE(whole.length(), 1.0);
  EXPECT_NEAR(left.length(), whole.length(), 1e-12);
  EXPECT_EQ(left.length(), right.length());
}

TEST(ChainGroupTest, ConfigOutsideTheGroupIsRejected) {
  auto model = must(make_normal(2));
  ThreadChainGroup group(2, 4);
  auto config = base_config(3);
  config.first_chain = 2;
  config.group = &group.member(1);
  auto r = sample(*model, config);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("first_chain"), std::string::npos) << r.error().message;
}

TEST(ChainGroupTest, ConcatenationChecksTheParts) {
  auto model = must(make_normal(2));
  auto a = run_whole(*model, base_config(2));
  auto config = base_config(2);
  config.first_chain = 2;
  ThreadChainGroup group(1, 4);
  config.group = &group.member(0);
  auto b = run_whole(*model, config);
  const std::vector<SampleResult> ok = {a, b};
  auto joined = concatenate_chains(ok);
  ASSERT_TRUE(joined.has_value()) << joined.error().to_string();
  EXPECT_EQ(joined->chains, 4u);
  EXPECT_EQ(joined->gradient_evaluations, a.gradient_evaluations + b.gradient_evaluations);
  EXPECT_EQ(joined->backend, "cpu");
  EXPECT_EQ(joined->value(3, 5, 1), b.value(1, 5, 1));

  const std::vector<SampleResult> gap = {b, a};
  auto r = concatenate_chains(gap);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("starts at chain 0"), std::string::npos) << r.error().message;
  auto shorter = b;
  shorter.draws = 10;
  const std::vector<SampleResult> mismatch = {a, shorter};
  EXPECT_FALSE(concatenate_chains(mismatch).has_value());
  EXPECT_FALSE(concatenate_chains(std::span<const SampleResult>{}).has_value());
}

}  // namespace
}  // namespace vkn::sampler
