// The GLSL of the GPU leapfrog backend's two kernels, generated around a model's GLSL. See
// docs/sampler.md ("GPU kernel design") for the buffer layouts. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "vknode/sampler/model.h"

namespace vkn::sampler::detail {

// Bindings of the transition kernel (data buffers from kDataBindingBase on).
enum TransitionBinding : uint32_t {
  kBindQ = 0,          // REAL [d][C]: position (read; written when accepted)
  kBindGrad = 1,       // REAL [d][C]: gradient at q
  kBindMetric = 2,     // REAL [d][C]: inverse metric
  kBindScalars = 3,    // REAL [2][C]: lp, step size
  kBindCounters = 4,   // uint [C] chain, [C] first iteration, [iters] steps of each iteration
  kBindStats = 5,      // REAL [iter][kStatWords][C]
  kBindDraws = 6,      // REAL [iter][d][C] (when kept)
  kBindProposals = 7,  // REAL [2][d][C]: proposal q, velocity m * p (when kept)
};
// Per chain and iteration: lp, step size, accept_stat, energy, n_leapfrog, flags
// (1 divergent, 2 accepted).
inline constexpr uint32_t kStatWords = 6;

// Push constants of the transition kernel (std430, 32 bytes).
struct TransitionPush {
  uint32_t key0, key1, chains, first, count, proposal_at, keep_draws;
  float jitter;
};

// Bindings of the trajectory kernel.
enum TrajectoryBinding : uint32_t {
  kBindQ0 = 0,       // REAL [d][n]
  kBindP0 = 1,       // REAL [d][n]
  kBindTMetric = 2,  // REAL [d][n]
  kBindEps = 3,      // REAL [n]
  kBindOutQ = 4,     // REAL [n][s + 1][d]
  kBindOutP = 5,
  kBindOutGrad = 6,
  kBindOutLp = 7,    // REAL [n][s + 1]
};

struct TrajectoryPush {
  uint32_t count, steps;
};

std::string transition_source(const Model& model, Precision precision, uint32_t workgroup_size);

// Separable models (an iid family: the GLSL defines vkn_iid_element(x, out d), and the log
// density is the sum of it over the coordinates) get a kernel that spreads each chain over
// `threads_per_chain` invocations, each holding `per_thread` coordinates in registers, with one
// shared-memory reduction per leapfrog step for the Hamiltonian. Same bindings and push
// constants as the generic kernel; chains_per_group chains per workgroup.
struct SeparableLayout {
  uint32_t threads_per_chain = 1, per_thread = 1, chains_per_group = 1;
};
bool is_separable(const std::string& model_glsl);
SeparableLayout separable_layout(size_t dimension);
std::string separable_transition_source(const Model& model, Precision precision, const SeparableLayout& layout);
std::string trajectory_source(const Model& model, Precision precision, uint32_t workgroup_size);

}  // namespace vkn::sampler::detail
