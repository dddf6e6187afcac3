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
    "Run 'vknode <command> --help' for a command's options.\n"
    "Exit codes: 0 success, 1 failure, 2 bad usage.\n";

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
  std::fprintf(stderr, "vknode: unknown command '%s'\n\n%s", argv[1], kUsage);
  return kExitUsage;
}
