// GpuLeapfrogBackend on a node (lavapipe in CI): log density, gradient and trajectories agree
// with the CPU backend; one transition uses the CPU's random streams; a GPU run recovers known
// posterior moments; a device lost mid-run makes the driver finish on the CPU.
//
// Draws are statistically equal to the CPU's, not identical: the accept and jitter uniforms are
// bit-identical, but f32 arithmetic and GLSL's sin/cos in the momentum normals (error bound
// 2^-11) move the trajectories by rounding, which flips a few accept decisions near the
// threshold and from then on the chains differ.
#include "vknode/sampler/gpu_backend.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "sampler/philox.h"
#include "sampler/test_models.h"
#include "sampler_gpu/kernel_source.h"
#include "sampler_gpu/node_suite.h"
#include "util/strformat.h"
#include "vknode/gpu/device.h"
#include "vknode/sampler/expr.h"
#include "vknode/sampler/hmc.h"
#include "vknode/sampler/models.h"

namespace vkn::sampler {
namespace {

namespace fs = std::filesystem;

class GpuBackendTest : public testing::NodeSuite<GpuBackendTest> {
 public:
  static constexpr std::string_view kNode = "sampler-gpu-test";

 protected:
  // Specialized kernels where the model has one, also on lavapipe (automatic would not).
  static GpuBackendOptions options(Precision p = Precision::f32) {
    GpuBackendOptions o;
    o.kernel = KernelChoice::specialized;
    o.precision = p;
    o.call.node = std::string(kNode);
    return o;
  }
  static std::unique_ptr<GpuLeapfrogBackend> backend(const Model& model,
                                                     Precision p = Precision::f32) {
    auto b = GpuLeapfrogBackend::create(model, options(p));
    EXPECT_TRUE(b.has_value()) << b.error().to_string();
    return b ? std::move(*b) : nullptr;
  }
  static bool has_float64() {
    auto f = with_node([](Context& c) { return c.device().info().has_float64; }, options().call);
    return f && *f;
  }

  static std::vector<testing::NamedModel> models() {
    const auto data = testing::make_logistic_data(200, 4, 11);
    ParseOptions po;
    po.dimension = 3;
    return {
        {"normal", testing::must(make_normal(5, 0.5, 2.0))},
        {"student_t", testing::must(make_student_t(3, 4.0, -1.0, 1.5))},
        {"gamma", testing::must(make_gamma(4, 3.0, 2.0))},
        {"logistic", testing::must(make_logistic_regression(4, data.x, data.y))},
        {"eight_schools", testing::must(make_eight_schools())},
        {"expr", std::shared_ptr<Model>(
                     std::move(*ExprModel::parse("-0.5*q0^2 - log(1+exp(q1)) - q2^2", po)))},
    };
  }

  // Random start points and momenta (f32-representable, so both paths start equal).
  static TrajectoryRequest request(size_t n, size_t d, uint32_t steps, std::vector<double>& store) {
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    store.assign(2 * n * d + n + d, 0);
    for (size_t i = 0; i < 2 * n * d; ++i) store[i] = static_cast<float>(u(rng));
    for (size_t i = 0; i < n; ++i) store[2 * n * d + i] = 0.0625 * (1 + i % 3);
    for (size_t i = 0; i < d; ++i)
      store[2 * n * d + n + i] = static_cast<float>(0.5 + 0.25 * (i % 4));
    TrajectoryRequest r;
    r.chains = n;
    r.steps = steps;
    r.q0 = {store.data(), n * d};
    r.p0 = {store.data() + n * d, n * d};
    r.step_size = {store.data() + 2 * n * d, n};
    r.inv_metric = {store.data() + 2 * n * d + n, d};
    return r;
  }

