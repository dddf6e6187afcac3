// The sections of `vknode bench` (see bench_harness.h). Each measures the gpu layer and
// its baseline in the same run, adds rows to the report and returns the first error.
// Internal to the harness.
#pragma once

#include <functional>
#include <string>

#include "bench_harness.h"
#include "bench_report.h"
#include "vknode/error.h"

namespace vkn {
class Device;
}

namespace vkn::detail {

// Hands each finished row to the harness (which prints it and keeps it).
using RowSink = std::function<void(BenchRow)>;

// Device::create (validation off) vs a minimal raw instance + device on the same physical device.
[[nodiscard]] Result<void> bench_init(const BenchOptions& options, const Device& device, const RowSink& sink);
// Kernel::create cold vs warm from the disk cache, each in a fresh process running `exe`.
[[nodiscard]] Result<void> bench_pipeline(const BenchOptions& options, const std::string& exe, const RowSink& sink);
// Tiny-dispatch round trips through Stream vs a pre-recorded raw command buffer.
[[nodiscard]] Result<void> bench_dispatch(const BenchOptions& options, Device& device, const RowSink& sink);
// Upload/download bandwidth through Stream vs raw vkCmdCopyBuffer.
[[nodiscard]] Result<void> bench_transfer(const BenchOptions& options, Device& device, const RowSink& sink);

// The node's overhead: with_node/exec round trips and tiny dispatches vs the core layer
// (in a child process running `exe`, and beside the node), and exec throughput with 1, 4
// and 16 callers. Starts (and stops) a node named "bench". Requires: no other device of
// this process is alive; the calling thread is kept off the GPU's interrupt CPUs (as
// run_core_bench does for every section).
[[nodiscard]] Result<void> bench_node(const BenchOptions& options, const std::string& exe, const RowSink& sink);
// HMC sampling: leapfrog steps/s and ESS/s of the GPU backend beside the CPU fallback (bench_sampler.cc).
[[nodiscard]] Result<void> bench_sampler(const BenchOptions& options, const RowSink& sink);

// The child process of bench_pipeline; `args` are the words after "pipeline".
int pipeline_child(int argc, char** argv);
// The child process of bench_node's baseline (core_dispatch_child.h).
int core_dispatch_child_main(int argc, char** argv);

}  // namespace vkn::detail
