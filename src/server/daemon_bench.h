// The daemon benchmark behind `vknode bench-daemon`: starts a daemon in this process
// on a temporary socket and measures, beside the same node called in-process:
// ping round trips, a tiny dispatch, large writes and reads through shared memory,
// and 16 concurrent clients' throughput and fairness. Prints a table (and JSON).
#pragma once

#include <cstdint>
#include <string>

namespace vkn::server {

struct DaemonBenchOptions {
  bool quick = false;     // fewer iterations and 32 MiB instead of 256 MiB
  std::string json_path;  // also write the figures here
  std::string device_selector;
  uint32_t clients = 16;
  int spin_us =
      -1;  // daemon and client polling before sleep (ServerOptions::spin); -1: their default
};

// Returns the process exit code (0 ok, 1 a step failed).
int run_daemon_bench(const DaemonBenchOptions& options);

}  // namespace vkn::server
