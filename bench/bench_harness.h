// The core benchmark harness behind `vknode bench`: measures the gpu layer beside a
// baseline taken in the same run (raw Vulkan through the same VkDevice, or the cold case
// for caches) and prints one table, optionally JSON too. Sections:
//   init      Device::create, median of several runs, vs a minimal raw instance + device
//   pipeline  Kernel::create cold (empty cache) vs warm (disk cache), each in a fresh
//             child process (`<exe> bench-child pipeline <cache_dir> <cold|warm>`)
//   dispatch  tiny fill_u32 round trip (record + submit + wait) p50/p99 through Stream,
//             spinning and blocking, vs a pre-recorded raw command buffer
//   transfer  upload/download GB/s at 4 KiB, 1 MiB and 256 MiB through Stream (copying
//             and zero-copy staged) vs a raw vkCmdCopyBuffer with a blocking fence wait
//   node      with_node / exec round trips and tiny dispatches vs a mutex+cv hand-off and
//             the core Stream; exec throughput with 1, 4 and 16 callers
// See docs/benchmarks.md for what each figure means and recorded results.
// Thread-compatible: call from one thread; it creates and destroys its own Devices.
#pragma once

#include <string>

namespace vkn {

struct BenchOptions {
  // Which device to measure (see DeviceOptions::selector). Empty: $VKNODE_DEVICE, else the best.
  std::string device_selector;
  // Smaller sizes and fewer repetitions, for a CI smoke run.
  bool quick = false;
  // Also write the results as JSON to this file when non-empty (its directory must exist).
  std::string json_path;
  // Run only the sections whose name contains this ("init", "pipeline", "dispatch", "transfer", "node").
  std::string only;
};

// Runs the selected sections, printing the table to stdout as each finishes and progress to
// stderr. `argv0` is main's argv[0], used to re-execute this binary when /proc/self/exe cannot
// be read. Returns 0 on success; on any failure prints the error to stderr and returns 1
// (2 when `only` matches no section). Never throws.
int run_core_bench(const BenchOptions& options, const char* argv0);

// The child-process side of the pipeline section. `argv` starts at "bench-child" (as main
// passes argv + 1; a leading program name before it is also accepted) and continues with
// `pipeline <cache_dir> <cold|warm> [device_selector]`. Prints one line starting with
// "vknode-bench-child " with key=value fields to stdout. Returns 0 on success, 1 on failure
// (the error goes to stderr), 2 on bad arguments. Never throws.
int run_bench_child(int argc, char** argv);

}  // namespace vkn
