// The sampler section of `vknode bench`: HMC leapfrog throughput and ESS per second of the GPU
// backend (fused transition kernel on a node) beside the CPU fallback in the same run.
//   A: iid normal, d = 100, C = 4096 chains, K = 32 steps, 100 iterations;
//   B: logistic regression, N = 10000 rows, d = 32, C = 1024 chains, K = 32, 20 iterations.
// (--quick: small sizes that finish in seconds on lavapipe.) Leapfrog steps/s = chains x K x
// iterations / wall time of the sampling phase, after compilation and warm-up (the warm-up
// adapts step size and metric; its time is not counted). The GPU backend holds the draws and
// stats in device memory across blocks (SampleResult::readback_seconds is the time spent
// fetching and recording them): "draws held" rows count the sampling phase without that
// read-back, "end to end" rows with it. ESS/s = the smallest bulk-ESS over all parameters /
// the end-to-end time. The CPU runs the same model and schedule with fewer chains
// (its rate per chain does not depend on the chain count beyond the thread count).
// "kernel only" advances the GPU chains with no draws kept: the transition kernel's rate with
// the host's state conversion but without the draw download and the driver's bookkeeping.
#include <random>
#include <thread>

#include "bench_report.h"
#include "bench_sections.h"
#include "util/strformat.h"
#include "vknode/node/node.h"
#include "vknode/sampler/diagnostics.h"
#include "vknode/sampler/gpu_backend.h"
#include "vknode/sampler/hmc.h"
#include "vknode/sampler/models.h"