  void expect_trajectories_match(const Model& model, Precision p, uint32_t steps, double tol,
                                 const std::string& label) {
    auto gpu = backend(model, p);
    ASSERT_NE(gpu, nullptr);
    auto cpu = CpuLeapfrogBackend::create(model, 2);
    ASSERT_TRUE(cpu.has_value());
    std::vector<double> store;
    const auto req = request(70, model.dimension(), steps, store);
    auto g = gpu->trajectories(req);
    auto c = (*cpu)->trajectories(req);
    ASSERT_TRUE(g.has_value()) << g.error().to_string();
    ASSERT_TRUE(c.has_value());
    const size_t d = model.dimension();
    for (size_t ch = 0; ch < req.chains; ++ch) {
      for (uint32_t s = 0; s <= steps; ++s) {
        const double lp = c->lp_at(ch, s);
        if (!std::isfinite(lp)) continue;
        EXPECT_NEAR(g->lp_at(ch, s), lp, tol * std::max(1.0, std::abs(lp)))
            << label << " chain " << ch << " s " << s;
        double scale = 1.0;
        for (double x : c->grad_at(ch, s)) scale = std::max(scale, std::abs(x));
        for (size_t i = 0; i < d; ++i) {
          EXPECT_NEAR(g->grad_at(ch, s)[i], c->grad_at(ch, s)[i], tol * scale)
              << label << " chain " << ch;
          EXPECT_NEAR(g->q_at(ch, s)[i], c->q_at(ch, s)[i],
                      tol * std::max(1.0, std::abs(c->q_at(ch, s)[i])));
          EXPECT_NEAR(g->p_at(ch, s)[i], c->p_at(ch, s)[i],
                      tol * std::max(1.0, std::abs(c->p_at(ch, s)[i])));
        }
      }
    }
  }

};


TEST_F(GpuBackendTest, LogDensityAndGradientMatchTheCpu) {
  for (const auto& [label, model] : models())
    expect_trajectories_match(*model, Precision::f32, 0, 1e-5, label);
}

TEST_F(GpuBackendTest, TrajectoriesMatchTheCpu) {
  // Ten steps compound f32 rounding: a looser bound than for one evaluation.
  for (const auto& [label, model] : models())
    expect_trajectories_match(*model, Precision::f32, 10, 2e-4, label);
}

TEST_F(GpuBackendTest, F64TrajectoriesMatchTheCpu) {
  if (!has_float64()) GTEST_SKIP() << "device lacks shaderFloat64";
  for (const auto& [label, model] : models())
    expect_trajectories_match(*model, Precision::f64, 10, 1e-9, label);
}

// One transition of many chains started at one point, GPU vs CPU: the GPU and CPU transitions
// differ only by rounding, so jittered step sizes agree to f32 precision, every trajectory has
// the same length and nearly every accept decision is the same.
void expect_transition_matches_cpu(const Model& model, const GpuBackendOptions& options,
                                   const std::string& kernel, double step_size) {
  auto gpu = GpuLeapfrogBackend::create(model, options);
  ASSERT_TRUE(gpu.has_value()) << gpu.error().to_string();
  // "separable" also matches "separable/subgroup" (sums by subgroupAdd where the device has it).
  EXPECT_EQ((*gpu)->stats().kernel.rfind(kernel, 0), 0u)
      << model.name() << ": " << (*gpu)->stats().kernel;
  auto cpu = CpuLeapfrogBackend::create(model, 2);
  ASSERT_TRUE(cpu.has_value());
  constexpr size_t kChains = 200;  // not a multiple of any workgroup: the last one is partial
  const size_t d = model.dimension();
  std::vector<ChainState> states(kChains);
  for (uint32_t c = 0; c < kChains; ++c) {
    auto& s = states[c];
    s.q.resize(d);
    for (size_t i = 0; i < d; ++i) s.q[i] = 0.125 * static_cast<double>((i * 7 + c) % 9) - 0.5;
    s.grad.resize(d);
    s.lp = model.log_density(s.q, s.grad);
    s.step_size = step_size;
    s.inv_metric.assign(d, 1.0);
    for (size_t i = 0; i < d; i += 3) s.inv_metric[i] = 0.5;
    s.chain = c;
    s.iteration = 17;
  }
  auto gpu_states = states, cpu_states = states;
  const uint32_t steps[] = {8, 8, 8};
  AdvanceRequest req{1234, steps, 0.5, true, true};
  AdvanceOutput g, c;
  auto gr = (*gpu)->advance(gpu_states, req, g);
  ASSERT_TRUE(gr.has_value()) << gr.error().to_string();
  ASSERT_TRUE((*cpu)->advance(cpu_states, req, c).has_value());
  size_t same = 0;
  for (size_t i = 0; i < kChains; ++i) {  // the first iteration starts from identical states
    EXPECT_NEAR(g.stats[i].step_size, c.stats[i].step_size, 1e-6) << i;
    EXPECT_EQ(g.stats[i].n_leapfrog, c.stats[i].n_leapfrog) << model.name() << " " << i;
    EXPECT_NEAR(g.stats[i].accept_stat, c.stats[i].accept_stat, 5e-3) << model.name() << " " << i;
    EXPECT_NEAR(g.stats[i].energy, c.stats[i].energy,
                1e-3 * std::max(1.0, std::abs(c.stats[i].energy)));
    same += g.stats[i].accepted == c.stats[i].accepted;
  }
  EXPECT_GE(same, kChains - 3) << model.name();
  for (size_t i = 0; i < kChains; ++i) {
    EXPECT_EQ(gpu_states[i].iteration, 20u);
    EXPECT_NEAR(gpu_states[i].lp, g.stats[2 * kChains + i].lp,
                1e-5 * std::max(1.0, std::abs(gpu_states[i].lp)));
    for (size_t k = 0; k < d; ++k)
      EXPECT_FLOAT_EQ(g.draws[(2 * kChains + i) * d + k], gpu_states[i].q[k]);
    // The kept lp belongs to the kept q.
    std::vector<double> grad(d);
    const double lp = model.log_density(gpu_states[i].q, grad);
    EXPECT_NEAR(gpu_states[i].lp, lp, 1e-4 * std::max(1.0, std::abs(lp)))
        << model.name() << " " << i;
  }
  ASSERT_EQ(g.proposal_q.size(), kChains * d);
  ASSERT_EQ(g.proposal_velocity.size(), kChains * d);
}

TEST_F(GpuBackendTest, TransitionUsesTheCpuRandomStreams) {
  auto o = options();
  o.kernel = KernelChoice::generic;
  expect_transition_matches_cpu(*testing::must(make_normal(6)), o, "generic", 0.5);
  const auto data = testing::make_logistic_data(100, 3, 5);
  expect_transition_matches_cpu(*testing::must(make_logistic_regression(3, data.x, data.y)), o,
                                "generic", 0.1);
}

TEST_F(GpuBackendTest, LogisticKernelUsesTheCpuRandomStreams) {
  // N not a multiple of the tile; d = 3 (4 threads per chain), 8, 33 (32 threads x 2 coordinates).
  for (auto [n, d] : {std::pair<size_t, size_t>{100, 3}, {300, 8}, {70, 33}}) {
    const auto data = testing::make_logistic_data(n, d, 5);
    expect_transition_matches_cpu(*testing::must(make_logistic_regression(d, data.x, data.y)),
                                  options(), "logistic", d > 10 ? 0.02 : 0.05);
  }
  if (has_float64()) {
    const auto data = testing::make_logistic_data(300, 5, 9);
    expect_transition_matches_cpu(*testing::must(make_logistic_regression(5, data.x, data.y)),
                                  options(Precision::f64), "logistic", 0.05);
  }
}

TEST(LogisticLayoutTest, SlicesOutgrowTheSharedSlotsAndFollowTheDimension) {
  // d = 32 in 48 KiB: 64 slices of 8 chains (512 invocations) adding into 32 slots of 33 x 8
  // partial sums, 4 rows at a time; fewer invocations allowed: fewer slices; d = 64: at most
  // 32 slices and 2 rows; too little memory for 2 slots: no layout (the generic kernel).
  const auto a = detail::logistic_layout(32, Precision::f32, 48640, 1024);
  EXPECT_EQ(a.slices, 64u);
  EXPECT_EQ(a.slots, 32u);
  EXPECT_EQ(a.rows, 4u);
  EXPECT_LE(a.shared_bytes, 48640u);
  EXPECT_EQ(detail::logistic_layout(32, Precision::f32, 48640, 256).slices, 32u);
  const auto b = detail::logistic_layout(64, Precision::f32, 48640, 1024);
  EXPECT_EQ(b.slices, 32u);
  EXPECT_EQ(b.rows, 2u);
  EXPECT_LE(b.slots, b.slices);
  EXPECT_LE(b.shared_bytes, 48640u);
  EXPECT_EQ(detail::logistic_layout(32, Precision::f32, 2048 + 1056, 1024).slices, 0u);
}

TEST_F(GpuBackendTest, LogisticPosteriorMatchesACpuRun) {
  // 32 chains x 100 draws on each side; the posterior sds are about 0.25, so the difference of
  // two means with ESS >= 800 each has sd <= 0.25 * sqrt(2 / 800) = 0.0125; bound 0.06.
  const auto data = testing::make_logistic_data(100, 3, 21);
  auto model = testing::must(make_logistic_regression(3, data.x, data.y));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(gpu->stats().kernel, "logistic");
  SamplerConfig config;
  config.chains = 32;
  config.warmup = 100;
  config.draws = 100;
  config.steps = 8;
  config.threads = 2;
  auto g = sample(*model, config, gpu.get());
  config.seed = 1;
  auto c = sample(*model, config);
  ASSERT_TRUE(g.has_value()) << g.error().to_string();
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(g->fallback_reason.empty());
  for (size_t k = 0; k < 3; ++k) {
    const auto gx = g->param_draws(k), cx = c->param_draws(k);
    double gm = 0, cm = 0;
    for (double v : gx) gm += v;
    for (double v : cx) cm += v;
    gm /= static_cast<double>(gx.size());
    cm /= static_cast<double>(cx.size());
    EXPECT_NEAR(gm, cm, 0.06) << k;
    EXPECT_NEAR(gm, data.beta[k], 1.0) << k;  // the truth, within the posterior's reach
  }
}

TEST_F(GpuBackendTest, SeparableKernelUsesTheCpuRandomStreams) {
  // d = 37: 16 threads per chain of 3 coordinates each (11 idle slots); d = 100: 32 x 4; d = 2:
  // one thread per chain.
  for (size_t d : {37, 100, 2}) {
    expect_transition_matches_cpu(*testing::must(make_normal(d, 0.5, 1.5)), options(), "separable",
                                  0.4);
  }
  expect_transition_matches_cpu(*testing::must(make_gamma(5, 3.0, 2.0)), options(), "separable",
                                0.3);
  expect_transition_matches_cpu(*testing::must(make_beta(9, 2.5, 1.5)), options(), "separable",
                                0.3);
  expect_transition_matches_cpu(*testing::must(make_student_t(7, 4.0, -1.0, 1.5)), options(),
                                "separable", 0.3);
  if (has_float64()) {
    expect_transition_matches_cpu(*testing::must(make_normal(37, 0.5, 1.5)),
                                  options(Precision::f64), "separable", 0.4);
  }
}

TEST_F(GpuBackendTest, SeparableKernelStopsDivergentTrajectoriesWhereTheCpuDoes) {
  // A step size past the normal's stability limit (2 sd): energies grow every step, and each
  // trajectory diverges at a step that depends on its start. With 20 steps the subgroup
  // kernel's chunks (of 8 on lavapipe, 32 on NVIDIA) end before, at and after the divergent
  // step, so the chunk replay must stop the state exactly where the CPU stops it.
  auto model = testing::must(make_normal(37, 0.0, 0.5));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  auto cpu = CpuLeapfrogBackend::create(*model, 2);
  ASSERT_TRUE(cpu.has_value());
  constexpr size_t kChains = 70;
  const size_t d = model->dimension();
  std::vector<ChainState> states(kChains);
  for (uint32_t c = 0; c < kChains; ++c) {
    auto& s = states[c];
    s.q.assign(d, 0.0);
    for (size_t i = 0; i < d; ++i) s.q[i] = 0.01 * static_cast<double>((i * 5 + c) % 11);
    s.grad.resize(d);
    s.lp = model->log_density(s.q, s.grad);
    s.step_size = 1.0 + 0.01 * static_cast<double>(c);
    s.inv_metric.assign(d, 1.0);
    s.chain = c;
  }
  auto gpu_states = states, cpu_states = states;
  const uint32_t steps[] = {20};
  const AdvanceRequest req{99, steps, 0.0, true, true};
  AdvanceOutput g, c;
  ASSERT_TRUE(gpu->advance(gpu_states, req, g).has_value());
  ASSERT_TRUE((*cpu)->advance(cpu_states, req, c).has_value());
  size_t divergent = 0, early = 0;
  for (size_t i = 0; i < kChains; ++i) {
    EXPECT_EQ(g.stats[i].divergent, c.stats[i].divergent) << i;
    EXPECT_EQ(g.stats[i].n_leapfrog, c.stats[i].n_leapfrog) << i;
    EXPECT_FALSE(g.stats[i].divergent && g.stats[i].accepted) << i;
    divergent += c.stats[i].divergent;
    early += c.stats[i].n_leapfrog < 20;
    for (size_t k = 0; k < d; ++k) {  // the trajectory's stopping point
      const double want = c.proposal_q[i * d + k];
      EXPECT_NEAR(g.proposal_q[i * d + k], want, 1e-3 * std::max(1.0, std::abs(want))) << i << " " << k;
    }
    if (g.stats[i].divergent) {  // rejected: the chain stays where it was
      for (size_t k = 0; k < d; ++k) EXPECT_FLOAT_EQ(gpu_states[i].q[k], states[i].q[k]);
    }
  }
  EXPECT_GT(divergent, kChains / 2);  // the case exists ...
  EXPECT_GT(early, kChains / 4);      // ... and most stop before the last step
}

TEST_F(GpuBackendTest, AutomaticKernelChoice) {
  // Separable kernels on GPUs only: lavapipe runs barriers slowly, so there the generic one.
  auto cpu_device =
      with_node([](Context& c) { return c.device().info().type == VK_PHYSICAL_DEVICE_TYPE_CPU; },
                options().call);
  ASSERT_TRUE(cpu_device.has_value());
  auto o = options();
  o.kernel = KernelChoice::automatic;
  auto iid = GpuLeapfrogBackend::create(*testing::must(make_normal(8)), o);
  ASSERT_TRUE(iid.has_value());
  EXPECT_EQ((*iid)->stats().kernel.rfind(*cpu_device ? "generic" : "separable", 0), 0u);
  auto schools = GpuLeapfrogBackend::create(*testing::must(make_eight_schools()), options());
  ASSERT_TRUE(schools.has_value());
  EXPECT_EQ((*schools)->stats().kernel, "generic");  // not separable: specialized falls back
}

TEST_F(GpuBackendTest, LongBlocksSplitIntoDispatches) {
  // 40 iterations in dispatches of 16: the counters and draws continue across dispatches.
  auto model = testing::must(make_normal(3));
  auto o = options();
  o.max_iterations_per_dispatch = 16;
  auto gpu = GpuLeapfrogBackend::create(*model, o);
  ASSERT_TRUE(gpu.has_value());
  std::vector<ChainState> states(8);
  for (uint32_t c = 0; c < states.size(); ++c) {
    states[c] = {{0.1, 0.2, 0.3}, 0, {0, 0, 0}, 0.7, {1, 1, 1}, c, 0};
    states[c].lp = model->log_density(states[c].q, states[c].grad);
  }
  std::vector<uint32_t> steps(40, 4);
  AdvanceRequest req{7, steps, 0.0, true, false};
  AdvanceOutput out;
  ASSERT_TRUE((*gpu)->advance(states, req, out).has_value());
  EXPECT_EQ((*gpu)->stats().dispatches, 3u);
  size_t accepted = 0;
  for (const auto& st : out.stats) {
    EXPECT_EQ(st.n_leapfrog, 4u);
    EXPECT_NEAR(st.step_size, 0.7, 1e-6);
    accepted += st.accepted;
  }
  EXPECT_GT(accepted, out.stats.size() / 2);
  for (size_t c = 0; c < states.size(); ++c) {
    EXPECT_EQ(states[c].iteration, 40u);
    for (size_t i = 0; i < 3; ++i)
      EXPECT_FLOAT_EQ(out.draws[(39 * states.size() + c) * 3 + i], states[c].q[i]);
  }
}

TEST_F(GpuBackendTest, BlocksBeyondTheBufferLimitSplitIntoPrograms) {
  // Per iteration the stats (6 words) outgrow the draws (3 coordinates): 8 chains x 6 x 4 bytes
  // = 192 bytes; a 700-byte limit allows 3 iterations per Program, so 40 iterations take 14
  // Programs. Draws and stats must continue across them exactly as in one Program.
  auto model = testing::must(make_normal(3));
  auto one = options(), split = options();
  split.TEST_max_buffer_bytes = 700;
  auto a = GpuLeapfrogBackend::create(*model, one);
  auto b = GpuLeapfrogBackend::create(*model, split);
  ASSERT_TRUE(a.has_value() && b.has_value());
  std::vector<ChainState> sa(8);
  for (uint32_t c = 0; c < sa.size(); ++c) {
    sa[c] = {{0.1, -0.2, 0.3}, 0, {0, 0, 0}, 0.6, {1, 1, 1}, c, 5};
    sa[c].lp = model->log_density(sa[c].q, sa[c].grad);
  }
  auto sb = sa;
  std::vector<uint32_t> steps(40, 3);
  AdvanceRequest req{11, steps, 0.3, true, true};
  AdvanceOutput oa, ob;
  ASSERT_TRUE((*a)->advance(sa, req, oa).has_value());
  ASSERT_TRUE((*b)->advance(sb, req, ob).has_value());
  EXPECT_EQ((*a)->stats().programs, 1u);
  EXPECT_EQ((*b)->stats().programs, 14u);
  ASSERT_EQ(oa.draws.size(), ob.draws.size());
  for (size_t i = 0; i < oa.draws.size(); ++i) EXPECT_EQ(oa.draws[i], ob.draws[i]) << i;
  for (size_t i = 0; i < oa.stats.size(); ++i) {
    EXPECT_EQ(oa.stats[i].accepted, ob.stats[i].accepted) << i;
    EXPECT_EQ(oa.stats[i].energy, ob.stats[i].energy) << i;
  }
  EXPECT_EQ(oa.proposal_q, ob.proposal_q);
  for (size_t c = 0; c < sa.size(); ++c) {
    EXPECT_EQ(sa[c].q, sb[c].q);
    EXPECT_EQ(sb[c].iteration, 45u);
  }
}

TEST_F(GpuBackendTest, HeldOutputIsWhatAdvanceWouldHaveReturned) {
  // 15 iterations returned at once vs held over calls of 10 and 5 and collected: the same
  // bits. Both kernels (chain-major and dimension-major buffers); a buffer limit of 3
  // iterations also splits the held calls into several held blocks.
  for (KernelChoice kernel : {KernelChoice::specialized, KernelChoice::generic}) {
    for (uint64_t limit : {uint64_t{0}, uint64_t{37 * 4 * 8 * 3}}) {
      SCOPED_TRACE(vkn::format("kernel {} limit {}", kernel == KernelChoice::generic ? "generic" : "separable", limit));
      auto model = testing::must(make_normal(37, 0.5, 1.5));
      auto o = options();
      o.kernel = kernel;
      o.TEST_max_buffer_bytes = limit;  // 37 x 4 bytes x 8 chains: 3 iterations
      auto gpu = GpuLeapfrogBackend::create(*model, o);
      ASSERT_TRUE(gpu.has_value()) << gpu.error().to_string();
      ASSERT_TRUE((*gpu)->can_hold_output());
      auto sa = testing::chain_states(*model, 8, 0.1, 0.4, 3), sb = sa;
      const std::vector<uint32_t> steps(15, 6);
      AdvanceRequest all{5, steps, 0.2, true, false};
      AdvanceOutput oa, ob, held;
      ASSERT_TRUE((*gpu)->advance(sa, all, oa).has_value());
      for (auto part : {std::span(steps).first(10), std::span(steps).subspan(10)}) {
        AdvanceRequest r{5, part, 0.2, true, false};
        r.hold_output = true;
        ASSERT_TRUE((*gpu)->advance(sb, r, held).has_value());
        EXPECT_TRUE(held.stats.empty() && held.draws.empty());  // nothing returned while held
      }
      ASSERT_TRUE((*gpu)->collect(ob).has_value());
      ASSERT_EQ(ob.draws.size(), oa.draws.size());
      EXPECT_EQ(ob.draws, oa.draws);
      ASSERT_EQ(ob.stats.size(), oa.stats.size());
      for (size_t i = 0; i < oa.stats.size(); ++i) {
        EXPECT_EQ(ob.stats[i].energy, oa.stats[i].energy) << i;
        EXPECT_EQ(ob.stats[i].n_leapfrog, oa.stats[i].n_leapfrog) << i;
        EXPECT_EQ(ob.stats[i].accepted, oa.stats[i].accepted) << i;
      }
      for (size_t c = 0; c < sa.size(); ++c) EXPECT_EQ(sa[c].q, sb[c].q) << c;
      AdvanceOutput again;  // collected output is gone
      ASSERT_TRUE((*gpu)->collect(again).has_value());
      EXPECT_TRUE(again.stats.empty() && again.draws.empty());
    }
  }
}

TEST_F(GpuBackendTest, ReservedHeldOutputIsAllocatedBeforeTheHeldCalls) {
  // Two calls of 10 iterations of 8 chains under a 3-iteration buffer limit: 4 held blocks a
  // call, 8 in all, each with its stats and draws buffer, there before any advance().
  auto model = testing::must(make_normal(37, 0.5, 1.5));
  auto o = options();
  o.TEST_max_buffer_bytes = 37 * 4 * 8 * 3;
  auto gpu = GpuLeapfrogBackend::create(*model, o);
  ASSERT_TRUE(gpu.has_value());
  auto held_buffers = [] {
    auto list = list_buffers(options().call);
    EXPECT_TRUE(list.has_value());
    size_t n = 0;
    for (const auto& e : list ? *list : std::vector<BufferEntryInfo>{}) n += e.name.find(".held.") != std::string::npos;
    return n;
  };
  const size_t before = held_buffers();
  ASSERT_TRUE((*gpu)->reserve_held(8, 10, 2, true).has_value());
  EXPECT_EQ(held_buffers(), before + 16);
  auto states = testing::chain_states(*model, 8, 0.1, 0.4);
  const std::vector<uint32_t> steps(10, 4);
  AdvanceRequest r{5, steps, 0.0, true, false};
  r.hold_output = true;
  AdvanceOutput out;
  for (int call = 0; call < 2; ++call) ASSERT_TRUE((*gpu)->advance(states, r, out).has_value());
  EXPECT_EQ(held_buffers(), before + 16);  // the calls used the reserved ones
  ASSERT_TRUE((*gpu)->collect(out).has_value());
  EXPECT_EQ(out.draws.size(), size_t{20} * 8 * 37);
}

TEST_F(GpuBackendTest, UnchangedMetricsAreNotUploadedAgainAndChangedOnesAre) {
  // One backend advances the same states with metric A, A again, B, then A: each result must
  // equal a fresh backend's for that metric, and only the calls after a change upload it.
  auto model = testing::must(make_normal(37, 0.5, 1.5));
  auto run = [&](GpuLeapfrogBackend& gpu, double metric_scale) {
    auto states = testing::chain_states(*model, 8, 0.1, 0.4);
    for (auto& s : states) {
      for (size_t i = 0; i < s.inv_metric.size(); ++i) s.inv_metric[i] = metric_scale * (1.0 + 0.01 * i);
    }
    const std::vector<uint32_t> steps(3, 5);
    AdvanceOutput out;
    EXPECT_TRUE(gpu.advance(states, {9, steps, 0.0, true, false}, out).has_value());
    return out.draws;
  };
  auto shared = backend(*model);
  ASSERT_NE(shared, nullptr);
  const auto a1 = run(*shared, 1.0);
  const auto a2 = run(*shared, 1.0);
  EXPECT_EQ(shared->stats().metric_uploads, 1u);
  const auto b = run(*shared, 0.5);
  EXPECT_EQ(shared->stats().metric_uploads, 2u);
  const auto a3 = run(*shared, 1.0);
  EXPECT_EQ(shared->stats().metric_uploads, 3u);
  EXPECT_EQ(a1, a2);
  EXPECT_EQ(a1, a3);
  auto fresh = backend(*model);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(run(*fresh, 0.5), b);
  EXPECT_NE(a1, b);
}

TEST_F(GpuBackendTest, StatesGoUpOnlyWhenTheHostChangedThem) {
  // Calls that continue from where the last one left the states upload no positions or
  // gradients; after the host moves one chain, the next call uploads and computes exactly what
  // a fresh backend computes from the moved states.
  auto model = testing::must(make_normal(37, 0.5, 1.5));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  auto states = testing::chain_states(*model, 8, 0.1, 0.4);
  const std::vector<uint32_t> steps(3, 5);
  AdvanceOutput out;
  ASSERT_TRUE(gpu->advance(states, {9, steps, 0.0, true, false}, out).has_value());
  ASSERT_TRUE(gpu->advance(states, {9, steps, 0.0, true, false}, out).has_value());
  EXPECT_EQ(gpu->stats().state_uploads, 1u);
  states[3].q[5] += 0.25;
  states[3].lp = model->log_density(states[3].q, states[3].grad);
  auto moved = states;
  ASSERT_TRUE(gpu->advance(states, {9, steps, 0.0, true, false}, out).has_value());
  EXPECT_EQ(gpu->stats().state_uploads, 2u);
  auto fresh = backend(*model);
  ASSERT_NE(fresh, nullptr);
  AdvanceOutput expected;
  ASSERT_TRUE(fresh->advance(moved, {9, steps, 0.0, true, false}, expected).has_value());
  EXPECT_EQ(out.draws, expected.draws);
  for (size_t c = 0; c < states.size(); ++c) EXPECT_EQ(states[c].q, moved[c].q) << c;
}

TEST_F(GpuBackendTest, DispatchSizeDoesNotChangeTheDraws) {
  // 100 iterations of 8 steps over 100 data rows in dispatches of 16 iterations or of up to
  // 128: the same bits. On lavapipe, whose shaders stop counting loop iterations at 65535 (a
  // guard against endless loops), one dispatch of all 100 would silently stop the trajectories
  // after about 640 steps; the backend keeps dispatches under that budget there.
  const auto data = testing::make_logistic_data(100, 3, 21);
  auto model = testing::must(make_logistic_regression(3, data.x, data.y));
  auto small = options(), large = options();
  small.kernel = large.kernel = KernelChoice::generic;
  small.max_iterations_per_dispatch = 16;
  auto a = GpuLeapfrogBackend::create(*model, small);
  auto b = GpuLeapfrogBackend::create(*model, large);
  ASSERT_TRUE(a.has_value() && b.has_value());
  auto sa = testing::chain_states(*model, 32, 0.05, 0.1), sb = sa;
  const std::vector<uint32_t> steps(100, 8);
  AdvanceOutput oa, ob;
  ASSERT_TRUE((*a)->advance(sa, {3, steps, 0.0, true, false}, oa).has_value());
  ASSERT_TRUE((*b)->advance(sb, {3, steps, 0.0, true, false}, ob).has_value());
  for (const auto& st : ob.stats) ASSERT_EQ(st.n_leapfrog, 8u);
  EXPECT_EQ(oa.draws, ob.draws);
  EXPECT_GE((*b)->stats().dispatches, 1u);
}

TEST_F(GpuBackendTest, IterationsBeyondACpuDevicesLoopLimitAreAnError) {
  // 4000 rows x 32 steps in one iteration: past lavapipe's loop limit (an error there, instead
  // of trajectories that silently stop); a GPU runs it.
  const auto data = testing::make_logistic_data(4000, 2, 3);
  auto model = testing::must(make_logistic_regression(2, data.x, data.y));
  auto o = options();
  o.kernel = KernelChoice::generic;
  auto gpu = GpuLeapfrogBackend::create(*model, o);
  ASSERT_TRUE(gpu.has_value());
  auto cpu_device =
      with_node([](Context& c) { return c.device().info().type == VK_PHYSICAL_DEVICE_TYPE_CPU; }, options().call);
  ASSERT_TRUE(cpu_device.has_value());
  std::vector<ChainState> states(4);
  for (uint32_t c = 0; c < states.size(); ++c) {
    states[c] = {{0.1, 0.1}, 0, {0, 0}, 0.01, {1, 1}, c, 0};
    states[c].lp = model->log_density(states[c].q, states[c].grad);
  }
  const std::vector<uint32_t> steps(1, 32);
  AdvanceOutput out;
  auto r = (*gpu)->advance(states, {1, steps, 0.0, true, false}, out);
  if (*cpu_device) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::unsupported);
    EXPECT_NE(r.error().message.find("loop"), std::string::npos) << r.error().to_string();
    EXPECT_EQ(states[0].iteration, 0u);  // nothing ran
  } else {
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(out.stats[0].n_leapfrog, 32u);
  }
}

