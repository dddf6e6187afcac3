// Start-up of a run: initial points and Stan's step-size heuristic, both batched over chains
// through the backend's trajectories() so a GPU backend does the work. Driver thread only.
#pragma once

#include <vector>

#include "sampler/backend_switch.h"
#include "sampler/philox.h"
#include "vknode/sampler/hmc.h"

namespace vkn::sampler::detail {

// Fills q, lp and grad of every state: config.init when given, else uniform(-r, r) draws from
// Philox stream 2 (iteration = attempt), retried up to 100 times per chain until lp and grad are
// finite. not_found when a chain finds no such point; invalid_argument for a bad config.init.
Result<void> initialize_chains(BackendSwitch& backend, const SamplerConfig& config, std::vector<ChainState>& states);

// Stan's init_stepsize for every chain: one leapfrog step with fresh
// momentum (Philox stream 3 at `iteration`, sub = trial) and double or halve the step size until
// the acceptance probability crosses 0.8. invalid_argument when a step size leaves
// [1e-300, 1e7] (the posterior is likely improper).
Result<void> init_step_sizes(BackendSwitch& backend, PhiloxKey key, uint32_t iteration, std::vector<ChainState>& states);

}  // namespace vkn::sampler::detail
