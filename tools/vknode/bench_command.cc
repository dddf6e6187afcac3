#include <cstdio>
#include <cstring>
#include <string_view>

#include "bench_harness.h"
#include "command.h"

namespace vkn::cli {

int bench_command(Args args, const char* argv0) {
  BenchOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--help" || a == "-h") {
      std::puts("usage: vknode bench [--quick] [--json FILE] [--only SECTION] [--device SELECTOR]\n\n"
                "Measures the core layer beside a raw-Vulkan baseline in the same run: device init,\n"
                "pipeline creation cold vs warm from the disk cache (fresh processes), tiny-dispatch\n"
                "round trips (p50/p99), and upload/download bandwidth. Prints a table; --json writes it too.");
      return kExitOk;
    } else if (a == "--quick") {
      options.quick = true;
    } else if (a == "--json" && has_value) {
      options.json_path = args[++i];
    } else if (a == "--only" && has_value) {
      options.only = args[++i];
    } else if (a == "--device" && has_value) {
      options.device_selector = args[++i];
    } else {
      std::fprintf(stderr, "vknode bench: unknown or incomplete option '%s'\n", args[i]);
      return kExitUsage;
    }
  }
  return run_core_bench(options, argv0);
}

}  // namespace vkn::cli
