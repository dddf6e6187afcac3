// Convergence diagnostics and run summaries with Stan's definitions (Vehtari, Gelman, Simpson,
// Carpenter & Buerkner 2021, as implemented by the posterior R package):
//   - chains are split in half (the middle draw of an odd-length chain is dropped);
//   - rank normalization: z = Phi^-1((r - 3/8) / (S + 1/4)), r the average rank over all S
//     split draws;
//   - R-hat = max(basic R-hat of z(split x), basic R-hat of z(split |x - median x|));
//   - ESS: Geyer's initial monotone sequence on the multi-chain autocorrelations (biased
//     autocovariances via FFT), tau = -1 + 2 sum rho[0..T) + rho[T], capped at
//     S * log10(S); bulk-ESS on z(split x), tail-ESS = min of the ESS of the indicators
//     x <= q05 and x <= q95 on split chains; MCSE of the mean = sd / sqrt(ESS of split x).
// Quantiles use linear interpolation (R's type 7). Functions return NaN where posterior returns
// NA: a non-finite or constant input, or fewer than 4 draws per chain.
// All draws arguments are [chain][draw] with draws.size() a multiple of chains. Pure functions;
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vknode/sampler/hmc.h"

namespace vkn::sampler {

double split_rhat(std::span<const double> draws, size_t chains);
double ess_bulk(std::span<const double> draws, size_t chains);
double ess_tail(std::span<const double> draws, size_t chains);
// ESS of split chains without rank normalization (posterior's ess_mean).
double ess_mean(std::span<const double> draws, size_t chains);
// ESS of the given chains as they are: no split, no normalization (posterior's ess_basic with
// split = FALSE).
double ess_basic(std::span<const double> draws, size_t chains);
double mcse_mean(std::span<const double> draws, size_t chains);
// Type-7 quantile of all values; p in [0, 1].
double quantile(std::span<const double> values, double p);

struct ParamSummary {
  std::string name;
  double mean = 0, mcse_mean = 0, sd = 0, q5 = 0, q50 = 0, q95 = 0;
  double ess_bulk = 0, ess_tail = 0, rhat = 0;
};

ParamSummary summarize_param(std::string name, std::span<const double> draws, size_t chains);

struct RunSummary {
  uint32_t chains = 0, draws = 0, warmup = 0;
  std::string backend, fallback_reason;
  double mean_accept_stat = 0, mean_step_size = 0, mean_n_leapfrog = 0, trajectory_length = 0;
  uint64_t divergences = 0, gradient_evaluations = 0;
  double min_ess_bulk = 0, min_ess_tail = 0;  // over all rows, lp__ included (NaN rows skipped)
  double warmup_seconds = 0, sampling_seconds = 0;
  std::vector<ParamSummary> params;  // lp__ first, then the model's outputs
};

RunSummary summarize(const SampleResult& result);

// A fixed-column table (one row per parameter, then a footer with sampler statistics).
std::string format_summary_table(const RunSummary& summary);
// The same as one JSON object (NaN and infinities as null).
std::string format_summary_json(const RunSummary& summary);

}  // namespace vkn::sampler
