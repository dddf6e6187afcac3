// The CPU transition of leapfrog_backend.h, for one chain: momentum from Philox, K leapfrog
// steps with divergence checks, Metropolis accept. Pure functions of their arguments; the
// caller provides per-thread scratch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampler/philox.h"
#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler::detail {

inline constexpr double kMaxEnergyError = 1000.0;  // Stan's max_deltaH

// p[i] = z[i] / sqrt(inv_metric[i]), z the normals of (key, block, chain, iteration, stream, sub).
void draw_momentum(std::span<double> p, std::span<const double> inv_metric, PhiloxKey key, uint32_t chain,
                   uint32_t iteration, uint32_t stream, uint32_t sub = 0);

// 0.5 * sum inv_metric[i] p[i]^2.
double kinetic_energy(std::span<const double> p, std::span<const double> inv_metric);

// One leapfrog step of size eps (half kick, drift, gradient, half kick); returns lp at the new q.
double leapfrog_step(const Model& model, double eps, std::span<const double> inv_metric, std::span<double> q,
                     std::span<double> p, std::span<double> grad);

struct TransitionScratch {
  std::vector<double> q, p, grad;
};

// One iteration of chain `state` with K steps (see leapfrog_backend.h); advances the state.
// When proposal_q/proposal_v are non-empty they receive the trajectory's end point and m * p.
TransitionStats hmc_transition(const Model& model, ChainState& state, PhiloxKey key, uint32_t steps,
                               double step_size_jitter, TransitionScratch& scratch, std::span<double> proposal_q = {},
                               std::span<double> proposal_v = {});

}  // namespace vkn::sampler::detail
