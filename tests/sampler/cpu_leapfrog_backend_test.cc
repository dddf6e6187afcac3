// CpuLeapfrogBackend's trajectories() and advance(), and the driver's fallback from a failing
// preferred backend to the CPU in the middle of a run.
#include <gtest/gtest.h>

#include <cmath>

#include "sampler/flaky_backend.h"
#include "sampler/hmc_transition.h"
#include "sampler/test_models.h"
#include "vknode/sampler/hmc.h"
#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler {
namespace {

using testing::FlakyBackend;
using testing::must;

std::unique_ptr<CpuLeapfrogBackend> cpu(const Model& model, unsigned threads = 2) {
  auto b = CpuLeapfrogBackend::create(model, threads);
  EXPECT_TRUE(b.has_value());
  return std::move(*b);
}

TEST(CpuLeapfrogBackendTest, TrajectoriesReturnEveryIntermediateState) {
  auto model = must(make_normal(3, 0.0, 1.0));
  auto backend = cpu(*model);
  const std::vector<double> q0 = {1, 0, -1, 0.5, 0.5, 0.5}, p0 = {0, 1, 0, 1, 0, -1};
  const std::vector<double> eps = {0.1, -0.2}, metric = {1, 1, 1};
  auto b = backend->trajectories({2, 10, q0, p0, eps, metric});
  ASSERT_TRUE(b.has_value()) << b.error().to_string();
  EXPECT_EQ(b->q.size(), 2u * 11 * 3);
  EXPECT_EQ(b->lp.size(), 22u);
  for (size_t c = 0; c < 2; ++c) {
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(b->q_at(c, 0)[i], q0[c * 3 + i]);
      EXPECT_EQ(b->p_at(c, 0)[i], p0[c * 3 + i]);
    }
    const auto h = [&](size_t s) {
      double k = 0;
      for (double p : b->p_at(c, s)) k += 0.5 * p * p;
      return -b->lp_at(c, s) + k;
    };
    for (size_t s = 1; s <= 10; ++s) {
      EXPECT_NEAR(h(s), h(0), 0.01) << "leapfrog conserves energy closely";
      std::vector<double> g(3);
      EXPECT_DOUBLE_EQ(model->log_density(b->q_at(c, s), g), b->lp_at(c, s));
      for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(g[i], b->grad_at(c, s)[i]);
    }
  }
  // Exact solution for the standard normal: q(t) = q0 cos t + p0 sin t.
  EXPECT_NEAR(b->q_at(0, 10)[0], std::cos(1.0), 1e-2);
  EXPECT_NEAR(b->q_at(1, 10)[1], 0.5 * std::cos(2.0) - std::sin(2.0) * 0.0, 1e-2);
}

TEST(CpuLeapfrogBackendTest, RejectsMalformedRequests) {
  auto model = must(make_normal(2));
  auto backend = cpu(*model);
  const std::vector<double> q0 = {1, 2, 3}, eps = {0.1}, metric = {1, 1};
  EXPECT_EQ(backend->trajectories({1, 1, q0, q0, eps, metric}).error().code, Errc::invalid_argument);
  std::vector<ChainState> states(1);
  states[0].q = {0, 0};
  states[0].grad = {0, 0};
  states[0].inv_metric = {1};
  states[0].step_size = 0.1;
  AdvanceOutput out;
  const uint32_t steps[] = {3};
  EXPECT_EQ(backend->advance(states, {1, steps}, out).error().code, Errc::invalid_argument);
}

// The momentum advance() draws is the stream-0 momentum: a trajectory started from it with
// the same step size ends where the accepted proposal does.
TEST(CpuLeapfrogBackendTest, AdvanceFollowsTheDocumentedTransition) {
  auto model = must(make_normal(5, 0.0, 1.5));
  auto backend = cpu(*model);
  std::vector<ChainState> states(3);
  for (uint32_t c = 0; c < 3; ++c) {
    auto& s = states[c];
    s.q = {0.1 * c, 0.2, -0.3, 0.4, 0.0};
    s.grad.resize(5);
    s.lp = model->log_density(s.q, s.grad);
    s.inv_metric = {1, 2, 1, 0.5, 1};
    s.step_size = 0.3;
    s.chain = c;
    s.iteration = 7;
  }
  const auto before = states;
  AdvanceOutput out;
  const uint32_t steps[] = {6};
  ASSERT_TRUE(backend->advance(states, {42, steps, 0.0, true, true}, out).has_value());
  for (uint32_t c = 0; c < 3; ++c) {
    std::vector<double> p(5);
    detail::draw_momentum(p, before[c].inv_metric, philox_key(42), c, 7, kStreamMomentum);
    const std::vector<double> eps = {0.3};
    auto b = backend->trajectories({1, 6, before[c].q, p, eps, before[c].inv_metric});
    ASSERT_TRUE(b.has_value());
    const TransitionStats& st = out.stats[c];
    EXPECT_EQ(st.n_leapfrog, 6u);
    EXPECT_EQ(states[c].iteration, 8u);
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_DOUBLE_EQ(out.proposal_q[c * 5 + i], b->q_at(0, 6)[i]);
      EXPECT_DOUBLE_EQ(out.proposal_velocity[c * 5 + i], before[c].inv_metric[i] * b->p_at(0, 6)[i]);
      EXPECT_DOUBLE_EQ(states[c].q[i], st.accepted ? b->q_at(0, 6)[i] : before[c].q[i]);
      EXPECT_DOUBLE_EQ(out.draws[c * 5 + i], states[c].q[i]);
    }
    const double h0 = -before[c].lp + detail::kinetic_energy(p, before[c].inv_metric);
    const double h1 = -b->lp_at(0, 6) + detail::kinetic_energy(b->p_at(0, 6), before[c].inv_metric);
    EXPECT_DOUBLE_EQ(st.accept_stat, std::min(1.0, std::exp(h0 - h1)));
    EXPECT_DOUBLE_EQ(st.energy, st.accepted ? h1 : h0);
  }
}