TEST_F(GpuBackendTest, RecoversKnownPosteriorMoments) {
  // theta ~ N(1, 2^2) in 4 dimensions; 64 chains x 200 draws. With an ESS of at least ~2000 per
  // coordinate the mean's MC sd is about 2 / sqrt(2000) = 0.045 (bound 0.2, > 4 sd), the
  // variance's about 4 * sqrt(2 / 2000) = 0.13 (bound 0.8). Both kernels.
  for (KernelChoice kernel : {KernelChoice::specialized, KernelChoice::generic}) {
    SCOPED_TRACE(kernel == KernelChoice::generic ? "generic" : "separable");
    auto model = testing::must(make_normal(4, 1.0, 2.0));
    auto o = options();
    o.kernel = kernel;
    auto created = GpuLeapfrogBackend::create(*model, o);
    ASSERT_TRUE(created.has_value());
    auto gpu = std::move(*created);
    SamplerConfig config = testing::sampler_config(64, 150, 200, 8, 99, 2);
    auto r = sample(*model, config, gpu.get());
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(r->backend.rfind("gpu:", 0), 0u) << r->backend;
    EXPECT_GT(r->readback_seconds, 0.0);  // the draws were held on the device, then collected
    EXPECT_TRUE(r->fallback_reason.empty());
    for (size_t k = 0; k < 4; ++k) {
      const auto x = r->param_draws(k);
      double mean = 0, var = 0;
      for (double v : x) mean += v;
      mean /= static_cast<double>(x.size());
      for (double v : x) var += (v - mean) * (v - mean);
      var /= static_cast<double>(x.size() - 1);
      EXPECT_NEAR(mean, 1.0, 0.2) << k;
      EXPECT_NEAR(var, 4.0, 0.8) << k;
    }
  }
}