namespace vkn::detail {
namespace {

using namespace vkn::sampler;

constexpr std::string_view kNode = "bench-sampler";

struct Case {
  std::string label;
  std::unique_ptr<Model> model;
  uint32_t chains, cpu_chains, steps, iterations, warmup;
  double target;  // H200 target, leapfrog steps/s
};

Result<std::unique_ptr<Model>> logistic(size_t n, size_t d) {
  std::mt19937_64 rng(20261128);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit;
  std::vector<double> x(n * d), y(n);
  for (size_t i = 0; i < n; ++i) {
    double eta = 0;
    for (size_t j = 0; j < d; ++j) {
      x[i * d + j] = j == 0 ? 1.0 : static_cast<double>(static_cast<float>(normal(rng)));
      eta += x[i * d + j] * (j == 0 ? 0.5 : (j % 2 ? 0.3 : -0.2));
    }
    y[i] = unit(rng) < 1.0 / (1.0 + std::exp(-eta)) ? 1.0 : 0.0;
  }
  return make_logistic_regression(d, x, y);
}

struct RunFigures {
  double steps_per_second = 0, ess_per_second = 0, min_ess = 0, seconds = 0;
  double held_steps_per_second = 0, readback_seconds = 0;  // without the read-back
  std::string backend;
  // What warm-up adapted, per chain: the kernel-only rows start from it, so that their
  // trajectories run as in sampling instead of diverging at an untuned step size.
  std::vector<double> step_size;
  std::vector<std::vector<double>> inv_metric;
};

Result<RunFigures> run(const Case& c, uint32_t chains, LeapfrogBackend* backend) {
  SamplerConfig config;
  config.chains = chains;
  config.warmup = c.warmup;
  config.draws = c.iterations;
  config.steps = c.steps;
  config.block_size = c.iterations;
  config.seed = 7;
  auto r = sample(*c.model, config, backend);
  if (!r) return fail(r.error());
  const RunSummary s = summarize(*r);
  RunFigures f;
  f.seconds = r->sampling_seconds;
  uint64_t steps = 0;
  for (uint32_t n : r->n_leapfrog) steps += n;
  f.steps_per_second = static_cast<double>(steps) / f.seconds;
  f.readback_seconds = r->readback_seconds;
  f.held_steps_per_second = static_cast<double>(steps) / (f.seconds - f.readback_seconds);
  f.min_ess = s.min_ess_bulk;
  f.ess_per_second = s.min_ess_bulk / f.seconds;
  f.backend = r->backend;
  f.step_size = r->adapted_step_size;
  f.inv_metric = r->inv_metric;
  if (!r->fallback_reason.empty())
    return fail(Errc::device_lost, "the GPU run fell back to the CPU", r->fallback_reason);
  return f;
}

// The transition kernel alone: `iterations` iterations of all chains, no draws kept. Also the
// time the node waited for the GPU (submit to completion) within that advance().
struct KernelFigures {
  double steps_per_second = 0, wall_ms = 0, gpu_ms = 0;
  double divergent_share = 0;  // of the timed trajectories
};

Result<KernelFigures> kernel_rate(const Case& c, GpuLeapfrogBackend& gpu, const RunFigures& tuned) {
  const size_t d = c.model->dimension();
  std::vector<ChainState> states(c.chains);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-0.1, 0.1);
  // Sampling runs every chain at the mean of the adapted step sizes (hmc.cc, draw_samples).
  double mean_step = 0;
  for (double e : tuned.step_size) mean_step += e / static_cast<double>(tuned.step_size.size());
  for (uint32_t i = 0; i < c.chains; ++i) {
    ChainState& s = states[i];
    s.q.resize(d);
    for (double& x : s.q) x = u(rng);
    s.grad.resize(d);
    s.lp = c.model->log_density(s.q, s.grad);
    s.step_size = mean_step;
    s.inv_metric = tuned.inv_metric.at(i);
    s.chain = i;
  }
  std::vector<uint32_t> steps(c.iterations, c.steps);
  const AdvanceRequest request{7, steps, 0.0, false, false};
  AdvanceOutput out;
  if (auto r = gpu.advance(states, request, out); !r) return fail(r.error());  // warm
  const double gpu0 = gpu.stats().gpu_wait_ms;
  const auto t0 = BenchClock::now();
  if (auto r = gpu.advance(states, request, out); !r) return fail(r.error());
  KernelFigures f;
  f.wall_ms = elapsed_us(t0) * 1e-3;
  f.gpu_ms = gpu.stats().gpu_wait_ms - gpu0;
  // Leapfrog steps actually taken: a trajectory that diverges stops early (at these
  // untuned starting points some do at once), so chains x K x iterations would overstate.
  uint64_t taken = 0, divergent = 0;
  for (const TransitionStats& s : out.stats) {
    taken += s.n_leapfrog;
    divergent += s.divergent ? 1 : 0;
  }
  f.steps_per_second = static_cast<double>(taken) / (f.wall_ms * 1e-3);
  if (!out.stats.empty()) f.divergent_share = static_cast<double>(divergent) / static_cast<double>(out.stats.size());
  return f;
}

Result<void> bench_case(const Case& c, const RowSink& sink) {
  GpuBackendOptions go;
  go.call.node = std::string(kNode);
  const auto t0 = BenchClock::now();
  auto gpu = GpuLeapfrogBackend::create(*c.model, go);
  if (!gpu) return fail(gpu.error());
  const double create_ms = elapsed_us(t0) * 1e-3;
  sink({.section = "sampler",
        .metric = vkn::format("{}: GPU backend creation (shaderc{}, pipeline, data upload)",
                              c.label, (*gpu)->stats().shader_from_cache ? " from disk cache" : ""),
        .unit = "ms",
        .value = create_ms});
  auto g = run(c, c.chains, gpu->get());
  if (!g) return fail(g.error());
  // The kernel alone right after the GPU run: measured after the seconds of the CPU run, the
  // idle GPU had lowered its clocks (kernel-only rows 2-4x slower than the sampling itself).
  auto k = kernel_rate(c, **gpu, *g);
  if (!k) return fail(k.error());
  auto cpu = run(c, c.cpu_chains, nullptr);
  if (!cpu) return fail(cpu.error());
  const std::string shape =
      vkn::format("C={} K={} x{} (CPU: C={}, {} threads)", c.chains, c.steps, c.iterations,
                  c.cpu_chains, std::thread::hardware_concurrency());
  sink({.section = "sampler",
        .metric = vkn::format("{}: leapfrog steps/s GPU (draws held on the device) vs CPU, {} [H200 target {:.2e}]",
                              c.label, shape, c.target),
        .unit = "steps/s",
        .value = g->held_steps_per_second,
        .baseline = cpu->steps_per_second});
  sink({.section = "sampler",
        .metric = vkn::format("{}: leapfrog steps/s GPU end to end (with the read-back of the draws, {:.1f} ms) vs CPU",
                              c.label, g->readback_seconds * 1e3),
        .unit = "steps/s",
        .value = g->steps_per_second,
        .baseline = cpu->steps_per_second});
  sink({.section = "sampler",
        .metric = vkn::format("{}: min bulk-ESS/s GPU vs CPU (ESS {:.0f} vs {:.0f})", c.label,
                              g->min_ess, cpu->min_ess),
        .unit = "ESS/s",
        .value = g->ess_per_second,
        .baseline = cpu->ess_per_second});
  sink({.section = "sampler",
        .metric =
            vkn::format("{}: {} kernel only, leapfrog steps/s taken (no draws kept; {:.0f}% diverged) vs full GPU sampling",
                        c.label, (*gpu)->stats().kernel, 100 * k->divergent_share),
        .unit = "steps/s",
        .value = k->steps_per_second,
        .baseline = g->steps_per_second});
  sink({.section = "sampler",
        .metric = vkn::format("{}: kernel only, GPU wait (submit to completion) vs advance() wall time",
                              c.label),
        .unit = "ms",
        .value = k->gpu_ms,
        .baseline = k->wall_ms});
  // Where the model has a specialized kernel, both kernels side by side (the automatic choice
  // above is generic on CPU devices, specialized on GPUs).
  go.kernel = KernelChoice::specialized;
  auto special = GpuLeapfrogBackend::create(*c.model, go);
  if (!special) return fail(special.error());
  if ((*special)->stats().kernel != "generic") {
    go.kernel = KernelChoice::generic;
    auto generic = GpuLeapfrogBackend::create(*c.model, go);
    if (!generic) return fail(generic.error());
    auto ks = kernel_rate(c, **special, *g);
    auto kg = kernel_rate(c, **generic, *g);
    if (!ks || !kg) return fail(ks ? kg.error() : ks.error());
    sink({.section = "sampler",
          .metric = vkn::format("{}: kernel only, {} vs generic kernel (steps taken; {:.0f}% vs {:.0f}% diverged)",
                                c.label, (*special)->stats().kernel, 100 * ks->divergent_share,
                                100 * kg->divergent_share),
          .unit = "steps/s",
          .value = ks->steps_per_second,
          .baseline = kg->steps_per_second});
  }
  return {};
}

}  // namespace

