// The output of a sampling run from the command line: CmdStan CSVs when --output is given, then
// the summary (table or --json) on stdout.
#pragma once

#include <string>

#include "sample_options.h"
#include "vknode/sampler/hmc.h"

namespace vkn::cli {

// Writes the CSVs and prints the summary; `device` goes into the CSV headers. Returns the exit
// code: 0, or 1 when a CSV cannot be written.
int report_run(const sampler::Model& model, const sampler::SampleResult& result, const SampleOptions& o,
               const std::string& device);

// The stderr progress bar (SamplerConfig::progress) for a terminal.
void draw_progress(uint32_t done, uint32_t total);

}  // namespace vkn::cli
