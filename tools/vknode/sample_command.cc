// vknode sample: HMC on a built-in, custom-expression or logistic-regression model, on the GPU
// through in-process nodes (one per device of --gpus; the CPU takes over on node errors) or on
// the CPU. The options, model and output are shared with vknode-mpi (tools/sample/).
#include <unistd.h>

#include <cstdio>
#include <string>

#include "command.h"
#include "sample_backend.h"
#include "sample_options.h"
#include "sample_report.h"
#include "util/strformat.h"

namespace vkn::cli {

int sample_command(Args args) {
  const std::string usage = std::string("usage: vknode sample [MODEL] [options]\n\n") +
                            "Runs batched HMC (Stan-style warm-up) and prints a summary table.\n\n" +
                            kSampleOptionsHelp + "\nExit codes: 0 success, 1 failure, 2 bad usage.\n";
  if (wants_help(args)) {
    std::fputs(usage.c_str(), stdout);
    return kExitOk;
  }
  SampleOptions o;
  if (auto err = parse_sample_args(args, o); !err.empty()) {
    std::fprintf(stderr, "vknode sample: %s\n\n%s", err.c_str(), usage.c_str());
    return kExitUsage;
  }
  auto model = build_model(o);
  if (!model) {
    std::fprintf(stderr, "vknode sample: %s\n", model.error().to_string().c_str());
    return model.error().code == Errc::invalid_argument || model.error().code == Errc::not_found ? kExitUsage
                                                                                                  : kExitFailure;
  }
  if (auto v = sampler::validate(o.config, **model); !v) {
    std::fprintf(stderr, "vknode sample: %s\n", v.error().to_string().c_str());
    return kExitUsage;
  }
  if (o.progress && ::isatty(STDERR_FILENO)) o.config.progress = draw_progress;

  std::unique_ptr<SampleBackend> gpu;
  if (o.device != "cpu") {
    auto g = SampleBackend::start(**model, o, gpu_selectors(o.gpus), vkn::format("vknode-sample-{}", ::getpid()));
    if (!g) {
      std::fprintf(stderr, "vknode sample: %s\n", g.error().to_string().c_str());
      return kExitFailure;
    }
    gpu = std::move(*g);
    if (!gpu->note().empty()) {
      std::fprintf(stderr, "vknode sample: %s%s\n", gpu->note().c_str(),
                   gpu->backend() ? "" : "; sampling on the CPU");
    }
  }
  auto result = sampler::sample(**model, o.config, gpu ? gpu->backend() : nullptr);
  const std::string device = gpu && gpu->backend() ? std::string(gpu->backend()->name()) : "cpu";
  std::string notes = gpu ? gpu->split_fallbacks() : "";
  if (gpu && !gpu->note().empty()) notes += (notes.empty() ? "" : "; ") + gpu->note();
  gpu.reset();
  if (!result) {
    std::fprintf(stderr, "vknode sample: %s\n", result.error().to_string().c_str());
    return result.error().code == Errc::invalid_argument ? kExitUsage : kExitFailure;
  }
  if (!result->fallback_reason.empty()) {
    std::fprintf(stderr, "vknode sample: finished on the CPU: %s\n", result->fallback_reason.c_str());
  } else if (!notes.empty()) {
    result->fallback_reason = notes;
  }
  return report_run(**model, *result, o, device) == 0 ? kExitOk : kExitFailure;
}

}  // namespace vkn::cli
