// CpuLeapfrogBackend: hmc_transition over a thread pool, one chain per work item.
#include <cmath>

#include "sampler/hmc_transition.h"
#include "sampler/thread_pool.h"
#include "util/strformat.h"
#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler {

bool is_fallback_error(const Error& error) {
  switch (error.code) {
    case Errc::node_timeout:
    case Errc::node_dead:
    case Errc::device_lost:
    case Errc::kernel_quarantined:
    case Errc::timeout:
    case Errc::out_of_device_memory:
      return true;
    default:
      return false;
  }
}

Result<std::unique_ptr<CpuLeapfrogBackend>> CpuLeapfrogBackend::create(const Model& model, unsigned threads) {
  auto pool = detail::ThreadPool::create(threads);
  if (!pool) return fail(pool.error());
  return std::unique_ptr<CpuLeapfrogBackend>(new CpuLeapfrogBackend(model, std::move(*pool)));
}

CpuLeapfrogBackend::CpuLeapfrogBackend(const Model& model, std::unique_ptr<detail::ThreadPool> pool)
    : model_(model), pool_(std::move(pool)) {}

CpuLeapfrogBackend::~CpuLeapfrogBackend() = default;

unsigned CpuLeapfrogBackend::threads() const { return pool_->size(); }

Result<void> CpuLeapfrogBackend::advance(std::span<ChainState> states, const AdvanceRequest& request,
                                         AdvanceOutput& out) {
  const size_t d = model_.dimension(), chains = states.size(), iters = request.steps.size();
  for (const ChainState& s : states) {
    if (s.q.size() != d || s.grad.size() != d || s.inv_metric.size() != d) {
      return fail(Errc::invalid_argument, "chain state size does not match the model dimension",
                  vkn::format("chain {}", s.chain));
    }
    if (!(s.step_size > 0) || !std::isfinite(s.step_size)) {
      return fail(Errc::invalid_argument, "step size must be finite and positive", vkn::format("chain {}", s.chain));
    }
  }
  if (!(request.step_size_jitter >= 0 && request.step_size_jitter < 1)) {
    return fail(Errc::invalid_argument, "step size jitter must be in [0, 1)");
  }
  out.stats.assign(iters * chains, {});
  out.draws.assign(request.keep_draws ? iters * chains * d : 0, 0.0);
  out.proposal_q.assign(request.keep_proposals ? chains * d : 0, 0.0);
  out.proposal_velocity.assign(request.keep_proposals ? chains * d : 0, 0.0);
  const PhiloxKey key = philox_key(request.seed);
  pool_->parallel_for(chains, [&](size_t c) {
    detail::TransitionScratch scratch;
    ChainState& state = states[c];
    for (size_t t = 0; t < iters; ++t) {
      std::span<double> pq, pv;
      if (request.keep_proposals && t + 1 == iters) {
        pq = {&out.proposal_q[c * d], d};
        pv = {&out.proposal_velocity[c * d], d};
      }
      out.stats[t * chains + c] = detail::hmc_transition(model_, state, key, request.steps[t], request.step_size_jitter,
                                                           scratch, pq, pv);
      if (request.keep_draws) std::copy(state.q.begin(), state.q.end(), &out.draws[(t * chains + c) * d]);
    }
  });
  return {};
}

Result<TrajectoryBatch> CpuLeapfrogBackend::trajectories(const TrajectoryRequest& r) {
  const size_t d = model_.dimension(), n = r.chains;
  if (r.q0.size() != n * d || r.p0.size() != n * d || r.step_size.size() != n ||
      (r.inv_metric.size() != d && r.inv_metric.size() != n * d)) {
    return fail(Errc::invalid_argument, "trajectory request sizes do not match chains and dimension");
  }
  TrajectoryBatch b;
  b.chains = n;
  b.dimension = d;
  b.steps = r.steps;
  const size_t points = n * (size_t{r.steps} + 1);
  b.q.resize(points * d);
  b.p.resize(points * d);
  b.grad.resize(points * d);
  b.lp.resize(points);
  const bool shared_metric = r.inv_metric.size() == d && n > 1;
  pool_->parallel_for(n, [&](size_t c) {
    const std::span<const double> m = shared_metric ? r.inv_metric : r.inv_metric.subspan(c * d, d);
    std::vector<double> q(&r.q0[c * d], &r.q0[c * d] + d), p(&r.p0[c * d], &r.p0[c * d] + d), g(d);
    double lp = model_.log_density(q, g);
    for (uint32_t s = 0;; ++s) {
      const size_t at = b.point(c, s);
      std::copy(q.begin(), q.end(), &b.q[at * d]);
      std::copy(p.begin(), p.end(), &b.p[at * d]);
      std::copy(g.begin(), g.end(), &b.grad[at * d]);
      b.lp[at] = lp;
      if (s == r.steps) break;
      lp = detail::leapfrog_step(model_, r.step_size[c], m, q, p, g);
    }
  });
  return b;
}

}  // namespace vkn::sampler
