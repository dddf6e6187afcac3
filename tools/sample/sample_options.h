// The options of `vknode sample` and `vknode-mpi sample`: parsing, usage text and the model
// they describe. Shared by both tools.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vknode/error.h"
#include "vknode/sampler/hmc.h"
#include "vknode/sampler/model.h"

namespace vkn::cli {

struct SampleOptions {
  std::string family, params, expr, logistic_csv, synthetic, output;
  std::string device = "auto";  // auto, daemon, gpu (in-process) or cpu
  std::string gpus;            // --gpus: "" (the default device), "all", or selectors "0,1"
  std::string precision = "f32";
  size_t dim = 0;
  sampler::SamplerConfig config;
  bool json = false, progress = true;
};

// The option lines of the usage text (after the tool's own first lines).
extern const char* const kSampleOptionsHelp;

// Returns an empty string on success, else the usage error.
std::string parse_sample_args(std::span<char* const> args, SampleOptions& o);

// The model the options name. Errors: invalid_argument, not_found (data file).
Result<std::unique_ptr<sampler::Model>> build_model(const SampleOptions& o);

// The device selectors of --gpus: "" -> {""} (the default device); "all" -> every device that
// is not a CPU device (or {""} when there is none); "0,1" -> {"0", "1"}.
std::vector<std::string> gpu_selectors(const std::string& gpus);

}  // namespace vkn::cli
