// Batched static HMC with Stan-style warm-up: C chains advance together through a
// LeapfrogBackend (the CPU one by default, or a GPU one with automatic fallback to the CPU).
//
// Warm-up, per chain as in Stan's adapt_diag_e sampler:
//   - step size: Stan's init heuristic (double/halve until one leapfrog step's acceptance
//     crosses 0.8), then dual averaging toward target_accept (gamma 0.05, t0 10, kappa 0.75,
//     mu = log(10 eps)); the final step size is exp(x_bar).
//   - diagonal inverse metric: Welford variance of q over Stan's windows (init buffer 75, slow
//     windows 25, 50, 100, ... doubling, term buffer 50; for warm-ups shorter than 150 the
//     buffers become 15% / 75% / 10%), regularized as (n / (n + 5)) var + 1e-3 (5 / (n + 5)).
//     At each window end the step-size heuristic runs again and dual averaging restarts.
//     metric_pooled pools the variance over all chains (one metric for all; useful with many
//     short chains on a GPU).
//   - trajectory length (adapt_steps): ChEES (Hoffman, Radul & Sountsov 2021) across chains:
//     Adam (rate 0.025, beta1 0, beta2 0.95) on log T with the ChEES gradient
//       g = sum_c a_c t_c (|q'_c - mean q'|^2 - |q_c - mean q|^2) (q'_c - mean q') . v'_c / sum_c a_c
//     (a_c the acceptance probability, t_c = K eps_c, v' = m * p'). T is jittered by the
//     Halton sequence: iteration t uses K = max(1, ceil(h(t) T / mean eps)) steps, shared by all
//     chains, capped at max_steps; jitter continues after warm-up. Needs at least 2 chains.
// Sampling runs in blocks of up to block_size iterations per backend call. A backend that can
// hold output (LeapfrogBackend::can_hold_output) keeps the draws and stats of consecutive
// blocks, up to 256 MiB, and they are fetched and recorded together.
//
// sample() is synchronous; SampleResult is a plain value type.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "vknode/error.h"
#include "vknode/sampler/chain_group.h"
#include "vknode/sampler/leapfrog_backend.h"
#include "vknode/sampler/model.h"

namespace vkn::sampler {

struct SamplerConfig {
  uint32_t chains = 4;
  uint32_t warmup = 1000;
  uint32_t draws = 1000;
  uint32_t steps = 16;            // leapfrog steps per iteration (the initial K with adapt_steps)
  uint32_t max_steps = 1024;      // cap for adapted K
  double step_size = 0.1;         // initial step size
  // Each iteration scales a chain's step size by a uniform factor in [1 - j, 1 + j] (Stan's
  // stepsize_jitter). The default breaks the resonance of a fixed trajectory length with the
  // posterior's periods, which otherwise ruins mixing on near-Gaussian targets.
  double step_size_jitter = 0.5;
  double target_accept = 0.8;
  uint64_t seed = 0;
  bool adapt_step_size = true;
  bool adapt_metric = true;
  bool metric_pooled = false;
  // After warm-up every chain samples with the mean of the adapted step sizes (over the whole
  // group), as when one metric is shared; useful with many short chains.
  bool step_size_pooled = false;
  bool adapt_steps = false;       // ChEES
  unsigned threads = 0;           // CPU threads; 0: hardware concurrency
  uint32_t block_size = 100;      // sampling iterations per backend call
  double init_radius = 2.0;       // initial q uniform in (-r, r); 0: start at init
  std::vector<double> init;       // optional initial point (size d), used when non-empty
  // A run split over processes: this process runs `chains` chains with global indices
  // first_chain, first_chain + 1, ...; `group` (borrowed; null: this process alone) joins the
  // cross-chain parts of warm-up with the other processes (chain_group.h).
  uint32_t first_chain = 0;
  ChainGroup* group = nullptr;
  // Called after every iteration with (done, total); may be empty.
  std::function<void(uint32_t, uint32_t)> progress;
};

struct SampleResult {
  uint32_t chains = 0, draws = 0;
  std::vector<std::string> param_names;  // model.param_names()
  // [chain][draw][param]: constrained output values (model.constrain).
  std::vector<double> values;
  // [chain][draw]: CmdStan's sampler columns (treedepth__ is always 0 for static HMC;
  // stepsize__ is the jittered step size of the draw).
  std::vector<double> lp, accept_stat, step_size, energy;
  std::vector<uint32_t> n_leapfrog;
  std::vector<uint8_t> divergent;
  // Per chain, after warm-up.
  std::vector<double> adapted_step_size;
  std::vector<std::vector<double>> inv_metric;
  uint32_t first_chain = 0;      // global index of chain 0 (SamplerConfig::first_chain)
  double trajectory_length = 0;  // adapted (ChEES) or steps * mean step size
  uint32_t warmup = 0;
  uint32_t steps = 0;            // configured K

  std::string backend;           // the backend that finished the run
  std::string fallback_reason;   // why the run moved to the CPU; empty if it did not
  double warmup_seconds = 0, sampling_seconds = 0;
  // The part of sampling_seconds spent fetching output the backend held (a GPU backend keeps
  // draws in device memory across blocks) and recording it here.
  double readback_seconds = 0;
  uint64_t gradient_evaluations = 0;  // leapfrog steps over all chains, warm-up included

  size_t num_params() const { return param_names.size(); }
  double value(size_t chain, size_t draw, size_t param) const {
    return values[(chain * draws + draw) * num_params() + param];
  }
  size_t index(size_t chain, size_t draw) const { return chain * draws + draw; }
  // All draws of one output value as [chain][draw].
  std::vector<double> param_draws(size_t param) const;
};

// Joins results of disjoint chain slices of one run (e.g. from MPI ranks), in the order given:
// chains follow one another, counters add up, times are the slowest part's, backends and
// fallback reasons are listed. invalid_argument if the parts disagree on draws, parameters,
// warm-up or steps, or if their chains do not follow one another (first_chain).
Result<SampleResult> concatenate_chains(std::span<const SampleResult> parts);

// Checks a configuration against a model (invalid_argument naming the field).
Result<void> validate(const SamplerConfig& config, const Model& model);

// Runs warm-up then sampling. `preferred` (borrowed; may be null) runs the leapfrog; when it
// fails with is_fallback_error() the run logs a warning and continues on a CPU backend from
// the last completed iteration (SampleResult::fallback_reason says why). Errors:
// invalid_argument (config), not_found (no initial point with finite density after 100
// attempts), or the backend's non-fallback errors.
Result<SampleResult> sample(const Model& model, const SamplerConfig& config, LeapfrogBackend* preferred = nullptr);

}  // namespace vkn::sampler
