// vknode: command-line front end of the vknode GPU compute node.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "command.h"
#include "bench_harness.h"

namespace {

constexpr const char* kUsage =
    "usage: vknode <command> [options]\n"
    "\n"
    "commands:\n"
    "  devices     list Vulkan devices and what vknode would pick\n"
    "  selfcheck   start a device, run built-in kernels against CPU references\n"
    "  bench       measure the core layer against raw Vulkan (table and JSON)\n"
    "\n"
    "daemon:\n"
    "  serve       run the daemon: one node shared by every process on the machine\n"
    "  status      the daemon's health, clients and your usage (--json)\n"
    "  ping        round trip to the daemon\n"
    "  buffers     your buffers in the daemon\n"
    "  kernels     the kernels you may dispatch through the daemon\n"
    "  cache       path|persist|clear: the pipeline cache on disk\n"
    "  stop        ask the daemon to stop gracefully\n"
    "  bench-daemon  the daemon's overhead beside in-process (ping, dispatch, transfers, 16 clients)\n"
    "\n"
    "Run 'vknode <command> --help' for a command's options.\n"
    "Exit codes: 0 success, 1 failure, 2 bad usage, 3 no daemon running.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace vkn::cli;
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::string_view command = argv[1];
  const Args rest(argv + 2, argc - 2);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (command == "devices") return devices_command(rest);
  if (command == "selfcheck") return selfcheck_command(rest);
  if (command == "bench") return bench_command(rest, argv[0]);
  if (command == "bench-child") return vkn::run_bench_child(argc - 1, argv + 1);
  if (command == "serve") return serve_command(rest);
  if (command == "status") return status_command(rest);
  if (command == "ping") return ping_command(rest);
  if (command == "buffers") return buffers_command(rest);
  if (command == "kernels") return kernels_command(rest);
  if (command == "cache") return cache_command(rest);
  if (command == "stop") return stop_command(rest);
  if (command == "bench-daemon") return bench_daemon_command(rest);
  if (command == "sample") return sample_command(rest);
  std::fprintf(stderr, "vknode: unknown command '%s'\n\n%s", argv[1], kUsage);
  return kExitUsage;
}