Result<void> bench_sampler(const BenchOptions& options, const RowSink& sink) {
  NodeOptions node_options;
  node_options.name = std::string(kNode);
  node_options.device_selector = options.device_selector;
  node_options.persist_pipeline_cache = false;
  node_options.hang_limit = std::chrono::seconds(60);
  if (auto r = start(node_options); !r) return r;
  struct StopAtExit {
    ~StopAtExit() { (void)stop(kNode); }
  } stop_at_exit;
  std::vector<Case> cases;
  const bool q = options.quick;
  auto a = make_normal(q ? 16 : 100);
  if (!a) return fail(a.error());
  cases.push_back({q ? "A iid normal d=16" : "A iid normal d=100", std::move(*a), q ? 256u : 4096u,
                   16u, q ? 16u : 32u, q ? 20u : 100u, q ? 30u : 100u, 3.5e9});
  auto b = logistic(q ? 500 : 10000, q ? 8 : 32);
  if (!b) return fail(b.error());
  cases.push_back({q ? "B logistic N=500 d=8" : "B logistic N=10000 d=32", std::move(*b),
                   q ? 64u : 1024u, q ? 8u : 16u, q ? 16u : 32u, q ? 10u : 20u, q ? 30u : 100u,
                   1.6e7});
  for (const Case& c : cases) {
    if (auto r = bench_case(c, sink); !r) return r;
  }
  return {};
}

}  // namespace vkn::detail
