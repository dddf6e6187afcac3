// CmdStan-compatible CSV output, one file per chain, so existing tools (cmdstanpy, ArviZ,
// posterior::read_cmdstan_csv) read vknode runs. Layout of each file:
//   '#'-comment header describing the run in CmdStan's indented key = value form
//     (method = sample, algorithm = hmc, engine = static, metric = diag_e, seed, chain id, ...);
//   the column header lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,
//     energy__,<param names>  (treedepth__ is 0: static HMC builds no tree);
//   "# Adaptation terminated", "# Step size = <eps>", "# Diagonal elements of inverse mass
//     matrix:", "# <m1>, <m2>, ..." (only when warm-up ran);
//   one row per draw; then the "# Elapsed Time:" trailer.
// Pure formatting plus an atomic file write; thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "vknode/error.h"
#include "vknode/sampler/hmc.h"

namespace vkn::sampler {

struct CsvMetadata {
  std::string model;      // e.g. Model::name()
  SamplerConfig config;   // the run's configuration (progress is ignored)
  std::string device;     // e.g. "cpu" or the GPU's name
  int sig_figs = 9;       // significant digits of real values
};

// The whole file for one chain (0-based `chain` of the result; CmdStan's id is
// result.first_chain + chain + 1).
// Requires: chain < result.chains.
std::string format_cmdstan_csv(const SampleResult& result, uint32_t chain, const CsvMetadata& meta);

// Writes "<prefix>_<id>.csv" for every chain (id = first_chain + chain + 1), each atomically; returns the
// paths. io_error or not_found (missing directory) from the file system.
Result<std::vector<std::filesystem::path>> write_cmdstan_csvs(const std::filesystem::path& prefix,
                                                             const SampleResult& result, const CsvMetadata& meta);

}  // namespace vkn::sampler
