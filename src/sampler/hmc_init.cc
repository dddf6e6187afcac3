#include "sampler/hmc_init.h"

#include <cmath>
#include <limits>

#include "sampler/hmc_transition.h"
#include "util/strformat.h"

namespace vkn::sampler::detail {
namespace {

constexpr uint32_t kMaxInitAttempts = 100;
constexpr uint32_t kMaxStepSizeTrials = 200;

bool all_finite(std::span<const double> v) {
  for (double x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

}  // namespace

Result<void> initialize_chains(BackendSwitch& backend, const SamplerConfig& config, std::vector<ChainState>& states) {
  const size_t d = states.empty() ? 0 : states[0].inv_metric.size();
  const PhiloxKey key = philox_key(config.seed);
  std::vector<size_t> pending(states.size());
  for (size_t c = 0; c < states.size(); ++c) pending[c] = c;
  const bool fixed = !config.init.empty() || config.init_radius == 0;
  for (uint32_t attempt = 0; attempt < kMaxInitAttempts && !pending.empty(); ++attempt) {
    std::vector<double> q0(pending.size() * d), p0(pending.size() * d, 0.0), eps(pending.size(), 0.0);
    for (size_t k = 0; k < pending.size(); ++k) {
      double* q = &q0[k * d];
      if (!config.init.empty()) {
        std::copy(config.init.begin(), config.init.end(), q);
      } else if (config.init_radius > 0) {
        const uint32_t chain = states[pending[k]].chain;
        for (size_t j = 0; 4 * j < d; ++j) {
          const auto u = philox_uniform4(philox_counter(static_cast<uint32_t>(j), chain, attempt, kStreamInit), key);
          for (size_t i = 0; i < 4 && 4 * j + i < d; ++i) q[4 * j + i] = config.init_radius * (2.0 * u[i] - 1.0);
        }
      }
    }
    const std::vector<double> unit(d, 1.0);
    auto batch = backend.trajectories({pending.size(), 0, q0, p0, eps, unit});
    if (!batch) return fail(batch.error());
    std::vector<size_t> still;
    for (size_t k = 0; k < pending.size(); ++k) {
      ChainState& s = states[pending[k]];
      const double lp = batch->lp_at(k, 0);
      const auto g = batch->grad_at(k, 0);
      if (std::isfinite(lp) && all_finite(g)) {
        s.q.assign(&q0[k * d], &q0[k * d] + d);
        s.grad.assign(g.begin(), g.end());
        s.lp = lp;
      } else {
        still.push_back(pending[k]);
      }
    }
    pending.swap(still);
    if (fixed && !pending.empty()) {
      return fail(Errc::invalid_argument, "the initial point has no finite log density or gradient");
    }
  }
  if (!pending.empty()) {
    return fail(Errc::not_found, vkn::format("no initial point with finite log density after {} attempts",
                                             kMaxInitAttempts),
                vkn::format("chain {}", states[pending[0]].chain));
  }
  return {};
}

Result<void> init_step_sizes(BackendSwitch& backend, PhiloxKey key, uint32_t iteration, std::vector<ChainState>& states) {
  const size_t chains = states.size();
  const size_t d = chains ? states[0].q.size() : 0;
  const double log_target = std::log(0.8);
  std::vector<int> direction(chains, 0);  // 0: not yet known
  std::vector<size_t> active(chains);
  for (size_t c = 0; c < chains; ++c) active[c] = c;
  for (uint32_t trial = 0; !active.empty(); ++trial) {
    if (trial == kMaxStepSizeTrials) return fail(Errc::invalid_argument, "step size heuristic did not settle");
    const size_t n = active.size();
    std::vector<double> q0(n * d), p0(n * d), eps(n), m(n * d), h0(n);
    for (size_t k = 0; k < n; ++k) {
      const ChainState& s = states[active[k]];
      std::copy(s.q.begin(), s.q.end(), &q0[k * d]);
      std::copy(s.inv_metric.begin(), s.inv_metric.end(), &m[k * d]);
      std::span<double> p(&p0[k * d], d);
      draw_momentum(p, s.inv_metric, key, s.chain, iteration, kStreamStepSizeInit, trial);
      h0[k] = -s.lp + kinetic_energy(p, s.inv_metric);
      eps[k] = s.step_size;
    }
    auto batch = backend.trajectories({n, 1, q0, p0, eps, m});
    if (!batch) return fail(batch.error());
    std::vector<size_t> still;
    for (size_t k = 0; k < n; ++k) {
      ChainState& s = states[active[k]];
      double h = -batch->lp_at(k, 1) + kinetic_energy(batch->p_at(k, 1), s.inv_metric);
      if (std::isnan(h)) h = std::numeric_limits<double>::infinity();
      const double delta_h = h0[k] - h;
      int& dir = direction[active[k]];
      if (dir == 0) {  // Stan's first evaluation only picks the direction
        dir = delta_h > log_target ? 1 : -1;
        still.push_back(active[k]);
        continue;
      }
      if ((dir == 1 && !(delta_h > log_target)) || (dir == -1 && !(delta_h < log_target))) continue;
      s.step_size = dir == 1 ? 2 * s.step_size : 0.5 * s.step_size;
      if (s.step_size > 1e7 || s.step_size < 1e-300) {
        return fail(Errc::invalid_argument, "step size heuristic diverged: the posterior may be improper",
                    vkn::format("chain {}", s.chain));
      }
      still.push_back(active[k]);
    }
    active.swap(still);
  }
  return {};
}

}  // namespace vkn::sampler::detail
