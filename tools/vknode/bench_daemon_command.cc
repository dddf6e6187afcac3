// `vknode bench-daemon`: the daemon's figures beside in-process (src/server/daemon_bench.h).
#include <cstdio>
#include <cstdlib>

#include "command.h"
#include "server/daemon_bench.h"

namespace vkn::cli {

int bench_daemon_command(Args args) {
  server::DaemonBenchOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--help" || a == "-h") {
      std::puts(
          "usage: vknode bench-daemon [--quick] [--json FILE] [--clients N] [--spin-us N] "
          "[--device SELECTOR]\n\n"
          "Starts a daemon in this process on a temporary socket and measures, beside the same\n"
          "node called in-process: ping round trips (p50/p99), a tiny dispatch (p50/p99 and the\n"
          "daemon's overhead), 256 MiB writes and reads through shared memory (GB/s and ratio),\n"
          "and N concurrent clients (default 16): total throughput and the slowest client's "
          "share.\n"
          "--spin-us: how long the daemon and client poll before sleeping (default: 50 us with at\n"
          "least 8 hardware threads, else 0).\n\n"
          "exit codes: 0 ok, 1 a step failed, 2 bad usage.");
      return kExitOk;
    } else if (a == "--quick") {
      options.quick = true;
    } else if (a == "--json" && has_value) {
      options.json_path = args[++i];
    } else if (a == "--clients" && has_value) {
      options.clients = static_cast<uint32_t>(std::max(1, std::atoi(args[++i])));
    } else if (a == "--spin-us" && has_value) {
      options.spin_us = std::max(0, std::atoi(args[++i]));
    } else if (a == "--device" && has_value) {
      options.device_selector = args[++i];
    } else {
      std::fprintf(stderr, "vknode bench-daemon: unknown or incomplete option '%s'\n", args[i]);
      return kExitUsage;
    }
  }
  return server::run_daemon_bench(options);
}

}  // namespace vkn::cli