TEST(CpuLeapfrogBackendTest, DivergentTrajectoriesStopAndAreRejected) {
  auto model = must(make_normal(2, 0.0, 0.01));
  auto backend = cpu(*model, 1);
  std::vector<ChainState> states(1);
  states[0].q = {0.01, -0.01};
  states[0].grad.resize(2);
  states[0].lp = model->log_density(states[0].q, states[0].grad);
  states[0].inv_metric = {1, 1};
  states[0].step_size = 10.0;  // far past the stability limit 2 sigma
  AdvanceOutput out;
  const uint32_t steps[] = {50};
  ASSERT_TRUE(backend->advance(states, {1, steps}, out).has_value());
  EXPECT_TRUE(out.stats[0].divergent);
  EXPECT_FALSE(out.stats[0].accepted);
  EXPECT_LT(out.stats[0].n_leapfrog, 50u);
  EXPECT_EQ(out.stats[0].accept_stat, 0.0);
  EXPECT_EQ(states[0].q, (std::vector<double>{0.01, -0.01}));
}

SamplerConfig fallback_config() {
  SamplerConfig c = testing::sampler_config(3, 60, 120, 5, 7, 2);
  c.block_size = 50;
  return c;
}

TEST(CpuLeapfrogBackendTest, RunFinishesOnTheCpuWhenTheNodeIsLost) {
  auto model = must(make_gamma(3, 2.0, 1.0));
  const auto config = fallback_config();
  auto reference = sample(*model, config);
  ASSERT_TRUE(reference.has_value());
  for (int healthy : {0, 30, 61}) {  // before warm-up, mid warm-up, mid sampling
    for (Errc code : {Errc::device_lost, Errc::node_timeout, Errc::node_dead, Errc::kernel_quarantined}) {
      FlakyBackend flaky(*model, healthy, code);
      auto r = sample(*model, config, &flaky);
      ASSERT_TRUE(r.has_value()) << r.error().to_string();
      EXPECT_EQ(r->backend, "cpu");
      EXPECT_NE(r->fallback_reason.find("injected fault"), std::string::npos);
      EXPECT_EQ(flaky.calls(), healthy + 1);
      // Same streams on both paths: the switch does not change a single draw.
      EXPECT_EQ(r->values, reference->values) << healthy;
      EXPECT_EQ(r->lp, reference->lp);
    }
  }
}

TEST(CpuLeapfrogBackendTest, HeldOutputLostWithTheNodeIsRunAgainOnTheCpu) {
  // fallback_config: 60 warm-up calls (0 .. 59), then sampling holds blocks of 50, 50 and 20
  // draws (calls 60, 61, 62) and collects them (call 63). A failure at a later held block or
  // at the collect loses what the backend held: the switch runs the held range again on the
  // CPU from its start, so not a single draw differs from a CPU-only run.
  auto model = must(make_gamma(3, 2.0, 1.0));
  const auto config = fallback_config();
  auto reference = sample(*model, config);
  ASSERT_TRUE(reference.has_value());
  for (int healthy : {61, 62, 63, 1000}) {
    FlakyBackend flaky(*model, healthy, Errc::device_lost, false, /*holds=*/true);
    auto r = sample(*model, config, &flaky);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(flaky.held_calls(), std::min(healthy - 60, 3)) << healthy;
    EXPECT_EQ(r->backend, healthy == 1000 ? "flaky" : "cpu") << healthy;
    if (healthy == 63) EXPECT_NE(r->fallback_reason.find("injected fault in collect"), std::string::npos);
    EXPECT_GT(r->readback_seconds, 0.0);
    EXPECT_LE(r->readback_seconds, r->sampling_seconds);
    EXPECT_EQ(r->values, reference->values) << healthy;
    EXPECT_EQ(r->lp, reference->lp) << healthy;
    EXPECT_EQ(r->n_leapfrog, reference->n_leapfrog) << healthy;
  }
}

TEST(CpuLeapfrogBackendTest, FailingTrajectoriesFallBackAtStartUp) {
  auto model = must(make_gamma(3, 2.0, 1.0));
  auto reference = sample(*model, fallback_config());
  ASSERT_TRUE(reference.has_value());
  FlakyBackend flaky(*model, 1000, Errc::device_lost, /*fail_trajectories=*/true);
  auto r = sample(*model, fallback_config(), &flaky);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(flaky.calls(), 0);  // never used after the first failure
  EXPECT_NE(r->fallback_reason.find("injected fault in trajectories"), std::string::npos);
  EXPECT_EQ(r->values, reference->values);
}

TEST(CpuLeapfrogBackendTest, OtherBackendErrorsEndTheRun) {
  auto model = must(make_normal(2));
  FlakyBackend flaky(*model, 5, Errc::invalid_argument);
  auto r = sample(*model, fallback_config(), &flaky);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(CpuLeapfrogBackendTest, FallbackErrorsAreTheNodeFailures) {
  for (Errc e : {Errc::node_timeout, Errc::node_dead, Errc::device_lost, Errc::kernel_quarantined}) {
    EXPECT_TRUE(is_fallback_error(Error::make(e, "x")));
  }
  EXPECT_FALSE(is_fallback_error(Error::make(Errc::invalid_argument, "x")));
  EXPECT_FALSE(is_fallback_error(Error::make(Errc::permission_denied, "x")));
}

}  // namespace
}  // namespace vkn::sampler
