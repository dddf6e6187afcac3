// The GLSL of the GPU leapfrog backend's two kernels, generated around a model's GLSL. See
// docs/sampler.md ("GPU kernel design") for the buffer layouts. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vknode/sampler/model.h"

namespace vkn::sampler::detail {

// Bindings of the transition kernel (data buffers from kDataBindingBase on). The separable
// kernel's per-coordinate buffers are chain-major instead: [C][d], draws [iter][C][d],
// proposals [2][C][d].
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
  kBindOutLp = 7,  // REAL [n][s + 1]
};

struct TrajectoryPush {
  uint32_t count, steps;
};

std::string transition_source(const Model& model, Precision precision, uint32_t workgroup_size);

// Separable models (an iid family: the GLSL defines vkn_iid_element(x, out d), and the log
// density is the sum of it over the coordinates) get a kernel that spreads each chain over
// `threads_per_chain` invocations, each holding `per_thread` coordinates in registers. The
// Hamiltonian's sum across them is batched over chunks of steps when a chain is one subgroup,
// else one shared-memory reduction per leapfrog step. Same bindings and push constants as the
// generic kernel, chain-major buffers; chains_per_group chains per workgroup.
struct SeparableLayout {
  uint32_t threads_per_chain = 1, per_thread = 1, chains_per_group = 1;
  // A chain is one whole subgroup: its sums are subgroupAdd (no barriers), when the shader
  // also finds gl_SubgroupSize == threads_per_chain at run time.
  bool subgroup_sums = false;
};
bool is_separable(const std::string& model_glsl);
// subgroup_size: the device's, when it supports subgroup arithmetic in compute shaders; else 0.
SeparableLayout separable_layout(size_t dimension, uint32_t subgroup_size = 0);
std::string separable_transition_source(const Model& model, Precision precision,
                                        const SeparableLayout& layout);
// Shared pieces: the Philox GLSL of src/sampler/philox.h (vkn_philox, vkn_unit, vkn_normal4),
// the transition kernel's buffer blocks (bindings 0 to 7), and "REAL" replaced by the type.
std::string philox_glsl();
std::string transition_buffers(Precision precision);
std::string glsl_with_real(std::string_view text, Precision precision);

// Logistic regression (the built-in model: N x d matrix X, 0/1 labels y, normal prior with
// constant c0 and precision inv_var): a workgroup holds `chains_per_group` chains x `slices`
// row slices; invocation (slice s, chain) keeps the chain's whole state in registers (the
// slices of a chain repeat the cheap O(d) updates) and sums the log likelihood and gradient
// over rows s, s + S, s + 2S, ..., `rows` at a time, each row loaded once (16-byte loads when
// d % 4 == 0) for eta and the gradient, with one division for the logistic and log1p; one
// shared-memory reduction over the slices per leapfrog step. The chains of a workgroup read the same X row at the same time (one L1 line serves
// them all), and the slices multiply the parallelism of 1024 chains by S.
struct LogisticLayout {
  uint32_t chains_per_group = 8, slices = 1;
  uint32_t slots = 1;  // shared partial sums: slices beyond them add into them in turn
  uint32_t rows = 1;   // rows an invocation works on at once (independent chains of FMAs)
  size_t shared_bytes = 0;
};
struct LogisticConstants {
  double c0 = 0, inv_var = 0;
};
// The constants when `model` is the built-in logistic regression (name, data buffers X and y),
// read off its CPU log density and checked at random points to 1e-9 relative; else nullopt.
std::optional<LogisticConstants> logistic_structure(const Model& model);
// slices = 0 when not even two slices fit `shared_limit` bytes or `max_invocations` (then use
// the generic kernel).
LogisticLayout logistic_layout(size_t dimension, Precision precision, size_t shared_limit,
                               uint32_t max_invocations);
std::string logistic_transition_source(const Model& model, Precision precision,
                                       const LogisticLayout& layout,
                                       const LogisticConstants& constants);

std::string trajectory_source(const Model& model, Precision precision, uint32_t workgroup_size);

}  // namespace vkn::sampler::detail