TEST_F(GpuBackendTest, ChEESAdaptationRunsOnTheGpu) {
  // adapt_steps reads the last iteration's proposals (q and m p) from every advance() call.
  auto model = testing::must(make_normal(4, 0.0, 3.0));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  SamplerConfig config;
  config.chains = 32;
  config.warmup = 100;
  config.draws = 50;
  config.steps = 4;
  config.adapt_steps = true;
  config.threads = 2;
  auto r = sample(*model, config, gpu.get());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->backend.rfind("gpu:", 0), 0u);
  EXPECT_GT(r->trajectory_length, 0.0);
  EXPECT_TRUE(std::isfinite(r->trajectory_length));
}

TEST_F(GpuBackendTest, LostDeviceFallsBackToTheCpu) {
  auto model = testing::must(make_normal(3));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  SamplerConfig config;
  config.chains = 8;
  config.warmup = 40;
  config.draws = 40;
  config.steps = 4;
  config.threads = 2;
  // The next submit loses the device: it hits the start-up trajectories or warm-up.
  ASSERT_TRUE(TEST_inject(kNode, 1, 0, 0).has_value());
  auto r = sample(*model, config, gpu.get());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->backend, "cpu");
  EXPECT_NE(r->fallback_reason.find("device_lost"), std::string::npos) << r->fallback_reason;
  EXPECT_EQ(r->values.size(), size_t{8} * 40 * 3);
  // The node recovered in place; a new backend works again.
  auto again = backend(*model);
  ASSERT_NE(again, nullptr);
  std::vector<double> store;
  EXPECT_TRUE(again->trajectories(request(4, 3, 2, store)).has_value());
}

TEST_F(GpuBackendTest, NoNodeIsNodeDead) {
  auto model = testing::must(make_normal(3));
  auto o = options();
  o.call.node = "no-such-node";
  auto r = GpuLeapfrogBackend::create(*model, o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::node_dead);
  EXPECT_TRUE(is_fallback_error(r.error()));
}

}  // namespace
}  // namespace vkn::sampler
